"""Counts in the farm's messages read right: ``1 worker``, ``draining 2 jobs``."""

from fast_app.farm._wording import counted


def test_counts_are_singular_for_one_and_plural_otherwise() -> None:
    assert counted(1, "worker") == "1 worker"
    assert counted(0, "worker") == "0 workers"
    assert counted(3, "attempt") == "3 attempts"
    assert counted(2, "other job") == "2 other jobs"
    assert counted(2, "process", "processes") == "2 processes"
