"""Test harness. The test harness, not each test, knows where the cluster comes from:

- by default a local control plane (etcd, kube-apiserver, kube-controller-manager), a Vault dev
  server and the AWS emulator are started once per session (``rotor.devenv``);
- with ``ROTOR_TEST_KUBECONFIG`` the same tests run against that existing cluster (kind, for
  example); Vault and the AWS emulator still run on this machine.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.clouds import CloudServers  # noqa: E402
from support.cluster import Cluster  # noqa: E402
from support.environment import TestEnvironment  # noqa: E402
from support.leaks import LeakRegistry  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def leaks() -> LeakRegistry:
    return LeakRegistry()


@pytest.fixture(scope="session")
def clouds() -> Iterator[CloudServers]:
    """The Azure Key Vault and Google Secret Manager test servers (no cluster needed)."""
    servers = CloudServers.start(Path(tempfile.mkdtemp(prefix="rotor-clouds-")))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def env(leaks: LeakRegistry, clouds: CloudServers) -> Iterator[TestEnvironment]:
    environment = TestEnvironment(Path(tempfile.mkdtemp(prefix="rotor-test-")), clouds)
    try:
        environment.start()
        yield environment
    finally:
        environment.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cluster(env: TestEnvironment) -> AsyncIterator[Cluster]:
    c = await Cluster.connect(str(env.kubeconfig))
    yield c
    await c.close()


@pytest_asyncio.fixture(loop_scope="session")
async def namespace(
    request: pytest.FixtureRequest, cluster: Cluster, env: TestEnvironment
) -> AsyncIterator[str]:
    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    name = f"t-{base}-{secrets.token_hex(3)}"
    await cluster.create_namespace(name)
    yield name
    if os.environ.get("ROTOR_KEEP_NAMESPACES") != "1":
        await cluster.delete_namespace(name)


@pytest.fixture(scope="session")
def operator(env: TestEnvironment) -> object:
    """The session's operator (serves every namespace except iso-*, which tests give their own)."""
    return env.operator


def kubectl(env: TestEnvironment, *args: str, input_: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(env.kubectl), "--kubeconfig", str(env.kubeconfig), *args],
        input=input_,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="session")
def kubectl_run(env: TestEnvironment) -> object:
    def run(*args: str, input_: str | None = None) -> subprocess.CompletedProcess[str]:
        return kubectl(env, *args, input_=input_)

    return run
