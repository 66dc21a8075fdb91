"""The committed CRDs and reference docs are exactly what the models generate, and they are CRDs a real
kube-apiserver accepts: structural, with bounded CEL, the names and columns users type and see."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotor.api import KINDS
from rotor.api.crdgen import check_files, generate_crds, main, render_files, write_files
from rotor.api.schema import structural_problems, to_structural

REPO = Path(__file__).resolve().parents[2]
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in generate_crds()}


def _schema(kind: str) -> dict[str, Any]:
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


# --------------------------------------------------------------------------- no drift


def test_committed_files_match_the_models() -> None:
    drifted = check_files(REPO)
    assert drifted == [], f"run `python -m rotor.api.crdgen`; drifted: {drifted}"


def test_committed_crds_are_what_the_installers_get() -> None:
    for kind, crd in CRDS.items():
        path = REPO / "crds" / f"{crd['metadata']['name']}.yaml"
        assert yaml.safe_load(path.read_text(encoding="utf-8")) == crd, kind


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for rel in render_files():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    return tmp_path


def test_check_lists_an_edited_a_missing_and_a_stale_file(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--root", str(checkout)]) == 0

    crd = checkout / "crds" / "managedsecrets.rotor.dev.yaml"
    crd.write_text(crd.read_text(encoding="utf-8").replace("maxItems: 100", "maxItems: 5"), encoding="utf-8")
    (checkout / "docs" / "reference" / "secretstore.md").unlink()
    (checkout / "crds" / "oldthings.rotor.dev.yaml").write_text("# a kind that no longer exists\n")

    assert check_files(checkout) == [
        "crds/managedsecrets.rotor.dev.yaml",
        "crds/oldthings.rotor.dev.yaml",
        "docs/reference/secretstore.md",
    ]
    assert main(["--check", "--root", str(checkout)]) == 1
    assert "crds/managedsecrets.rotor.dev.yaml" in capsys.readouterr().err

    written = write_files(checkout)
    assert "crds/oldthings.rotor.dev.yaml" in written
    assert check_files(checkout) == []


# --------------------------------------------------------------------------- CRD shape


@pytest.mark.parametrize(
    ("kind", "plural", "scope", "short"),
    [
        ("ManagedSecret", "managedsecrets", "Namespaced", "ms"),
        ("SecretStore", "secretstores", "Namespaced", "ss"),
        ("ClusterSecretStore", "clustersecretstores", "Cluster", "css"),
        ("RotationPolicy", "rotationpolicies", "Namespaced", "rp"),
        ("ClusterRotationPolicy", "clusterrotationpolicies", "Cluster", "crp"),
    ],
)
def test_names_scope_and_subresources(kind: str, plural: str, scope: str, short: str) -> None:
    crd = CRDS[kind]
    assert crd["metadata"]["name"] == f"{plural}.rotor.dev"
    assert crd["spec"]["group"] == "rotor.dev"
    assert crd["spec"]["scope"] == scope
    assert crd["spec"]["names"]["shortNames"] == [short]
    assert crd["spec"]["names"]["categories"] == ["rotor"]
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def _columns(kind: str) -> dict[str, tuple[str, str]]:
    version = CRDS[kind]["spec"]["versions"][0]
    return {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}


def test_managed_secret_columns() -> None:
    assert _columns("ManagedSecret") == {
        "Ready": ("string", '.status.conditions[?(@.type=="Ready")].status'),
        "Reason": ("string", '.status.conditions[?(@.type=="Ready")].reason'),
        "Rotation": ("string", '.status.conditions[?(@.type=="Rotating")].reason'),
        # future times as strings: a date column shows <invalid> for anything ahead of now
        "Expires": ("string", ".status.expiry.notAfter"),
        "Next Rotation": ("string", ".status.rotation.nextRotationTime"),
        "Age": ("date", ".metadata.creationTimestamp"),
        "Message": ("string", '.status.conditions[?(@.type=="Ready")].message'),
    }


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("SecretStore", ["Ready", "Capabilities", "Age"]),
        ("ClusterSecretStore", ["Ready", "Capabilities", "Age"]),
        ("RotationPolicy", ["Strategy", "Age"]),
        ("ClusterRotationPolicy", ["Strategy", "Age"]),
    ],
)
def test_store_and_policy_columns(kind: str, names: list[str]) -> None:
    assert list(_columns(kind)) == names


def _resolves(schema: dict[str, Any], json_path: str) -> bool:
    node = schema
    for part in re.sub(r"\[\?\(.*?\)\]", "[]", json_path).strip(".").split("."):
        if part == "metadata" and node is schema:
            return True
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        node = node.get("properties", {}).get(name, {})
        if is_list:
            node = node.get("items", {})
        if not node:
            return False
    return True


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_printer_column_points_at_a_field_in_the_schema(kind: str) -> None:
    for name, (_, json_path) in _columns(kind).items():
        assert _resolves(_schema(kind), json_path), f"{kind} column {name}: {json_path}"


# --------------------------------------------------------------------------- structural and bounded


@pytest.mark.parametrize("kind", list(KINDS))
def test_schema_is_structural(kind: str) -> None:
    schema = _schema(kind)
    assert structural_problems(schema["properties"]["spec"], ".spec") == []
    assert structural_problems(schema["properties"]["status"], ".status") == []
    for path, node in _walk(schema["properties"]["spec"], ".spec"):
        assert "type" in node, path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
    assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True
    assert schema["required"] == ["spec"]


def test_structural_checker_finds_what_pydantic_leaves_behind() -> None:
    raw = {
        "title": "X",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "b": {"$ref": "#/$defs/B"},
            "c": {"type": "number", "exclusiveMinimum": 0},
        },
        "additionalProperties": False,
    }
    problems = structural_problems(raw)
    assert any("title" in p for p in problems)
    assert any(".a: anyOf" in p for p in problems)
    assert any(".b: $ref" in p for p in problems)
    assert any("<root>: no type" in p for p in problems)
    assert any("additionalProperties: false" in p for p in problems)
    with pytest.raises(ValueError, match="union of several types"):
        to_structural(raw)


def test_optional_models_are_inlined_with_the_field_description() -> None:
    rotation = _schema("ManagedSecret")["properties"]["spec"]["properties"]["rotation"]
    assert rotation["type"] == "object"
    assert rotation["description"].startswith("Rotate some keys")
    assert "policyRef" in rotation["properties"]


def test_exclusive_bounds_use_openapi_v3_booleans() -> None:
    qps = _schema("SecretStore")["properties"]["spec"]["properties"]["rateLimit"]["properties"]["qps"]
    assert (qps["minimum"], qps["exclusiveMinimum"], qps["default"]) == (0, True, 200)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_pattern_compiles(kind: str) -> None:
    for path, node in _walk(_schema(kind)):
        if "pattern" in node:
            re.compile(node["pattern"])
            assert "(?" not in node["pattern"], f"{path}: lookaround or flags are not RE2"


@pytest.mark.parametrize("kind", list(KINDS))
def test_cel_rules_have_messages_and_reference_existing_fields(kind: str) -> None:
    for path, node in _walk(_schema(kind)["properties"]["spec"], ".spec"):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"] and not rule["message"].endswith("."), (path, rule)
            for name in re.findall(r"self\.(\w+)", rule["rule"]):
                if name == "matches":
                    continue
                assert name in node.get("properties", {}), f"{path}: rule {rule['rule']!r} reads {name}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_cel_cost_is_bounded(kind: str) -> None:
    """The apiserver estimates CEL cost from maxItems/maxLength; unbounded ones can exceed the budget."""
    for path, node in _walk(_schema(kind)["properties"]["spec"], ".spec"):
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: arrays need maxItems"
        for rule in node.get("x-kubernetes-validations", []):
            for name in re.findall(
                r"(?<!has\()self\.(\w+)", rule["rule"]
            ):  # has() costs the same for any size
                target = node.get("properties", {}).get(name, {})
                if target.get("type") == "string":
                    assert "maxLength" in target or "enum" in target, f"{path}.{name}"
            if node.get("type") == "string":
                assert "maxLength" in node, path


def test_defaults_from_the_design_are_in_the_crd() -> None:
    ms = _schema("ManagedSecret")["properties"]["spec"]["properties"]
    assert ms["storeRef"]["properties"]["kind"]["default"] == "SecretStore"
    assert ms["target"]["properties"]["creationPolicy"]["default"] == "Owner"
    assert ms["target"]["properties"]["deletionPolicy"]["default"] == "Retain"
    assert ms["data"]["items"]["properties"]["decode"]["default"] == "None"
    assert ms["refresh"]["properties"]["interval"]["default"] == "1h"
    assert ms["refresh"]["properties"]["policy"]["default"] == "Periodic"
    assert ms["rollout"]["properties"]["strategy"]["default"] == "None"
    vault = _schema("SecretStore")["properties"]["spec"]["properties"]["provider"]["properties"]["vault"]
    assert vault["properties"]["kv"]["properties"]["version"]["default"] == 2
    rp = _schema("RotationPolicy")["properties"]["spec"]["properties"]
    assert rp["strategy"]["default"] == "Generate"
    assert rp["previousKeySuffix"]["default"] == "_previous"
    # a preset's gracePeriod must be able to apply, so the API server must not fill one in
    assert "default" not in rp["gracePeriod"]


def test_status_has_no_defaults_and_conditions_merge_by_type() -> None:
    status = _schema("ManagedSecret")["properties"]["status"]
    assert all("default" not in node for _, node in _walk(status))
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_cluster_store_refs_require_a_namespace_and_namespaced_ones_have_none() -> None:
    def secret_ref(kind: str) -> dict[str, Any]:
        provider = _schema(kind)["properties"]["spec"]["properties"]["provider"]
        token = provider["properties"]["vault"]["properties"]["auth"]["properties"]["token"]
        ref: dict[str, Any] = token["properties"]["secretRef"]
        return ref

    assert "namespace" in secret_ref("ClusterSecretStore")["required"]
    assert "namespace" not in secret_ref("SecretStore")["properties"]
    spec = _schema("SecretStore")["properties"]["spec"]["properties"]
    assert "conditions" not in spec and "allowedKeys" not in spec


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize("kind", list(KINDS))
def test_reference_docs_describe_every_spec_field_and_rule(kind: str) -> None:
    page = render_files()[f"docs/reference/{kind.lower()}.md"]
    for path, node in _walk(_schema(kind)["properties"]["spec"], "spec"):
        if path == "spec" or path.endswith(("[]", "{}")):
            continue
        row = next((line for line in page.splitlines() if line.startswith(f"| `{path}` |")), None)
        assert row is not None, f"{path} missing from the reference"
        assert node.get("description"), f"{path} has no description"
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"] in page
