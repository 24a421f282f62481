"""Backbone services as `edi run` processes, for the fault tests: start, SIGKILL, restart, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

EDI = Path(sys.executable).parent / "edi"


class ServiceProcess:
    def __init__(self, services: list[str], log_dir: Path) -> None:
        self.services = services
        self.log = log_dir / f"{'+'.join(services)}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> None:
        # Several processes at once: none serves the ops port (tests/observability covers it).
        env = {**os.environ, "EDI_LOG_LEVEL": "WARNING", "EDI_OPS_PORT": "0"}
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(EDI), "run", *self.services, env=env, stdout=log, stderr=log, start_new_session=True)

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, nothing flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.kills += 1

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
