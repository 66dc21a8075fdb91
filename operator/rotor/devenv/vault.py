"""A real HashiCorp Vault server in dev mode (in-memory; root token known), on loopback."""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rotor.devenv import binaries
from rotor.devenv.process import ManagedProcess, free_port

ROOT_TOKEN = "rotor-dev-root"  # dev mode only; never a production credential


@dataclass
class VaultServer:
    workdir: Path
    port: int = 0
    process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        vault_bin = binaries.ensure("vault")
        self.port = self.port or free_port()
        env = dict(os.environ)
        env.pop("VAULT_ADDR", None)
        env.pop("VAULT_TOKEN", None)
        env["HOME"] = str(self.workdir)  # dev mode writes a token helper file under HOME otherwise
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "vault",
            [
                str(vault_bin),
                "server",
                "-dev",
                f"-dev-root-token-id={ROOT_TOKEN}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-no-store-token",
                "-log-level=warn",
            ],
            self.workdir / "logs" / "vault.log",
            env=env,
        )
        self.process.start()

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=2) as resp:
                return bool(json.load(resp).get("initialized"))

        self.process.wait_healthy(healthy, timeout=60, what=f"GET {self.address}/v1/sys/health")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        """Stop and start on the same port. Dev mode keeps nothing: callers re-seed."""
        self.stop()
        self.start()
