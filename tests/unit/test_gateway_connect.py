"""The Kubernetes client is set up once: proxies from the environment, no per-request lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotor.kube.gateway import KubeGateway

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://api.example.internal:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


async def test_proxy_is_resolved_once_and_the_session_does_not_reread_the_environment(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    gateway = await KubeGateway.connect(kubeconfig)
    try:
        assert gateway.api.configuration.proxy == "http://proxy.corp:3128"
        # the per-object calls' own session: no ~/.netrc or proxy lookups per request
        assert gateway._http().trust_env is False
    finally:
        await gateway.close()

    monkeypatch.setenv("NO_PROXY", ".example.internal")
    gateway = await KubeGateway.connect(kubeconfig)
    try:
        assert gateway.api.configuration.proxy is None
    finally:
        await gateway.close()
