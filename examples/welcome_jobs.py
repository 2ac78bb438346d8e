"""Jobs of the quickstart example: module-level functions, as workers need them."""

from __future__ import annotations

import asyncio
import datetime as dt

from fast_app.core.context import context


async def send_welcome_email(user_id: str, signed_up_at: dt.datetime) -> None:
    """Pretend to send an email, showing what the job received."""
    await asyncio.sleep(0.01)
    print(
        f"  job: welcome email to {user_id} (signed up {signed_up_at:%H:%M:%S}, "
        f"a {type(signed_up_at).__name__}), request {context.get('request_id')}"
    )


async def generate_report(report_id: int) -> None:
    """A report that takes longer than its soft timeout allows."""
    await asyncio.sleep(5)
    print(f"  job: report {report_id} done")
