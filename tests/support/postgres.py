"""A real PostgreSQL server for the session, started only when a test asks for ``postgres``.

Register it in a test module with ``from support.postgres import postgres  # noqa: F401``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotor.devenv.postgres import PostgresServer
from support.leaks import LeakRegistry


@pytest.fixture(scope="session")
def postgres(leaks: LeakRegistry) -> Iterator[PostgresServer]:
    # its own directory directly under /tmp: the postgres system user must be able to reach it,
    # and the session's work directory is private to us
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="rotor-pg-")))
    try:
        server.start()
        leaks.add(server.password)
        yield server
    finally:
        server.stop()
        if os.environ.get("ROTOR_KEEP_ENV") != "1":
            shutil.rmtree(server.workdir, ignore_errors=True)
