"""Apply examples/ with the local servers' addresses put in for the placeholders, in dependency
order: what the stores need (Secrets, ServiceAccounts), then the stores (and wait until they are
Ready), then the policies, then the ManagedSecrets, then the workloads that use their Secrets. So
no ManagedSecret is ever seen before its store (no StoreNotFound or InvalidConfig at start)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

STORE_KINDS = ("SecretStore", "ClusterSecretStore")
POLICY_KINDS = ("RotationPolicy", "ClusterRotationPolicy")
#: The apply stages, in order; kinds not listed (Deployments...) come last, after their Secrets.
STAGES: tuple[tuple[str, ...], ...] = (
    ("Namespace",),
    ("ServiceAccount", "Secret", "ConfigMap", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"),
    STORE_KINDS,
    POLICY_KINDS,
    ("ManagedSecret", "PushSecret"),
)
PLURALS = {
    "SecretStore": "secretstores.rotor.dev",
    "ClusterSecretStore": "clustersecretstores.rotor.dev",
}


def render(path: Path, *, vault_addr: str, aws_endpoint: str) -> str:
    return path.read_text().replace("${VAULT_ADDR}", vault_addr).replace("${AWS_ENDPOINT}", aws_endpoint)


def example_files(directory: Path = EXAMPLES) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def documents(directory: Path = EXAMPLES) -> list[dict[str, Any]]:
    return [doc for path in example_files(directory) for doc in yaml.safe_load_all(path.read_text()) if doc]


def managed_secrets(directory: Path = EXAMPLES) -> list[tuple[str, str]]:
    """(namespace, name) of every ManagedSecret in the examples."""
    return [
        (doc["metadata"]["namespace"], doc["metadata"]["name"])
        for doc in documents(directory)
        if doc.get("kind") == "ManagedSecret"
    ]


def stage_of(kind: str) -> int:
    for index, kinds in enumerate(STAGES):
        if kind in kinds:
            return index
    return len(STAGES)


def staged(docs: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The documents in apply stages (file order kept inside a stage); empty stages dropped."""
    stages: list[list[dict[str, Any]]] = [[] for _ in range(len(STAGES) + 1)]
    for doc in docs:
        stages[stage_of(str(doc.get("kind")))].append(doc)
    return [stage for stage in stages if stage]


def run_kubectl(
    kubectl: str, kubeconfig: str, *args: str, input_: str | None = None, timeout: float = 60
) -> str:
    """kubectl's output; a failure raises RuntimeError with its stderr."""
    result = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, *args],
        input=input_,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def _ready(obj: dict[str, Any]) -> tuple[bool, str]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", f"{cond.get('reason')}: {cond.get('message')}"
    return False, "not looked at yet"


def wait_stores_ready(
    kubectl: str, kubeconfig: str, stores: Iterable[dict[str, Any]], timeout: float = 60.0
) -> None:
    """Wait until every store is Ready; a store that is not says why."""
    deadline = time.monotonic() + timeout
    for doc in stores:
        meta = doc["metadata"]
        scope = ["-n", meta["namespace"]] if doc["kind"] == "SecretStore" else []
        why = "not looked at yet"
        while True:
            obj = json.loads(
                run_kubectl(
                    kubectl, kubeconfig, *scope, "get", PLURALS[doc["kind"]], meta["name"], "-o", "json"
                )
            )
            ready, why = _ready(obj)
            if ready:
                break
            if time.monotonic() >= deadline:
                where = f"{meta.get('namespace')}/" if scope else ""
                raise RuntimeError(f"{doc['kind']} {where}{meta['name']} is not Ready: {why}")
            time.sleep(0.5)


def apply(
    kubectl: str, kubeconfig: str, *, vault_addr: str, aws_endpoint: str, directory: Path = EXAMPLES
) -> None:
    text = "\n---\n".join(
        render(path, vault_addr=vault_addr, aws_endpoint=aws_endpoint) for path in example_files(directory)
    )
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    for stage in staged(docs):
        try:
            run_kubectl(kubectl, kubeconfig, "apply", "-f", "-", input_=yaml.safe_dump_all(stage))
        except RuntimeError as err:
            kinds = ", ".join(sorted({str(d.get("kind")) for d in stage}))
            raise RuntimeError(f"applying the examples' {kinds} failed: {err}") from None
        stores = [doc for doc in stage if doc.get("kind") in STORE_KINDS]
        if stores:
            wait_stores_ready(kubectl, kubeconfig, stores)
