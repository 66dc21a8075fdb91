"""The operator under test: the real ``rotor run`` as a subprocess (so SIGKILL is real and its
logs can be scanned for leaks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rotor.devenv.process import free_port


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: str,
        log_dir: Path,
        *,
        name: str = "operator",
        namespaces: list[str] | None = None,
        clock_file: Path | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        hash_key: str = "integration-test-hash-key",
        lease: str | None = None,
        lease_namespace: str | None = None,
        identity: str | None = None,
    ) -> None:
        """``lease`` runs it as the chart's Deployment does (leader election on the Lease of that
        name, in ``lease_namespace``); without it the operator runs ``--no-leader-elect``.
        ``identity`` is its name in the Lease (``POD_NAME``)."""
        self.kubeconfig = kubeconfig
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.namespaces = namespaces or []
        self.clock_file = clock_file
        self.extra_args = extra_args or []
        self.env = env or {}
        self.hash_key = hash_key
        self.lease = lease
        self.lease_namespace = lease_namespace
        self.identity = identity
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(self.env)
        env["KUBECONFIG"] = self.kubeconfig
        env["ROTOR_HASH_KEY"] = self.hash_key
        if self.clock_file is not None:
            env["ROTOR_CLOCK_OFFSET_FILE"] = str(self.clock_file)
        argv = [
            sys.executable,
            "-m",
            "rotor.cli.main",
            "run",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--metrics-addr",
            f"127.0.0.1:{self.metrics_port}",
        ]
        if self.identity:
            env["POD_NAME"] = self.identity
        if self.lease:
            argv += ["--leader-elect", "--lease-name", self.lease]
            if self.lease_namespace:
                argv += ["--lease-namespace", self.lease_namespace]
        else:
            argv.append("--no-leader-elect")
        for ns in self.namespaces:
            argv += ["--namespace", ns]
        argv += self.extra_args
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"operator exited early ({self.proc.returncode}); see {self.log_path}:\n"
                    + self.log_path.read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(self.metrics_url + "/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"operator did not become ready; see {self.log_path}")

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url + "/metrics", timeout=5) as resp:
            return resp.read().decode()

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
