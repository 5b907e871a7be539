"""Periodic sweepers: each domain's ``tasks.py`` applies due deadlines (pay by, auto-confirm,
settle, deliver webhooks, pay out). Deadlines are columns and every job is idempotent, so a
restart loses nothing and several worker processes running the same job cannot double-apply it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


class Scheduler:
    def __init__(self, interval_seconds: float) -> None:
        self.interval = interval_seconds
        self.jobs: list[tuple[str, Job]] = []
        self._stopping = False
        self._wake = asyncio.Event()

    def add(self, name: str, job: Job) -> None:
        self.jobs.append((name, job))

    async def run_once(self, only: str | None = None) -> dict[str, object]:
        """One pass of every job (or of the one named ``only``): what each returned, or the
        exception that stopped it."""
        results: dict[str, object] = {}
        for name, job in self.jobs:
            if only is not None and name != only:
                continue
            try:
                results[name] = await job()
            except Exception as exc:  # one failing job must not stop the others
                log.exception("scheduled job %s failed", name)
                results[name] = exc
        return results

    async def run_forever(self) -> None:
        while not self._stopping:
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)

    def stop(self) -> None:
        """Return after the pass in progress (never cancel a job mid-transaction)."""
        self._stopping = True
        self._wake.set()
