"""The Helm chart (charts/rotor), the plain manifests (deploy/) and the monitoring they ship.

Tests that render the chart need the helm binary, found in $ROTOR_HELM, on PATH, or in
~/.cache/rotor/helm-*/helm. Without it they fail: build it with `hack/build-binaries.sh helm`.
The others (schema, CRD copies, dashboard, alert expressions) run anywhere.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import pathlib
import re
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rotor"
DEPLOY = ROOT / "deploy"
CRDS = ROOT / "crds"
NAMESPACE = "rotor-system"
# helm built with `go install` assumes Kubernetes 1.20 unless told; the chart needs 1.25 or newer.
KUBE_VERSION = "1.34.0"

# DESIGN §5: the only metric names Rotor exports.
METRICS = {
    "rotor_managedsecret_ready",
    "rotor_managedsecret_expiry_timestamp_seconds",
    "rotor_managedsecret_renewal_timestamp_seconds",
    "rotor_managedsecret_last_sync_timestamp_seconds",
    "rotor_managedsecret_last_rotation_timestamp_seconds",
    "rotor_managedsecret_next_rotation_timestamp_seconds",
    "rotor_sync_total",
    "rotor_sync_duration_seconds",
    "rotor_rotation_total",
    "rotor_rotation_duration_seconds",
    "rotor_provider_requests_total",
    "rotor_provider_request_duration_seconds",
    "rotor_provider_cache_hits_total",
    "rotor_rollout_restarts_total",
    "rotor_notifications_total",
    "rotor_rollout_restarts_waiting",
    "rotor_rollout_restarts_in_progress",
    "rotor_rollout_notifications_total",
    "rotor_secretstore_ready",
    "rotor_build_info",
}
HISTOGRAMS = {
    "rotor_sync_duration_seconds",
    "rotor_rotation_duration_seconds",
    "rotor_provider_request_duration_seconds",
}
ALERTS = {
    "SecretExpiringSoon",
    "SecretExpired",
    "SyncFailing",
    "SyncErrorRatioHigh",
    "RotationFailed",
    "StoreNotReady",
}

# Values that are Kubernetes API objects passed through to a manifest: the API server checks
# their fields, so the schema leaves them open. Everything else refuses unknown keys.
PASSTHROUGH = {
    "networkPolicy.dns.namespaceSelector",
    "networkPolicy.dns.podSelector",
    "networkPolicy.metricsFrom[]",
    "notifications.from[]",
    "podSecurityContext",
    "securityContext",
    "extraEnv[]",
    "tolerations[]",
    "affinity",
    "topologySpreadConstraints[]",
    "strategy",
    "dnsConfig",
    "extraVolumes[]",
    "extraVolumeMounts[]",
    "extraContainers[]",
    "serviceMonitor.relabelings[]",
    "serviceMonitor.metricRelabelings[]",
}


# --- helm ----------------------------------------------------------------------------------------


def find_helm() -> str | None:
    explicit = os.environ.get("ROTOR_HELM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    cache = pathlib.Path(os.environ.get("ROTOR_CACHE_DIR", pathlib.Path.home() / ".cache" / "rotor"))
    built = sorted(cache.glob("helm-*/helm"))
    return str(built[-1]) if built and os.access(built[-1], os.X_OK) else None


@pytest.fixture(scope="module")
def helm() -> str:
    path = find_helm()
    if path is None:
        pytest.fail(
            "no helm binary found in $ROTOR_HELM, PATH or ~/.cache/rotor/helm-*/helm: "
            "run `hack/build-binaries.sh helm` (CI builds it)",
            pytrace=False,
        )
    return path


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


# A cluster with the Prometheus Operator: the chart renders its monitoring objects only where
# the cluster serves their kinds.
PROMETHEUS_OPERATOR = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")


@functools.cache
def _template_cached(
    helm: str, sets: tuple[str, ...], include_crds: bool, api_versions: tuple[str, ...] = PROMETHEUS_OPERATOR
) -> str:
    args = ["template", "rotor", str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    for api in api_versions:
        args += ["--api-versions", api]
    if include_crds:
        args.append("--include-crds")
    for s in sets:
        args += ["--set", s]
    proc = run_helm(helm, *args)
    assert proc.returncode == 0, f"helm template {' '.join(sets)} failed:\n{proc.stderr}"
    return proc.stdout


def render(
    helm: str, *sets: str, include_crds: bool = False, api_versions: tuple[str, ...] = PROMETHEUS_OPERATOR
) -> list[dict[str, Any]]:
    text = _template_cached(helm, tuple(sets), include_crds, api_versions)
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def key(o: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = o["metadata"]
    return (o["apiVersion"], o["kind"], meta.get("namespace", ""), meta["name"])


def rules_grant(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", [])
        for r in rules
    )


# --- deploy/ ---------------------------------------------------------------------------------------


def load_kustomization(directory: pathlib.Path) -> list[dict[str, Any]]:
    """The objects of a kustomize base made only of `resources` (what deploy/ is)."""
    kfile = directory / "kustomization.yaml"
    assert kfile.is_file(), (
        f"{directory.relative_to(ROOT)}/ has no kustomization.yaml, so "
        f"`kubectl apply -k deploy/` cannot include it"
    )
    kust = yaml.safe_load(kfile.read_text())
    extra = set(kust) - {"apiVersion", "kind", "resources"}
    assert not extra, f"{kfile}: the generated base uses resources only, found {extra}"
    objs: list[dict[str, Any]] = []
    for entry in kust["resources"]:
        path = (directory / entry).resolve()
        if path.is_dir():
            objs += load_kustomization(path)
        else:
            assert path.is_file(), f"{kfile}: resource {entry} does not exist"
            objs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return objs


MANAGER_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
CHART_LABELS = (
    *MANAGER_LABELS,
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
)


def normalize(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop what only says who manages the object (Helm or kubectl)."""
    obj = copy.deepcopy(obj)

    # The chart labels the CRDs it renders; the files in crds/ are used as generated.
    dropped = CHART_LABELS if obj["kind"] == "CustomResourceDefinition" else MANAGER_LABELS

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            meta = node.get("metadata")
            if isinstance(meta, dict):
                for label in dropped:
                    (meta.get("labels") or {}).pop(label, None)
                (meta.get("annotations") or {}).pop("helm.sh/resource-policy", None)
                for field in ("labels", "annotations"):
                    if meta.get(field) == {}:
                        del meta[field]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj)
    return obj


def test_deploy_matches_the_default_chart_render(helm: str) -> None:
    chart = {key(o): normalize(o) for o in render(helm, include_crds=True)}
    deploy = {key(o): normalize(o) for o in load_kustomization(DEPLOY)}
    hint = "; run hack/render-deploy.sh"

    only_chart = set(chart) - set(deploy)
    only_deploy = set(deploy) - set(chart) - {("v1", "Namespace", "", NAMESPACE)}
    assert not only_chart, f"in the chart's default render but not in deploy/: {sorted(only_chart)}{hint}"
    assert not only_deploy, f"in deploy/ but not in the chart's default render: {sorted(only_deploy)}{hint}"
    for k in sorted(chart):
        assert deploy[k] == chart[k], f"{k} differs between deploy/ and the chart{hint}"

    # The parts people review, spelled out.
    d_objs = list(deploy.values())
    c_objs = list(chart.values())
    assert container(d_objs)["args"] == container(c_objs)["args"]
    assert one(d_objs, "ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "rotor", "namespace": NAMESPACE}
    ]
    assert not any(o["kind"] in ("ClusterKopfPeering", "KopfPeering") for o in d_objs)
    assert any(o["kind"] == "Role" and o["metadata"]["name"] == "rotor-leader-election" for o in d_objs)


def test_deploy_is_a_namespace_with_restricted_pod_security() -> None:
    objs = load_kustomization(DEPLOY)
    ns = [o for o in objs if o["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in ns] == [NAMESPACE]
    assert ns[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for o in objs:
        if o["kind"] in ("Deployment", "ServiceAccount", "Service", "PodDisruptionBudget"):
            assert o["metadata"]["namespace"] == NAMESPACE


# --- the default render ------------------------------------------------------------------------------


def test_helm_lint_is_clean(helm: str) -> None:
    for sets in (
        [],
        ["rbac.mode=namespaced", "watchNamespaces={team-a,team-b}"],
        [
            "serviceMonitor.enabled=true",
            "prometheusRule.enabled=true",
            "dashboards.enabled=true",
            "networkPolicy.enabled=true",
        ],
        [
            "commonLabels.team=platform",
            "deploymentAnnotations.owner=sre",
            "strategy.type=Recreate",
            "extraVolumes[0].name=ca",
            "extraVolumes[0].configMap.name=ca",
            "extraVolumeMounts[0].name=ca",
            "extraVolumeMounts[0].mountPath=/etc/ca",
            "extraObjects[0].apiVersion=v1",
            "extraObjects[0].kind=ConfigMap",
            "extraObjects[0].metadata.name=extra",
            "serviceMonitor.enabled=true",
            "serviceMonitor.relabelings[0].targetLabel=cluster",
        ],
    ):
        args = ["lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
        for s in sets:
            args += ["--set", s]
        proc = run_helm(helm, *args)
        assert proc.returncode == 0, f"helm lint {sets} failed:\n{proc.stdout}\n{proc.stderr}"


def test_a_typo_in_values_is_refused(helm: str) -> None:
    for bad in (
        "replicaz=2",
        "leaderElection.leasName=x",
        "rbac.mode=everything",
        "logLevel=verbose",
        "prometheusRule.thresholds.expiringSoon=3",
    ):
        proc = run_helm(helm, "template", "rotor", str(CHART), "--kube-version", KUBE_VERSION, "--set", bad)
        assert proc.returncode != 0, f"--set {bad} rendered; values.schema.json must refuse it"
        assert "schema" in proc.stderr.lower() or "values don't meet" in proc.stderr.lower(), proc.stderr


def test_default_render_runs_two_hardened_replicas_with_leader_election(helm: str) -> None:
    objs = render(helm)
    dep = one(objs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    c = container(objs)
    assert c["image"] == "ghcr.io/rotor-dev/rotor:0.1.0"
    assert c["command"] == ["rotor"]
    assert c["args"] == [
        "run",
        "--log-level=info",
        "--log-format=json",
        "--metrics-addr=0.0.0.0:8080",
        "--concurrency=8",
        "--restart-limit=2",
        "--restart-limit-cluster=0",
        "--restart-min-interval=10m",
        "--restart-debounce=30s",
        "--leader-elect",
        "--lease-name=rotor",
    ]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c["env"]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c[
        "env"
    ]

    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]

    spread = pod["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]

    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert not by_kind(objs, "ClusterKopfPeering") and not by_kind(objs, "KopfPeering")
    svc = one(objs, "Service")
    assert svc["spec"]["ports"][0]["port"] == 8080
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    for kind in ("ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy"):
        assert not by_kind(objs, kind), f"{kind} is off by default"
    # the one Role: the shard's Lease, in the release namespace
    (role,) = by_kind(objs, "Role")
    assert role["metadata"]["name"] == "rotor-leader-election" and role["metadata"]["namespace"] == NAMESPACE
    (binding,) = by_kind(objs, "RoleBinding")
    assert binding["roleRef"]["name"] == "rotor-leader-election"


def test_cluster_mode_rbac_is_exactly_what_the_operator_needs(helm: str) -> None:
    objs = render(helm)
    roles = {r["metadata"]["name"]: r for r in by_kind(objs, "ClusterRole")}
    rules = roles["rotor"]["rules"]
    for r in rules:
        assert "*" not in r["verbs"] and "*" not in r["resources"] and "*" not in r["apiGroups"], r

    def verbs(group: str, resource: str) -> set[str]:
        return {
            v for r in rules if group in r["apiGroups"] and resource in r["resources"] for v in r["verbs"]
        }

    for res in (
        "managedsecrets",
        "secretstores",
        "clustersecretstores",
        "rotationpolicies",
        "clusterrotationpolicies",
        "pushsecrets",
        "clustermanagedsecrets",
    ):
        # managedsecrets: also create, update and delete (the copies of ClusterManagedSecrets)
        extra = {"create", "update", "delete"} if res == "managedsecrets" else set()
        assert verbs("rotor.dev", res) == {"get", "list", "watch", "patch"} | extra, res
        assert verbs("rotor.dev", f"{res}/status") == {"get", "patch", "update"}, res
    assert verbs("", "secrets") == {"get", "list", "watch", "create", "update", "patch", "delete"}
    assert verbs("", "events") == {"create", "patch"}
    assert verbs("events.k8s.io", "events") == {"create", "patch"}
    assert verbs("", "namespaces") == {"get", "list", "watch"}
    assert verbs("", "serviceaccounts/token") == {"create"}
    assert verbs("", "serviceaccounts") == set()
    assert verbs("", "pods") == set()
    for res in ("deployments", "statefulsets", "daemonsets"):
        assert verbs("apps", res) == {"get", "list", "watch", "patch"}
    assert verbs("apiextensions.k8s.io", "customresourcedefinitions") == {"get", "list", "watch"}
    assert not [r for r in rules if "kopf.dev" in r["apiGroups"]], "kopf peering is gone"
    assert verbs("coordination.k8s.io", "leases") == set(), "leases: only in the release namespace"
    (lease_role,) = [r for r in by_kind(objs, "Role") if r["metadata"]["name"] == "rotor-leader-election"]
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert lease_role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["rotor"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]

    binding = [b for b in by_kind(objs, "ClusterRoleBinding") if b["roleRef"]["name"] == "rotor"]
    assert binding and binding[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": "rotor", "namespace": NAMESPACE}
    ]
    # The aggregated roles are for people and never reach Secrets.
    for name in ("rotor-view", "rotor-edit"):
        assert not rules_grant(roles[name]["rules"], "", "secrets", "get")


def test_namespaced_mode_grants_a_role_per_namespace_and_no_cluster_wide_secrets(helm: str) -> None:
    objs = render(helm, "rbac.mode=namespaced", "watchNamespaces={team-a,team-b}")
    roles = [r for r in by_kind(objs, "Role") if r["metadata"]["name"] == "rotor"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = [b for b in by_kind(objs, "RoleBinding") if b["metadata"]["name"] == "rotor"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    # Its own namespace gets Events (kopf posts those of cluster-scoped objects there) and the
    # one Secret holding the data-hash key.
    (own,) = [r for r in by_kind(objs, "Role") if r["metadata"]["name"] == "rotor-own-namespace"]
    assert own["metadata"]["namespace"] == NAMESPACE
    assert {res for rule in own["rules"] for res in rule["resources"]} == {"events", "secrets"}
    (lease,) = [r for r in by_kind(objs, "Role") if r["metadata"]["name"] == "rotor-leader-election"]
    assert lease["metadata"]["namespace"] == NAMESPACE
    assert rules_grant(lease["rules"], "coordination.k8s.io", "leases", "update")
    assert len(by_kind(objs, "Role")) == 4 and len(by_kind(objs, "RoleBinding")) == 4
    for b in bindings:
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "rotor", "namespace": NAMESPACE}]
    for r in roles:
        assert rules_grant(r["rules"], "", "secrets", "create")
        assert rules_grant(r["rules"], "apps", "deployments", "patch")
        assert not rules_grant(r["rules"], "kopf.dev", "kopfpeerings", "patch")
        assert not rules_grant(r["rules"], "coordination.k8s.io", "leases", "update")

    for cr in by_kind(objs, "ClusterRole"):
        for res in ("secrets", "serviceaccounts/token"):
            for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
                assert not rules_grant(cr["rules"], "", res, verb), (
                    f"{cr['metadata']['name']} grants {verb} {res}"
                )
        assert not rules_grant(cr["rules"], "apps", "deployments", "patch")
    cluster = next(cr for cr in by_kind(objs, "ClusterRole") if cr["metadata"]["name"] == "rotor-cluster")
    assert rules_grant(cluster["rules"], "rotor.dev", "clustersecretstores", "watch")
    assert rules_grant(cluster["rules"], "apiextensions.k8s.io", "customresourcedefinitions", "list")
    assert not rules_grant(cluster["rules"], "kopf.dev", "clusterkopfpeerings", "patch")

    args = container(objs)["args"]
    assert args[-2:] == ["--namespace=team-a", "--namespace=team-b"]
    assert not by_kind(objs, "KopfPeering") and not by_kind(objs, "ClusterKopfPeering")


def test_namespaced_mode_credential_namespaces_can_only_read(helm: str) -> None:
    objs = render(
        helm, "rbac.mode=namespaced", "watchNamespaces={team-a}", "rbac.credentialNamespaces={vault-auth}"
    )
    role = next(r for r in by_kind(objs, "Role") if r["metadata"]["namespace"] == "vault-auth")
    assert rules_grant(role["rules"], "", "secrets", "get")
    assert rules_grant(role["rules"], "", "serviceaccounts/token", "create")
    for verb in ("create", "update", "patch", "delete"):
        assert not rules_grant(role["rules"], "", "secrets", verb)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["rbac.mode=namespaced"], "needs watchNamespaces"),
        (["rbac.mode=namespaced", "watchNamespaces={team-*}"], "namespace names"),
        (["leaderElection.enabled=false"], "replicas > 1 needs leaderElection"),
        (["notifications.enabled=true"], "needs notifications.existingSecret"),
    ],
)
def test_bad_combinations_fail_with_a_message(helm: str, sets: list[str], message: str) -> None:
    args = ["template", "rotor", str(CHART), "--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set", s]
    proc = run_helm(helm, *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_single_replica_runs_without_leader_election_or_pdb(helm: str) -> None:
    objs = render(helm, "replicas=1", "leaderElection.enabled=false")
    assert "--no-leader-elect" in container(objs)["args"]
    assert not any(a.startswith(("--lease", "--leader-elect")) for a in container(objs)["args"])
    assert not by_kind(objs, "PodDisruptionBudget")
    assert not by_kind(objs, "Role")


def test_each_shard_has_its_own_lease(helm: str) -> None:
    """The Lease is named after the release unless leaderElection.leaseName says otherwise."""
    objs = render(helm, "fullnameOverride=rotor-teams")
    assert "--lease-name=rotor-teams" in container(objs)["args"]
    objs = render(helm, "leaderElection.leaseName=teams-lease")
    assert "--lease-name=teams-lease" in container(objs)["args"]
    (role,) = by_kind(objs, "Role")
    assert role["rules"][0]["resourceNames"] == ["teams-lease"]


def test_sharding_by_pattern_passes_every_pattern(helm: str) -> None:
    objs = render(helm, "watchNamespaces={team-*,!team-legacy,payments}")
    args = container(objs)["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-*",
        "--namespace=!team-legacy",
        "--namespace=payments",
    ]
    assert not by_kind(objs, "KopfPeering")
    assert one(objs, "ClusterRoleBinding")["roleRef"]["name"] == "rotor"


def test_crds_are_templates_kept_on_uninstall(helm: str) -> None:
    crd_files = sorted(CRDS.glob("*.yaml"))
    objs = render(helm)
    rotor_crds = [o for o in by_kind(objs, "CustomResourceDefinition") if o["spec"]["group"] == "rotor.dev"]
    expected = {
        d["metadata"]["name"]
        for f in crd_files
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    }
    assert {c["metadata"]["name"] for c in rotor_crds} == expected
    assert expected, "crds/ holds no CRD yet"
    for c in rotor_crds:
        assert c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not [
        o
        for o in render(helm, "crds.keep=false")
        if o["kind"] == "CustomResourceDefinition"
        and "helm.sh/resource-policy" in (o["metadata"].get("annotations") or {})
    ]
    assert not by_kind(render(helm, "crds.install=false"), "CustomResourceDefinition")
    # kopf's peering CRDs are gone with peering: the chart ships no crds/ directory.
    assert not (CHART / "crds").exists()
    assert not [
        o
        for o in by_kind(render(helm, include_crds=True), "CustomResourceDefinition")
        if o["spec"]["group"] != "rotor.dev"
    ]


def test_monitoring_objects_render_from_the_shipped_files(helm: str) -> None:
    objs = render(
        helm, "serviceMonitor.enabled=true", "prometheusRule.enabled=true", "dashboards.enabled=true"
    )
    sm = one(objs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True
    cm = one(objs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["rotor.json"]) == json.loads(
        (CHART / "files/dashboards/rotor.json").read_text()
    )

    rule = one(objs, "PrometheusRule")
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= ALERTS
    for r in rules:
        assert_only_rotor_metrics(r["expr"], f"alert {r['alert']}")
        assert "{{" not in r["expr"], r["expr"]
    by_name = {r["alert"]: r for r in rules}
    assert "< 604800" in by_name["SecretExpiringSoon"]["expr"]
    assert by_name["SecretExpiringSoon"]["annotations"]["summary"].startswith(
        "Secret {{ $labels.namespace }}"
    )
    assert "[1h]" in by_name["RotationFailed"]["expr"]


def test_network_policy_allows_dns_apiserver_backends_and_metrics_only(helm: str) -> None:
    objs = render(
        helm,
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer.cidrs={172.18.0.2/32}",
        "networkPolicy.egress[0].cidr=10.20.0.0/16",
        "networkPolicy.egress[0].ports[0].port=8200",
    )
    np = one(objs, "NetworkPolicy")["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    assert np["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    dns, api, vault = np["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    assert vault == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"port": 8200, "protocol": "TCP"}],
    }


def test_notifications_get_their_port_service_secret_and_network_policy(helm: str) -> None:
    objs = render(
        helm,
        "notifications.enabled=true",
        "notifications.existingSecret=rotor-notify",
        "notifications.port=9443",
        "networkPolicy.enabled=true",
        "notifications.from[0].namespaceSelector.matchLabels.team=ci",
    )
    c = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--notify-addr=0.0.0.0:9443" in c["args"]
    assert f"--notify-secret={NAMESPACE}/rotor-notify" in c["args"]
    assert {"name": "notify", "containerPort": 9443, "protocol": "TCP"} in c["ports"]
    (svc,) = [s for s in by_kind(objs, "Service") if s["metadata"]["name"] == "rotor-notify"]
    assert svc["spec"]["ports"] == [
        {"name": "notify", "port": 9443, "targetPort": "notify", "protocol": "TCP"}
    ]
    (role,) = [r for r in by_kind(objs, "Role") if r["metadata"]["name"] == "rotor-notify"]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["rotor-notify"], "verbs": ["get"]}
    ]
    assert [b for b in by_kind(objs, "RoleBinding") if b["roleRef"]["name"] == "rotor-notify"]
    np = one(objs, "NetworkPolicy")["spec"]
    assert np["ingress"][1] == {
        "ports": [{"port": 9443, "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"team": "ci"}}}],
    }
    # off by default: no port, no Service, no Role, no flag
    default = render(helm)
    args = one(default, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--notify")]
    assert not [s for s in by_kind(default, "Service") if s["metadata"]["name"] == "rotor-notify"]


def test_values_pass_through(helm: str) -> None:
    objs = render(
        helm,
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/rotor",
        "hashKey.existingSecret=rotor-hash-key",
        "extraArgs={--log-level=debug}",
        "image.digest=sha256:" + "a" * 64,
        "priorityClassName=system-cluster-critical",
        "logFormat=text",
    )
    sa = one(objs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/rotor"}
    c = container(objs)
    assert c["image"] == "ghcr.io/rotor-dev/rotor@sha256:" + "a" * 64
    assert c["args"][-1] == "--log-level=debug"
    assert "--log-format=text" in c["args"]
    assert {"name": "ROTOR_HASH_KEY_FILE", "value": "/etc/rotor/hash-key/hash-key"} in c["env"]
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert {"name": "hash-key", "mountPath": "/etc/rotor/hash-key", "readOnly": True} in c["volumeMounts"]


# --- without helm ------------------------------------------------------------------------------------


def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_values_schema_is_valid_and_accepts_the_defaults() -> None:
    import jsonschema

    jsonschema.Draft7Validator.check_schema(schema())
    jsonschema.Draft7Validator(schema()).validate(values())


def test_values_schema_refuses_unknown_keys_at_every_level() -> None:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema())

    def walk(node: dict[str, Any], path: str) -> Iterable[str]:
        if node.get("type") == "object" and path not in PASSTHROUGH:
            if "properties" in node:
                if node.get("additionalProperties") is not False:
                    yield path or "<root>"
                for name, sub in node["properties"].items():
                    yield from walk(sub, f"{path}.{name}" if path else name)
            elif not isinstance(node.get("additionalProperties"), dict):
                yield path  # a free-form map must still say what its values are
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")

    loose = list(walk(schema(), ""))
    assert not loose, f"these schema levels accept unknown keys: {loose}"

    # Every default value is described, and a typo anywhere is refused.
    for path in (
        "replicaz",
        "leaderElection.leasName",
        "prometheusRule.thresholds.expiringSoon",
        "image.tags",
    ):
        bad = values()
        node = bad
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = 1
        assert not validator.is_valid(bad), f"{path} was accepted"


def test_values_and_schema_describe_the_same_keys() -> None:
    def undescribed(value: Any, node: dict[str, Any], path: str) -> Iterable[str]:
        if not isinstance(value, dict) or "properties" not in node:
            return
        for name, sub in value.items():
            p = f"{path}.{name}" if path else name
            if name not in node["properties"]:
                yield p
            else:
                yield from undescribed(sub, node["properties"][name], p)

    assert list(undescribed(values(), schema(), "")) == []
    assert set(schema()["properties"]) == set(values()), "every top-level key has a default in values.yaml"


def test_chart_crd_copies_equal_the_generated_crds() -> None:
    generated = {
        f.name: f.read_text()
        for f in sorted(CRDS.glob("*.yaml"))
        if re.search(r"(?m)^kind: CustomResourceDefinition", f.read_text())
    }
    copies = {f.name: f.read_text() for f in sorted((CHART / "files" / "crds").glob("*.yaml"))}
    assert generated, "crds/ holds no CRD manifests"
    assert copies == generated, "charts/rotor/files/crds/ differs from crds/: run hack/sync-chart-crds.sh"


# PromQL words that are not metric names.
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "le",
    "inf",
    "nan",
}
PROMQL_FUNCTIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "count_values",
    "rate",
    "irate",
    "increase",
    "delta",
    "histogram_quantile",
    "time",
    "vector",
    "absent",
    "label_values",
    "clamp_min",
    "clamp_max",
    "abs",
    "sort",
    "sort_desc",
    "scalar",
    "timestamp",
    "changes",
    "resets",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "last_over_time",
    "group",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana query) selects."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^{}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\w+", " ", e)  # Grafana variables
    e = re.sub(r"\blabel_values\(([^,()]*),[^()]*\)", r"\1", e)  # Grafana label_values(metric, label)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if word.lower() in PROMQL_WORDS:
            continue
        if call:
            assert word in PROMQL_FUNCTIONS, f"unknown PromQL function {word} in {expr!r}"
            continue
        names.add(word)
    return names


def assert_only_rotor_metrics(expr: str, where: str) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    for name in names:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        ok = name in METRICS or (base in HISTOGRAMS and name != base)
        assert ok, f"{where}: {name} is not a metric of DESIGN §5 ({expr!r})"


def test_metric_name_parser_catches_strangers() -> None:
    assert metric_names('sum by (le, store) (rate(rotor_x_bucket{a="b"}[5m])) / on(x) up') == {
        "rotor_x_bucket",
        "up",
    }
    with pytest.raises(AssertionError):
        assert_only_rotor_metrics("rate(rotor_syncs_total[5m])", "test")
    with pytest.raises(AssertionError):
        assert_only_rotor_metrics("rotor_sync_duration_seconds_bucket_total", "test")


def dashboard() -> dict[str, Any]:
    return json.loads((CHART / "files" / "dashboards" / "rotor.json").read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    out = []
    for p in dashboard()["panels"]:
        out.append(p)
        out += p.get("panels", [])
    return out


def test_dashboard_is_a_grafana_dashboard_over_rotor_metrics() -> None:
    d = dashboard()
    assert d["uid"] and d["title"] == "Rotor" and d["schemaVersion"] >= 36
    panels = [p for p in dashboard_panels() if p["type"] != "row"]
    assert len({p["id"] for p in dashboard_panels()}) == len(dashboard_panels()), "panel ids are unique"
    used: set[str] = set()
    for p in panels:
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert_only_rotor_metrics(t["expr"], f"panel {p['title']!r}")
            used |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in metric_names(t["expr"])}
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            assert_only_rotor_metrics(v["query"]["query"], f"variable {v['name']}")
    # Every metric is on the dashboard somewhere.
    assert used == METRICS, f"not on the dashboard: {sorted(METRICS - used)}"
    titles = {p["title"] for p in panels}
    assert {
        "Time until expiry",
        "Backend calls by store and result",
        "Workload restarts by kind and result",
    } <= titles


def prometheus_rule_exprs() -> dict[str, list[str]]:
    """The alert expressions of templates/prometheusrule.yaml, read without helm."""
    text = (CHART / "templates" / "prometheusrule.yaml").read_text()
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"- alert: (\w+)\n\s+expr: \|\n((?:\s{12,}.*\n)+)", text):
        expr = re.sub(r"\{\{.*?\}\}", "1", m.group(2))
        out.setdefault(m.group(1), []).append(expr)
    return out


def test_alerts_use_only_rotor_metrics() -> None:
    exprs = prometheus_rule_exprs()
    assert set(exprs) >= ALERTS
    for alert, items in exprs.items():
        for expr in items:
            assert_only_rotor_metrics(expr, f"alert {alert}")
    assert any('result="error"' in e for e in exprs["RotationFailed"])
    assert any("rotor_managedsecret_ready" in e for e in exprs["SyncFailing"])
    assert any('rotor_sync_total{result="error"}' in e for e in exprs["SyncErrorRatioHigh"])
    # promtool check rules --lint-fatal refuses two rules with the same name and labels
    assert all(len(items) == 1 for items in exprs.values()), {a: len(i) for a, i in exprs.items()}


def test_metrics_doc_describes_every_metric_and_alert() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    missing = [m for m in sorted(METRICS) if f"`{m}" not in doc]
    assert not missing, f"docs/metrics.md does not describe {missing}"
    assert all(a in doc for a in ALERTS)


# --- promtool ------------------------------------------------------------------------------------------

PROMTOOL_TESTS = ROOT / "tests" / "promtool" / "rules_test.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    from rotor.devenv import binaries

    path = binaries.locate("promtool")
    if path is None:
        pytest.fail(
            "no promtool binary ($ROTOR_PROMTOOL_BIN, PATH or ~/.cache/rotor/promtool-*/promtool): "
            "run `hack/build-binaries.sh promtool` (CI builds it)",
            pytrace=False,
        )
    return str(path)


def rendered_rules(helm: str, directory: pathlib.Path) -> tuple[pathlib.Path, set[str]]:
    """The chart's PrometheusRule (all alerts: serviceMonitor on) as a Prometheus rules file."""
    rule = one(render(helm, "prometheusRule.enabled=true", "serviceMonitor.enabled=true"), "PrometheusRule")
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    return path, alerts


def test_alert_rules_pass_promtool_lint_fatal(helm: str, promtool: str, tmp_path: pathlib.Path) -> None:
    path, alerts = rendered_rules(helm, tmp_path)
    assert alerts >= ALERTS
    proc = subprocess.run(
        [promtool, "check", "rules", "--lint-fatal", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"promtool check rules --lint-fatal:\n{proc.stdout}\n{proc.stderr}"


def test_every_alert_fires_and_stays_quiet_in_promtool_tests(
    helm: str, promtool: str, tmp_path: pathlib.Path
) -> None:
    _, alerts = rendered_rules(helm, tmp_path)
    tests = yaml.safe_load(PROMTOOL_TESTS.read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == alerts, f"alerts without a firing case: {sorted(alerts - firing)}"
    assert quiet == alerts, f"alerts without a case where they stay quiet: {sorted(alerts - quiet)}"
    shutil.copy(PROMTOOL_TESTS, tmp_path / "rules_test.yaml")
    proc = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "rules_test.yaml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"promtool test rules:\n{proc.stdout}\n{proc.stderr}"


# --- durations -------------------------------------------------------------------------------------------

# Rotor's own durations (rotor run's flags, the CRDs): api/duration.py's grammar.
ROTOR_DURATIONS = ("restartDebounce", "restartMinInterval")
# Durations handed to Prometheus (ServiceMonitor, rule `for:` and ranges): Prometheus' grammar.
PROMETHEUS_DURATIONS = (
    "serviceMonitor.interval",
    "serviceMonitor.scrapeTimeout",
    "prometheusRule.thresholds.expiringSoonFor",
    "prometheusRule.thresholds.expiredFor",
    "prometheusRule.thresholds.syncFailingFor",
    "prometheusRule.thresholds.rotationFailedWindow",
    "prometheusRule.thresholds.storeNotReadyFor",
    "prometheusRule.thresholds.rotorDownFor",
)
ROTOR_GOOD = ("30s", "0", "500ms", "1.5s", "1h30m", "2d", "720h")
ROTOR_BAD = ("500us", "10ns", "1µs", "30", "-1s", "1h 30m", "", "1.s", "s")
PROMETHEUS_GOOD = ("30s", "1m30s", "0m", "1h", "1w", "500ms")
PROMETHEUS_BAD = ("1.5m", "500us", "30", "-1s", "1h 30m", "")


def with_value(path: str, value: Any) -> dict[str, Any]:
    out = values()
    node = out
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return out


def schema_node(path: str) -> dict[str, Any]:
    node = schema()
    for p in path.split("."):
        node = node["properties"][p]
    return node


def test_every_duration_in_values_is_one_of_the_two_grammars() -> None:
    def walk(node: dict[str, Any], path: str) -> Iterable[str]:
        if "pattern" in node and "ms" in node["pattern"]:
            yield path
        for name, sub in (node.get("properties") or {}).items():
            yield from walk(sub, f"{path}.{name}" if path else name)

    assert set(walk(schema(), "")) == set(ROTOR_DURATIONS) | set(PROMETHEUS_DURATIONS)


def test_rotor_durations_in_values_use_the_cli_and_crd_grammar() -> None:
    import jsonschema

    from rotor.api.duration import DURATION_PATTERN, parse_duration

    validator = jsonschema.Draft7Validator(schema())
    for path in ROTOR_DURATIONS:
        assert schema_node(path)["pattern"] == DURATION_PATTERN, f"{path}: not api/duration.py's pattern"
        for good in ROTOR_GOOD:
            parse_duration(good)  # rotor run accepts it
            assert validator.is_valid(with_value(path, good)), f"{path}={good!r} refused by the schema"
        for bad in ROTOR_BAD:
            with pytest.raises(ValueError):
                parse_duration(bad)
            assert not validator.is_valid(with_value(path, bad)), f"{path}={bad!r} accepted by the schema"


def test_prometheus_durations_in_values_use_prometheus_grammar() -> None:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema())
    for path in PROMETHEUS_DURATIONS:
        for good in PROMETHEUS_GOOD:
            assert validator.is_valid(with_value(path, good)), f"{path}={good!r} refused"
        for bad in PROMETHEUS_BAD:
            assert not validator.is_valid(with_value(path, bad)), f"{path}={bad!r} accepted"


def test_a_duration_rotor_run_refuses_is_refused_by_helm(helm: str) -> None:
    proc = run_helm(
        helm,
        "template",
        "rotor",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "restartDebounce=500us",
    )
    assert proc.returncode != 0 and "restartDebounce" in proc.stderr, proc.stderr


# --- knobs -------------------------------------------------------------------------------------------------


def test_monitoring_objects_need_their_kinds_on_the_cluster(helm: str) -> None:
    sets = ("serviceMonitor.enabled=true", "prometheusRule.enabled=true")
    without = render(helm, *sets, api_versions=())
    assert not by_kind(without, "ServiceMonitor") and not by_kind(without, "PrometheusRule")
    with_kinds = render(helm, *sets)
    assert one(with_kinds, "ServiceMonitor") and one(with_kinds, "PrometheusRule")
    only_rules = render(helm, *sets, api_versions=("monitoring.coreos.com/v1/PrometheusRule",))
    rule = one(only_rules, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "RotorDown" not in alerts, "RotorDown relies on the ServiceMonitor's namespace label"


def test_platform_knobs(helm: str) -> None:
    objs = render(
        helm,
        "commonLabels.team=platform",
        "deploymentAnnotations.owner=sre",
        "revisionHistoryLimit=2",
        "strategy.type=Recreate",
        "terminationGracePeriodSeconds=90",
        "dnsConfig.searches[0]=svc.example",
        "priorityClassName=system-cluster-critical",
        "probes.liveness.periodSeconds=20",
        "probes.readiness.failureThreshold=6",
        "probes.startup.failureThreshold=120",
        "extraVolumes[0].name=vault-ca",
        "extraVolumes[0].configMap.name=vault-ca",
        "extraVolumeMounts[0].name=vault-ca",
        "extraVolumeMounts[0].mountPath=/etc/vault-ca",
        "extraContainers[0].name=sidecar",
        "extraContainers[0].image=busybox",
        "serviceMonitor.enabled=true",
        "serviceMonitor.namespace=monitoring",
        "serviceMonitor.relabelings[0].targetLabel=cluster",
        "serviceMonitor.relabelings[0].replacement=prod",
        "serviceMonitor.metricRelabelings[0].action=drop",
        "serviceMonitor.metricRelabelings[0].regex=process_.*",
        "serviceMonitor.metricRelabelings[0].sourceLabels[0]=__name__",
    )
    for o in objs:
        assert o["metadata"]["labels"]["team"] == "platform", o["kind"]
    dep = one(objs, "Deployment")
    assert dep["metadata"]["annotations"] == {"owner": "sre"}
    assert dep["spec"]["revisionHistoryLimit"] == 2
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 90
    assert pod["dnsConfig"] == {"searches": ["svc.example"]}
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert {"name": "vault-ca", "configMap": {"name": "vault-ca"}} in pod["volumes"]
    assert [c["name"] for c in pod["containers"]] == ["rotor", "sidecar"]
    c = container(objs)
    assert {"name": "vault-ca", "mountPath": "/etc/vault-ca"} in c["volumeMounts"]
    assert c["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "metrics"},
        "periodSeconds": 20,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["failureThreshold"] == 6
    assert c["startupProbe"]["failureThreshold"] == 120
    sm = one(objs, "ServiceMonitor")
    assert sm["metadata"]["namespace"] == "monitoring"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["relabelings"] == [{"targetLabel": "cluster", "replacement": "prod"}]
    assert endpoint["metricRelabelings"][0]["action"] == "drop"


def test_extra_objects_are_rendered_and_templated(helm: str, tmp_path: pathlib.Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "extraObjects": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "{{ .Release.Name }}-ca"}},
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: as-text\n  namespace: {{ .Release.Namespace }}\n",
                ]
            }
        )
    )
    proc = run_helm(
        helm,
        "template",
        "rotor",
        str(CHART),
        "-n",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(extra),
    )
    assert proc.returncode == 0, proc.stderr
    objs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    names = {o["metadata"]["name"]: o for o in by_kind(objs, "ConfigMap")}
    assert "rotor-ca" in names and names["as-text"]["metadata"]["namespace"] == NAMESPACE


def test_knob_values_are_checked_by_the_schema(helm: str) -> None:
    for bad in (
        "revisionHistoryLimit=-1",
        "terminationGracePeriodSeconds=soon",
        "probes.liveness.periodSecond=3",
        "probes.readiness.failureThreshold=0",
        "commonLabels.team=null",
        "serviceMonitor.namespace=Not_A_Namespace",
    ):
        proc = run_helm(helm, "template", "rotor", str(CHART), "--kube-version", KUBE_VERSION, "--set", bad)
        assert proc.returncode != 0, f"--set {bad} rendered; values.schema.json must refuse it"


def test_chart_readme_is_generated_from_values() -> None:
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "chart-readme.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    readme = (CHART / "README.md").read_text()
    for key in ("commonLabels", "extraObjects", "probes", "serviceMonitor.metricRelabelings"):
        assert f"`{key}" in readme, key
