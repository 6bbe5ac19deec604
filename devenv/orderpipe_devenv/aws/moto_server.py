"""moto server as a child process on loopback (its own interpreter, so it doesn't share our GIL)."""

from __future__ import annotations

import sys
import urllib.request

from orderpipe_devenv.processes import ServerProcess


class MotoServerProcess(ServerProcess):
    name = "moto"
    start_timeout_seconds = 30.0
    stop_timeout_seconds = 10.0

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json", timeout=1).close()  # noqa: S310
        except OSError:
            return False
        return True
