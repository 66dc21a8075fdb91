"""moto's server mode: an AWS emulator that speaks the real wire protocol, on loopback."""

from __future__ import annotations

import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rotor.devenv.process import ManagedProcess, free_port

REGION = "eu-west-1"
# moto accepts any credentials; these name the emulator's account and nothing else.
ACCESS_KEY_ID = "AKIAROTORLOCAL000000"
SECRET_ACCESS_KEY = "rotor-local-emulator-secret-access-key"


@dataclass
class AwsEmulator:
    workdir: Path
    port: int = 0
    process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = self.port or free_port()
        env = dict(os.environ)
        env.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
        self.process = ManagedProcess(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            self.workdir / "logs" / "moto.log",
            env=env,
        )
        self.process.start()

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2) as resp:
                return bool(resp.status == 200)

        self.process.wait_healthy(healthy, timeout=60, what=f"GET {self.endpoint}/moto-api/")

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=5).close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def client_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
