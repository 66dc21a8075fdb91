"""Apply examples/ with the local servers' addresses put in for the placeholders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def render(path: Path, *, vault_addr: str, aws_endpoint: str) -> str:
    return path.read_text().replace("${VAULT_ADDR}", vault_addr).replace("${AWS_ENDPOINT}", aws_endpoint)


def example_files(directory: Path = EXAMPLES) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def managed_secrets(directory: Path = EXAMPLES) -> list[tuple[str, str]]:
    """(namespace, name) of every ManagedSecret in the examples."""
    out = []
    for path in example_files(directory):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "ManagedSecret":
                out.append((doc["metadata"]["namespace"], doc["metadata"]["name"]))
    return out


def apply(
    kubectl: str, kubeconfig: str, *, vault_addr: str, aws_endpoint: str, directory: Path = EXAMPLES
) -> None:
    for path in example_files(directory):
        text = render(path, vault_addr=vault_addr, aws_endpoint=aws_endpoint)
        result = subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"applying {path.name} failed: {result.stderr.strip()}")
