"""``rotor demo``: the whole job on one machine. It starts a local Kubernetes control plane, a
Vault dev server and the AWS emulator, installs the CRDs, seeds the backends, runs the operator,
applies examples/, then shows the Secrets being synced and rotated."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CRDS = Path(__file__).resolve().parents[3] / "crds"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="run Rotor end to end on this machine (local Kubernetes, Vault, AWS emulator)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 0 once every example is Ready and a rotation completed; non-zero otherwise",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait in --check mode")
    p.add_argument(
        "--examples", type=Path, default=None, help="folder of example manifests (default: examples/)"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, kubeconfig) afterwards"
    )
    p.set_defaults(func=run)


def _say(text: str) -> None:
    print(f"rotor demo: {text}", flush=True)


def _kubectl(kubectl: str, kubeconfig: str, *args: str, input_: str | None = None) -> str:
    result = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, *args],
        input=input_,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def _objects(kubectl: str, kubeconfig: str) -> list[dict[str, Any]]:
    out = _kubectl(kubectl, kubeconfig, "get", "managedsecrets.rotor.dev", "-A", "-o", "json")
    return list(json.loads(out).get("items", []))


def _ready(obj: dict[str, Any]) -> tuple[bool, str, str]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", cond.get("reason", ""), cond.get("message", "")
    return False, "Pending", "not reconciled yet"


def _table(items: list[dict[str, Any]]) -> str:
    rows = [("NAMESPACE", "NAME", "READY", "REASON", "EXPIRES", "NEXT ROTATION", "ROTATION")]
    for obj in sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"])):
        ready, reason, _ = _ready(obj)
        status = obj.get("status") or {}
        rot = status.get("rotation") or {}
        rows.append(
            (
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
                "True" if ready else "False",
                reason,
                (status.get("expiry") or {}).get("notAfter", "-"),
                rot.get("nextRotationTime", "-"),
                rot.get("phase", "-"),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def run(args: argparse.Namespace) -> int:
    from rotor.devenv import binaries
    from rotor.devenv.environment import LocalEnvironment
    from rotor.devenv.errors import EnvironmentProblem
    from rotor.devenv.examples import EXAMPLES, apply, managed_secrets
    from rotor.devenv.process import free_port
    from rotor.devenv.seed import DEMO_NAMESPACES, seed_aws, seed_vault

    examples = args.examples or EXAMPLES
    workdir = Path(tempfile.mkdtemp(prefix="rotor-demo-"))
    _say("preparing the servers (the first run builds them from Go modules, which takes a while)")
    try:
        kubectl = str(binaries.ensure("kubectl"))
        env = LocalEnvironment(workdir, keep_workdir=args.keep)
        env.start()
    except EnvironmentProblem as exc:
        print(f"rotor demo: {exc}", file=sys.stderr)
        return 2
    operator: subprocess.Popen[bytes] | None = None
    try:
        kubeconfig = str(env.kubeconfig)
        assert env.vault is not None and env.aws is not None
        _say("installing the CRDs")
        _kubectl(kubectl, kubeconfig, "apply", "--server-side", "-k", str(CRDS))
        _kubectl(
            kubectl,
            kubeconfig,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/name=rotor",
        )
        for ns in DEMO_NAMESPACES:
            subprocess.run(
                [kubectl, "--kubeconfig", kubeconfig, "create", "namespace", ns],
                capture_output=True,
                check=False,
            )
        _say("seeding Vault and the AWS emulator with example values")
        seed_vault(env.vault_client())
        seed_aws(env.aws.endpoint)
        port = free_port()
        log_path = workdir / "operator.log"
        _say(f"starting the operator (log: {log_path}, metrics: http://127.0.0.1:{port}/metrics)")
        op_env = dict(os.environ, KUBECONFIG=kubeconfig, **env.aws.client_env())
        with log_path.open("ab") as log:
            operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rotor.cli.main",
                    "run",
                    "--no-leader-elect",
                    "--log-format",
                    "text",
                    "--metrics-addr",
                    f"127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=op_env,
                start_new_session=True,
            )
        _wait_ready(port, operator)
        _say(f"applying {examples}")
        apply(
            kubectl,
            kubeconfig,
            vault_addr=env.vault.address,
            aws_endpoint=env.aws.endpoint,
            directory=examples,
        )
        wanted = managed_secrets(examples)
        ok = _wait_all_ready(kubectl, kubeconfig, wanted, args.timeout if args.check else 120.0)
        print(_table(_objects(kubectl, kubeconfig)), flush=True)
        if not ok:
            bad = [
                (o["metadata"]["namespace"], o["metadata"]["name"], *_ready(o)[1:])
                for o in _objects(kubectl, kubeconfig)
                if not _ready(o)[0]
            ]
            for ns, name, reason, message in bad:
                print(f"rotor demo: NOT READY {ns}/{name}: {reason}: {message}", file=sys.stderr)
            if args.check:
                return 1
        rotated = _demo_rotation(kubectl, kubeconfig, wanted, args.timeout if args.check else 60.0)
        print(_table(_objects(kubectl, kubeconfig)), flush=True)
        if args.check:
            if not rotated:
                print("rotor demo: the example rotation did not complete", file=sys.stderr)
                return 1
            _say(f"check passed: {len(wanted)} ManagedSecrets Ready and a rotation completed")
            return 0
        _say("watching; press Ctrl-C to stop (everything started here stops with it)")
        while True:
            time.sleep(10)
            print(_table(_objects(kubectl, kubeconfig)), flush=True)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"rotor demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if operator is not None and operator.poll() is None:
            operator.terminate()
            try:
                operator.wait(15)
            except subprocess.TimeoutExpired:
                operator.kill()
        env.stop()


def _wait_ready(port: int, operator: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if operator.poll() is not None:
            raise RuntimeError("the operator exited during startup; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the operator did not become ready within 60s")


def _wait_all_ready(kubectl: str, kubeconfig: str, wanted: list[tuple[str, str]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        items = {
            (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in _objects(kubectl, kubeconfig)
        }
        ready = sum(1 for key in wanted if key in items and _ready(items[key])[0])
        if ready != last:
            _say(f"{ready}/{len(wanted)} ManagedSecrets Ready")
            last = ready
        if ready == len(wanted):
            return True
        time.sleep(1)
    return False


def _demo_rotation(kubectl: str, kubeconfig: str, wanted: list[tuple[str, str]], timeout: float) -> bool:
    """Rotate the first example that has a rotation policy, and wait for it to complete."""
    for obj in _objects(kubectl, kubeconfig):
        if not (obj.get("spec") or {}).get("rotation"):
            continue
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        request = f"demo-{int(time.time())}"
        _say(f"rotating {ns}/{name} now (annotation rotor.dev/rotate={request})")
        _kubectl(
            kubectl,
            kubeconfig,
            "-n",
            ns,
            "annotate",
            "--overwrite",
            "managedsecrets.rotor.dev",
            name,
            f"rotor.dev/rotate={request}",
        )
        deadline = time.monotonic() + timeout
        phase = None
        while time.monotonic() < deadline:
            current = json.loads(
                _kubectl(kubectl, kubeconfig, "-n", ns, "get", "managedsecrets.rotor.dev", name, "-o", "json")
            )
            rot = (current.get("status") or {}).get("rotation") or {}
            if rot.get("phase") != phase:
                phase = rot.get("phase")
                _say(f"  {ns}/{name}: rotation phase {phase}")
            if rot.get("lastRotateRequest") == request and phase in ("Completed", "Failed"):
                return phase == "Completed"
            time.sleep(0.5)
        return False
    return True
