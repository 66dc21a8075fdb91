"""The demo's pure parts: apply order of the examples, the in-place table, what a rotation did."""

from __future__ import annotations

import io

from rotor.cli.demo import Screen, _state, reach_lines, rotation_summary
from rotor.devenv.examples import EXAMPLES, documents, staged


def test_examples_are_applied_stores_first_then_policies_then_managed_secrets() -> None:
    order = [[str(doc["kind"]) for doc in stage] for stage in staged(documents(EXAMPLES))]
    flat = [kind for stage in order for kind in stage]
    first_ms = flat.index("ManagedSecret")
    assert all(kind != "ManagedSecret" for stage in order[:-2] for kind in stage)
    for kind in ("Secret", "ServiceAccount", "SecretStore", "ClusterSecretStore", "ClusterRotationPolicy"):
        assert max(i for i, k in enumerate(flat) if k == kind) < first_ms, kind
    assert flat[-1] == "Deployment"  # workloads after the Secrets they use
    stores = next(stage for stage in order if "SecretStore" in stage)
    assert set(stores) == {"SecretStore", "ClusterSecretStore"}  # one stage, waited on before the next


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_table_is_redrawn_in_place_on_a_terminal() -> None:
    out = _Tty()
    screen = Screen(out)
    screen.show("A\nB\n", footer="(updated 12:00:00)")
    screen.show("A\nC\n", footer="(updated 12:00:02)")
    assert out.getvalue() == "A\nB\n(updated 12:00:00)\n\x1b[3F\x1b[JA\nC\n(updated 12:00:02)\n"


def test_the_table_is_printed_only_when_it_changes_otherwise() -> None:
    out = io.StringIO()
    screen = Screen(out)
    for text in ("A\nB\n", "A\nB\n", "A\nC\n"):
        screen.show(text, footer="(updated)")
    assert out.getvalue() == "A\nB\nA\nC\n"
    # relative times move every second: only a change of state prints the table again
    keyed = io.StringIO()
    screen = Screen(keyed)
    screen.show("x   1s ago\n", key=("x", "True"))
    screen.show("x   3s ago\n", key=("x", "True"))
    screen.show("x   5s ago\n", key=("x", "False"))
    assert keyed.getvalue() == "x   1s ago\nx   5s ago\n"


def test_the_watched_state_leaves_out_relative_times() -> None:
    def ms(synced: str) -> dict[str, object]:
        ready = {"type": "Ready", "status": "True", "reason": "Synced"}
        meta = {"namespace": "demo", "name": "a", "creationTimestamp": synced}
        return {"metadata": meta, "spec": {}, "status": {"conditions": [ready], "lastSyncTime": synced}}

    assert _state([ms("2025-03-01T12:00:00Z")]) == _state([ms("2025-03-01T12:05:00Z")])


def test_reach_lines_name_kubectl_and_the_kubeconfig() -> None:
    lines = reach_lines("/cache/kubectl", "/tmp/rotor-demo-x/kube/kubeconfig")
    assert lines[0] == "kubectl: /cache/kubectl"
    assert "  KUBECONFIG=/tmp/rotor-demo-x/kube/kubeconfig /cache/kubectl get ms -A" in lines


def test_rotation_summary_names_versions_keys_and_restarts_never_values() -> None:
    before = {
        "metadata": {"namespace": "demo", "name": "orders-db"},
        "status": {"sourceVersions": {"apps/orders-db": "1"}},
    }
    after = {
        "metadata": {"namespace": "demo", "name": "orders-db"},
        "status": {
            "sourceVersions": {"apps/orders-db": "2"},
            "rotation": {"previousRetainedUntil": "2025-03-02T12:00:00Z"},
        },
    }
    secret = {
        "metadata": {"name": "orders-db"},
        "data": {"password": "c2VjcmV0", "password_previous": "b2xk", "username": "b3JkZXJz"},
    }
    lines = rotation_summary(before, after, secret, ["Deployment/orders"])
    assert lines == [
        "rotated demo/orders-db:",
        "  source apps/orders-db: version 1 -> 2",
        "  Secret demo/orders-db keys: password, password_previous, username",
        "  password_previous: the old value, kept until 2025-03-02T12:00:00Z for clients still using it",
        "  restarted: Deployment/orders (rollout: Auto, they read the Secret)",
    ]
    assert not any(v in "\n".join(lines) for v in ("c2VjcmV0", "b2xk", "b3JkZXJz"))
