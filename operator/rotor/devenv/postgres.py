"""A real PostgreSQL server (the Debian package's binaries), on loopback, for the Vault database
static-role tests.

PostgreSQL refuses to run as root. When we are root, initdb and postgres run as the ``postgres``
system user that the Debian package creates (through ``setpriv``, which execs in place, so the
process we manage IS the postmaster and our signals reach it); the data directory is chowned to
that user. As any other user they simply run as ourselves.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rotor.devenv.errors import EnvironmentProblem
from rotor.devenv.process import ManagedProcess, free_port

SUPERUSER = "postgres"
SYSTEM_USER = "postgres"
INSTALL_HINT = "install PostgreSQL: apt-get install postgresql"


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin that has initdb, postgres and pg_ctl."""
    candidates = []
    for bindir in glob.glob("/usr/lib/postgresql/*/bin"):
        path = Path(bindir)
        if all(
            (path / tool).is_file() and os.access(path / tool, os.X_OK)
            for tool in ("initdb", "postgres", "pg_ctl")
        ):
            major = path.parent.name
            candidates.append((int(major) if major.isdigit() else 0, path))
    if not candidates:
        raise EnvironmentProblem(
            "the PostgreSQL server binaries (/usr/lib/postgresql/*/bin/{initdb,postgres,pg_ctl}) "
            "were not found; " + INSTALL_HINT
        )
    return max(candidates)[1]


@dataclass
class PostgresServer:
    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    superuser: str = SUPERUSER
    password: str = ""
    process: ManagedProcess | None = None

    # ------------------------------------------------------------------ access
    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.workdir / "sock"

    def dsn(self, user: str | None = None, password: str | None = None, dbname: str = "postgres") -> str:
        """A libpq keyword DSN (values quoted, so any password works)."""
        user = user or self.superuser
        password = self.password if password is None else password

        def quote(value: str) -> str:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

        return (
            f"host={self.host} port={self.port} dbname={quote(dbname)} user={quote(user)} "
            f"password={quote(password)} sslmode=disable connect_timeout=5"
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        bindir = find_bindir()
        self.port = self.port or free_port()
        self.password = self.password or secrets.token_urlsafe(24)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        prefix = self._run_as()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "HOME": str(self.workdir),
            "TZ": "UTC",
        }
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb(bindir, prefix, env)
        self.process = ManagedProcess(
            "postgres",
            [
                *prefix,
                str(bindir / "postgres"),
                "-D",
                str(self.datadir),
                "-c",
                f"listen_addresses={self.host}",
                "-p",
                str(self.port),
                "-c",
                f"unix_socket_directories={self.socket_dir}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
                "-c",
                "shared_buffers=16MB",
                "-c",
                "log_min_messages=warning",
                "-c",
                "log_connections=off",
            ],
            self.workdir / "logs" / "postgres.log",
            env=env,
            cwd=self.workdir,
        )
        self.process.start()

        def healthy() -> bool:
            import psycopg

            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)

        self.process.wait_healthy(healthy, timeout=60, what=f"psycopg connect to {self.host}:{self.port}")

    def _run_as(self) -> list[str]:
        """Nothing when we are not root; else setpriv into the postgres system user."""
        if os.geteuid() != 0:
            return []
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise EnvironmentProblem(
                f"PostgreSQL refuses to run as root and there is no '{SYSTEM_USER}' system user "
                "to run it as; " + INSTALL_HINT + " (the package creates the user)"
            ) from None
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise EnvironmentProblem("setpriv (util-linux) is needed to run PostgreSQL as the postgres user")
        for path in (self.workdir, *[p for p in self.workdir.rglob("*")]):
            os.chown(path, user.pw_uid, user.pw_gid)
        probe = subprocess.run(
            [
                setpriv,
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
                "--",
                "test",
                "-w",
                str(self.workdir),
            ],
            capture_output=True,
            check=False,
            timeout=30,
        )
        if probe.returncode != 0:
            raise EnvironmentProblem(
                f"the '{SYSTEM_USER}' user cannot reach {self.workdir}: use a work directory whose "
                "parents it can search (for example one made with tempfile.mkdtemp() directly under /tmp)"
            )
        return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]

    def _initdb(self, bindir: Path, prefix: list[str], env: dict[str, str]) -> None:
        pwfile = self.workdir / "superuser-password"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if prefix:
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        log = self.workdir / "logs" / "initdb.log"
        try:
            result = subprocess.run(
                [
                    *prefix,
                    str(bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.superuser,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--no-locale",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                env=env,
                cwd=self.workdir,
                check=False,
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise EnvironmentProblem(
                f"initdb failed (code {result.returncode}); its output ({log}) ends with:\n"
                + "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, not waited for); then nothing is left."""
        if self.process is None or self.process.proc is None:
            return
        proc = self.process.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self.process.stop()
