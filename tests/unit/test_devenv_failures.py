"""The local environment fails with one readable error naming what to do, never a hang."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rotor.devenv import binaries
from rotor.devenv.errors import EnvironmentProblem
from rotor.devenv.process import ManagedProcess, free_port, port_in_use


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ROTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROTOR_IGNORE_PATH_BINARIES", "1")
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.delenv("ROTOR_VAULT_BIN", raising=False)
    return tmp_path


def test_no_go_toolchain_says_what_to_install(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(empty_cache))  # nothing on PATH, not even go
    with pytest.raises(EnvironmentProblem) as err:
        binaries.ensure("vault", progress=False)
    assert "no Go toolchain" in str(err.value) and "ROTOR_VAULT_BIN" in str(err.value)


def test_a_failing_build_names_the_command_to_retry(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = empty_cache / "bin"
    fake_bin.mkdir()
    go = fake_bin / "go"
    go.write_text("#!/bin/sh\necho 'go: simulated failure' >&2\nexit 1\n")
    go.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:/usr/bin:/bin")
    monkeypatch.setenv("GOSUMDB", "off")
    with pytest.raises(EnvironmentProblem) as err:
        binaries.ensure("etcd", progress=False)
    assert "building etcd failed" in str(err.value) and "build_binaries.sh etcd" in str(err.value)


def test_an_explicit_binary_that_is_not_executable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = tmp_path / "vault"
    bogus.write_text("not a program")
    monkeypatch.setenv("ROTOR_VAULT_BIN", str(bogus))
    with pytest.raises(EnvironmentProblem, match="ROTOR_VAULT_BIN"):
        binaries.locate("vault")


def test_a_server_that_exits_reports_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "fake-server",
        [
            sys.executable,
            "-c",
            "import sys; print('listen tcp 127.0.0.1: address already in use'); sys.exit(3)",
        ],
        tmp_path / "fake.log",
    )
    proc.start()
    with pytest.raises(EnvironmentProblem) as err:
        proc.wait_healthy(lambda: False, timeout=60, what="GET /healthz")
    text = str(err.value)
    assert "fake-server exited (code 3)" in text and "address already in use" in text


def test_a_server_that_never_becomes_healthy_is_stopped_and_named(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "stuck-server", [sys.executable, "-c", "import time; time.sleep(600)"], tmp_path / "s.log"
    )
    proc.start()
    with pytest.raises(EnvironmentProblem, match=r"stuck-server did not become healthy \(GET /readyz\)"):
        proc.wait_healthy(lambda: False, timeout=1, what="GET /readyz")
    assert not proc.alive  # no stray process left behind


def test_free_ports_are_free() -> None:
    port = free_port()
    assert not port_in_use(port)
