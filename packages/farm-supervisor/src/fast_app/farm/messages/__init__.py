"""Every message of the farm's own, as one typed, versioned, bounded contract.

Jobs have ``fast_app.core.queue.envelope``; everything else that crosses a process
boundary is here: heartbeats and commands between a worker and its supervisor
(``worker_link``), commands to supervisors (``control``), tombstones, snapshots. Each
is a msgspec Struct decoded strictly where it arrives; what does not decode is counted
and logged (``Refusals``), never raised past that edge. Heartbeats and snapshots, which
report, ignore fields their reader does not know (a newer sender during a rolling
upgrade); commands and tombstones, which act, refuse them. With ``ASYNC_FARM_SIGNING_KEY``
the control-plane messages are signed (``message_signature``) and unsigned ones ignored.
"""

from fast_app.farm.messages._signing import MessageKind, message_signature, signed_by
from fast_app.farm.messages.control import (
    COMMAND_MAX_AGE_S,
    CancelJob,
    Command,
    CommandGate,
    DrainWorker,
    PauseFarm,
    RestartWorker,
    ResumeFarm,
    SetLimits,
    Shutdown,
    command_from_dict,
    decode_command,
    default_sender,
    describe_command,
    encode_command,
)
from fast_app.farm.messages.edge import decode_at_edge
from fast_app.farm.messages.refusals import Reason, Refusals
from fast_app.farm.messages.snapshots import (
    Snapshot,
    decode_snapshot,
    encode_snapshot,
)
from fast_app.farm.messages.tombstones import (
    Tombstone,
    decode_tombstone,
    encode_tombstone,
    new_tombstone,
)
from fast_app.farm.messages.worker_link import (
    ENDED_LISTED,
    HEARTBEAT_MAX_BYTES,
    IN_FLIGHT_LISTED,
    WAITING_LISTED,
    WAITS_LISTED,
    Cancel,
    Drain,
    EndedJob,
    Heartbeat,
    InFlightEntry,
    Pause,
    Resume,
    Tombstoned,
    WaitingEntry,
    WorkerCommand,
    WorkerCounters,
    decode_heartbeat,
    decode_worker_command,
    encode_line,
)

__all__ = [
    "COMMAND_MAX_AGE_S",
    "ENDED_LISTED",
    "HEARTBEAT_MAX_BYTES",
    "IN_FLIGHT_LISTED",
    "WAITING_LISTED",
    "WAITS_LISTED",
    "Command",
    "CommandGate",
    "Cancel",
    "CancelJob",
    "Drain",
    "DrainWorker",
    "EndedJob",
    "Heartbeat",
    "InFlightEntry",
    "MessageKind",
    "Pause",
    "PauseFarm",
    "Reason",
    "Refusals",
    "RestartWorker",
    "Resume",
    "ResumeFarm",
    "SetLimits",
    "Shutdown",
    "Snapshot",
    "Tombstone",
    "Tombstoned",
    "WaitingEntry",
    "WorkerCommand",
    "WorkerCounters",
    "command_from_dict",
    "decode_at_edge",
    "decode_command",
    "decode_heartbeat",
    "decode_snapshot",
    "decode_tombstone",
    "decode_worker_command",
    "default_sender",
    "describe_command",
    "encode_command",
    "encode_line",
    "encode_snapshot",
    "encode_tombstone",
    "message_signature",
    "new_tombstone",
    "signed_by",
]
