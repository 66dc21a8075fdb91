"""The command line's pure parts: report and status rows and their three formats, the answer to a
sync or rotate request, .env parsing, the import backup file and the printed ManagedSecret."""

from __future__ import annotations

import asyncio
import base64
import csv
import datetime as dt
import io
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotor.cli.actions import ROTATE, SYNC, blocked, outcome, progress, request_value, withdraw
from rotor.cli.importer import EnvFileError, Remote, Source, managed_secret, parse_env, write_backup
from rotor.cli.output import CliError, check_kubeconfig, one_line, relative, render_table
from rotor.cli.report import render_report
from rotor.cli.status import render_status
from rotor.inventory import index_objects, report_rows, risk_of, secret_keys, status_row
from rotor.kube.gateway import KubeError

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def _ms(
    name: str,
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    namespace: str = "team-a",
) -> dict[str, Any]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2025-02-01T12:00:00Z"},
        "spec": spec
        or {
            "storeRef": {"name": "vault"},
            "data": [{"secretKey": "password", "remoteRef": {"key": "apps/db", "property": "password"}}],
        },
        "status": status or {},
    }


def _cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2025-02-01T12:00:00Z",
    }


ROTATED = _ms(
    "db",
    spec={
        "storeRef": {"name": "vault"},
        "data": [{"secretKey": "password", "remoteRef": {"key": "apps/db", "property": "password"}}],
        "dataFrom": [{"extract": {"key": "apps/common"}}],
        "rotation": {"policyRef": {"name": "db-30d", "kind": "ClusterRotationPolicy"}, "keys": ["password"]},
    },
    status={
        "conditions": [
            _cond("Ready", "True", "Synced", "Secret db matches the source"),
            _cond("Expiring", "False", "ExpiresSoon"),
            _cond("Rotating", "False", "Succeeded", "no rotation in progress"),
        ],
        "secretName": "db",
        "lastSyncTime": "2025-03-01T09:00:00Z",
        "sourceVersions": {"password": "7", "apps/common": "2"},
        "expiry": {
            "notAfter": "2025-03-30T12:00:00Z",
            "renewalTime": "2025-03-20T12:00:00Z",
            "source": "Policy",
        },
        "rotation": {
            "lastRotationTime": "2025-02-28T12:00:00Z",
            "nextRotationTime": "2025-03-30T12:00:00Z",
            "phase": "Completed",
        },
    },
)
FAILING = _ms(
    "api",
    spec={
        "storeRef": {"name": "aws"},
        "dataFrom": [{"find": {"path": "/apps/", "name": {"regexp": "^api-"}}}],
        "template": {"data": {"URL": "https://{{ host }}"}},
    },
    status={"conditions": [_cond("Ready", "False", "KeyNotFound", "remote secret '/apps/api' not found")]},
)
STORES = [
    {
        "kind": "SecretStore",
        "metadata": {"name": "vault", "namespace": "team-a"},
        "spec": {"provider": {"vault": {"server": "https://vault:8200"}}},
    },
    {
        "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "team-a"},
        "spec": {"provider": {"aws": {"service": "ParameterStore", "region": "eu-west-1"}}},
    },
]
POLICIES = [
    {
        "kind": "ClusterRotationPolicy",
        "metadata": {"name": "db-30d"},
        "spec": {"preset": "database-password", "strategy": "Generate"},
    }
]


def _objects() -> dict[tuple[str, str, str], Any]:
    return {**index_objects("SecretStore", STORES), **index_objects("ClusterRotationPolicy", POLICIES)}


# --------------------------------------------------------------------------- rows


def test_report_rows_come_from_spec_status_store_and_policy() -> None:
    db, api = sorted(report_rows([ROTATED, FAILING], _objects(), NOW), key=lambda r: r.name, reverse=True)
    assert (db.store, db.provider, db.rotation_policy, db.strategy) == (
        "SecretStore/vault",
        "vault",
        "ClusterRotationPolicy/db-30d",
        "Generate",
    )
    assert db.keys == ("password", "extract:apps/common")
    assert db.source_versions == {"apps/common": "2", "password": "7"}
    assert (db.ready, db.reason, db.risk) == ("True", "Synced", "ok")
    assert (api.provider, api.keys) == ("aws", ("find:/apps/ (^api-)", "URL"))
    assert (api.ready, api.reason, api.risk, api.strategy) == ("False", "KeyNotFound", "not-ready", "")


def test_unreadable_store_and_policy_leave_their_columns_empty() -> None:
    (row,) = report_rows([ROTATED], {}, NOW)
    assert (row.provider, row.strategy, row.rotation_policy) == ("", "", "ClusterRotationPolicy/db-30d")


@pytest.mark.parametrize(
    ("conditions", "expiry", "rotation", "want"),
    [
        ([_cond("Ready", "True", "Synced"), _cond("Expiring", "True", "Expired")], None, True, "expired"),
        ([_cond("Ready", "True", "Synced")], {"notAfter": "2025-03-01T11:59:59Z"}, True, "expired"),
        (
            [_cond("Ready", "False", "Expired"), _cond("Expiring", "True", "ExpiresSoon")],
            None,
            True,
            "expiring",
        ),
        (
            [_cond("Ready", "True", "Synced"), _cond("Expiring", "True", "RotationOverdue")],
            None,
            False,
            "expiring",
        ),
        ([_cond("Ready", "False", "ProviderError")], None, True, "not-ready"),
        ([], None, True, "not-ready"),
        ([_cond("Ready", "True", "Synced")], None, False, "no-rotation"),
        (
            [_cond("Ready", "True", "Synced"), _cond("Expiring", "False", "ExpiresSoon")],
            {"notAfter": "2025-04-01T00:00:00Z"},
            True,
            "ok",
        ),
    ],
)
def test_risk(
    conditions: list[dict[str, str]], expiry: dict[str, str] | None, rotation: bool, want: str
) -> None:
    spec: dict[str, Any] = {"storeRef": {"name": "s"}, "data": []}
    if rotation:
        spec["rotation"] = {"policyRef": {"name": "p"}, "keys": ["k"]}
    status: dict[str, Any] = {"conditions": conditions}
    if expiry:
        status["expiry"] = expiry
    assert risk_of(_ms("x", spec=spec, status=status), NOW) == want


def test_secret_keys_are_names_and_source_markers() -> None:
    spec = {
        "data": [{"secretKey": "a"}],
        "dataFrom": [
            {"extract": {"key": "apps/db"}},
            {"find": {"path": "apps/"}},
            {"vaultDatabase": {"role": "app"}},
        ],
        "template": {"data": {"a": "x", "DSN": "y"}},
    }
    assert secret_keys(spec) == ("a", "extract:apps/db", "find:apps/", "vaultDatabase:database/app", "DSN")


# --------------------------------------------------------------------------- report formats (golden)

REPORT_WIDE = """\
NAMESPACE   NAME   STORE               PROVIDER   KEYS                           SOURCE-VERSIONS            LAST-SYNC              LAST-ROTATION          ROTATION-POLICY                STRATEGY   NOT-AFTER              RENEWAL                NEXT-ROTATION          READY   REASON        ROTATION    RISK
team-a      api    SecretStore/aws     aws        find:/apps/ (^api-);URL        -                          -                      -                      -                              -          -                      -                      -                      False   KeyNotFound   -           not-ready
team-a      db     SecretStore/vault   vault      password;extract:apps/common   apps/common=2;password=7   2025-03-01T09:00:00Z   2025-02-28T12:00:00Z   ClusterRotationPolicy/db-30d   Generate   2025-03-30T12:00:00Z   2025-03-20T12:00:00Z   2025-03-30T12:00:00Z   True    Synced        Succeeded   ok
"""

REPORT_TABLE = """\
NAMESPACE   NAME   STORE               READY   REASON        ROTATION    LAST-ROTATION   NOT-AFTER    RISK
team-a      api    SecretStore/aws     False   KeyNotFound   -           -               -            not-ready
team-a      db     SecretStore/vault   True    Synced        Succeeded   2025-02-28      2025-03-30   ok
"""


def test_report_table() -> None:
    out = render_report(report_rows([ROTATED, FAILING], _objects(), NOW), "table", NOW)
    assert out == REPORT_TABLE
    assert max(len(line) for line in out.splitlines()) <= 120


def test_report_wide_has_every_column() -> None:
    out = render_report(report_rows([ROTATED, FAILING], _objects(), NOW), "wide", NOW)
    assert out == REPORT_WIDE


def test_report_json_has_stable_camelcase_keys() -> None:
    doc = json.loads(render_report(report_rows([ROTATED, FAILING], _objects(), NOW), "json", NOW))
    assert doc["generatedAt"] == "2025-03-01T12:00:00Z"
    assert [item["name"] for item in doc["items"]] == ["api", "db"]
    assert doc["items"][1] == {
        "namespace": "team-a",
        "name": "db",
        "store": "SecretStore/vault",
        "provider": "vault",
        "keys": ["password", "extract:apps/common"],
        "sourceVersions": {"apps/common": "2", "password": "7"},
        "lastSyncTime": "2025-03-01T09:00:00Z",
        "lastRotationTime": "2025-02-28T12:00:00Z",
        "rotationPolicy": "ClusterRotationPolicy/db-30d",
        "strategy": "Generate",
        "notAfter": "2025-03-30T12:00:00Z",
        "renewalTime": "2025-03-20T12:00:00Z",
        "nextRotationTime": "2025-03-30T12:00:00Z",
        "ready": True,
        "reason": "Synced",
        "rotation": "Succeeded",
        "risk": "ok",
    }
    assert doc["items"][0]["lastSyncTime"] is None and doc["items"][0]["risk"] == "not-ready"
    assert doc["items"][0]["ready"] is False and doc["items"][0]["rotation"] is None


def test_report_and_status_yaml_are_the_json_documents() -> None:
    rows = report_rows([ROTATED, FAILING], _objects(), NOW)
    assert yaml.safe_load(render_report(rows, "yaml", NOW)) == json.loads(render_report(rows, "json", NOW))
    statuses = [status_row(ROTATED), status_row(FAILING)]
    as_yaml = yaml.safe_load(render_status(statuses, "yaml", NOW))
    assert as_yaml == json.loads(render_status(statuses, "json", NOW))
    assert as_yaml["items"][0]["ready"] is True and as_yaml["items"][1]["ready"] is False


def test_report_csv_has_a_header_row() -> None:
    out = render_report(report_rows([ROTATED, FAILING], _objects(), NOW), "csv", NOW)
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["NAMESPACE", "NAME", "STORE"] and rows[0][-1] == "RISK"
    assert rows[1] == [
        "team-a",
        "api",
        "SecretStore/aws",
        "aws",
        "find:/apps/ (^api-);URL",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "False",
        "KeyNotFound",
        "",
        "not-ready",
    ]
    assert rows[2][4:6] == ["password;extract:apps/common", "apps/common=2;password=7"]


def test_empty_report() -> None:
    assert render_report([], "table", NOW) == "no ManagedSecrets found\n"
    assert json.loads(render_report([], "json", NOW))["items"] == []
    assert render_report([], "csv", NOW).count("\n") == 1


# --------------------------------------------------------------------------- status


def test_status_table_uses_relative_times() -> None:
    out = render_status([status_row(ROTATED), status_row(FAILING)], "table", NOW)
    assert (
        out
        == """\
NAMESPACE   NAME   READY   REASON        ROTATION    SECRET   EXPIRES   NEXT-ROTATION   LAST-SYNC   AGE
team-a      db     True    Synced        Succeeded   db       in 29d    in 29d          3h ago      28d
team-a      api    False   KeyNotFound   -           api      -         -               -           28d
"""
    )


def test_status_wide_and_json() -> None:
    wide = render_status([status_row(FAILING)], "wide", NOW)
    assert "ROTATION-PHASE" in wide.splitlines()[0]
    assert "remote secret '/apps/api' not found" in wide
    doc = json.loads(render_status([status_row(ROTATED)], "json", NOW))
    assert doc["items"][0]["notAfter"] == "2025-03-30T12:00:00Z"
    assert doc["items"][0]["rotationPhase"] == "Completed"


ROTATION_FAILED = _ms(
    "orders",
    spec=ROTATED["spec"],
    status={
        **ROTATED["status"],
        "conditions": [
            _cond("Ready", "True", "Synced", "Secret orders matches the source"),
            _cond("Rotating", "False", "Failed", "rotation needs write access to the source"),
        ],
        "rotation": {"phase": "Failed", "nextRotationTime": "2025-03-30T12:00:00Z"},
    },
)


def test_a_failed_rotation_is_visible_in_status_and_report() -> None:
    """Ready=True Synced must not hide a failed rotation: the default views name it."""
    out = render_status([status_row(ROTATION_FAILED)], "table", NOW)
    header, row = (line.split() for line in out.splitlines())
    assert dict(zip(header, row, strict=False))["ROTATION"] == "Failed"
    wide = render_status([status_row(ROTATION_FAILED)], "wide", NOW)
    assert wide.splitlines()[0].endswith("ROTATION-MESSAGE")
    assert wide.splitlines()[1].endswith("rotation needs write access to the source")
    doc = json.loads(render_status([status_row(ROTATION_FAILED)], "json", NOW))
    assert doc["items"][0]["rotation"] == "Failed"
    assert doc["items"][0]["rotationMessage"] == "rotation needs write access to the source"
    assert risk_of(ROTATION_FAILED, NOW) == "rotation-failed"
    (row_,) = report_rows([ROTATION_FAILED], _objects(), NOW)
    assert (row_.ready, row_.rotation, row_.risk) == ("True", "Failed", "rotation-failed")
    header, row = (line.split() for line in render_report([row_], "table", NOW).splitlines())
    cells = dict(zip(header, row, strict=True))
    assert (cells["READY"], cells["ROTATION"], cells["RISK"]) == ("True", "Failed", "rotation-failed")


def test_a_rotation_that_succeeded_or_runs_is_not_a_risk() -> None:
    running = _ms(
        "orders",
        spec=ROTATED["spec"],
        status={
            "conditions": [_cond("Ready", "True", "Synced"), _cond("Rotating", "True", "Manual")],
            "rotation": {"phase": "Written"},
        },
    )
    assert risk_of(running, NOW) == "ok"
    assert status_row(running).rotation == "Manual"
    assert status_row(FAILING).rotation == ""  # no spec.rotation: nothing to say


@pytest.mark.parametrize(
    ("offset", "want"),
    [
        (0, "now"),
        (45, "in 45s"),
        (-300, "5m ago"),
        (3 * 3600, "in 3h"),
        (-3 * 3600, "3h ago"),
        (29 * 86400 + 3600, "in 29d"),
    ],
)
def test_relative(offset: int, want: str) -> None:
    assert relative(NOW + dt.timedelta(seconds=offset), NOW) == want


def test_render_table_aligns_columns() -> None:
    assert render_table(["A", "LONGER"], [["xx", ""], ["y", "z"]]) == "A    LONGER\nxx   -\ny    z\n"


# --------------------------------------------------------------------------- sync and rotate answers


def _answered(status: dict[str, Any]) -> dict[str, Any]:
    return _ms("db", status=status)


def test_sync_waits_for_its_own_request() -> None:
    ready = [_cond("Ready", "True", "Synced", "Secret db matches the source")]
    assert outcome(_answered({"conditions": ready, "lastForceSync": "older"}), SYNC, "mine") is None
    assert progress(_answered({"conditions": ready}), SYNC) == "waiting for the operator... Ready=True Synced"
    done = outcome(
        _answered({"conditions": ready, "lastForceSync": "mine", "sourceVersions": {"password": "7"}}),
        SYNC,
        "mine",
    )
    assert done is not None and done.ok
    assert done.line == "✔ synced db: Secret db matches the source (version 7)"


def test_sync_failure_names_reason_and_message() -> None:
    failed = [_cond("Ready", "False", "KeyNotFound", "remote secret 'apps/db' not found")]
    result = outcome(_answered({"conditions": failed, "lastForceSync": "mine"}), SYNC, "mine")
    assert result is not None and not result.ok
    assert result.line == "✘ sync of db failed: KeyNotFound: remote secret 'apps/db' not found"


def test_rotate_follows_phases_until_completed_or_failed() -> None:
    value = "20250301T120000Z-abc123"
    pending = {
        "rotation": {"phase": "Written", "lastRotateRequest": value},
        "conditions": [_cond("Rotating", "True", "Manual")],
    }
    assert outcome(_answered(pending), ROTATE, value) is None
    assert progress(_answered(pending), ROTATE) == "rotation phase Written, Rotating=True Manual"
    old = {"rotation": {"phase": "Completed", "lastRotateRequest": "older"}}
    assert outcome(_answered(old), ROTATE, value) is None
    done = {
        "rotation": {"phase": "Completed", "lastRotateRequest": value},
        "sourceVersions": {"a": "8", "b": "2"},
        "conditions": [_cond("Ready", "True", "Synced", "Secret db matches the source")],
    }
    result = outcome(_answered(done), ROTATE, value)
    assert result is not None and result.ok
    assert result.line == "✔ rotated db: Secret db matches the source (versions a=8, b=2)"
    failed = {
        "rotation": {"phase": "Failed", "lastRotateRequest": value},
        "conditions": [
            _cond("Ready", "True", "Synced"),
            _cond("Rotating", "False", "Failed", "CAS conflict"),
        ],
    }
    result = outcome(_answered(failed), ROTATE, value)
    assert result is not None and not result.ok
    assert result.line == "✘ rotation of db failed: Failed: CAS conflict"


def test_request_values_are_new_each_time() -> None:
    first, second = request_value(NOW), request_value(NOW)
    assert first != second and first.startswith("20250301T120000Z-")


# --------------------------------------------------------------------------- .env files

ENV_FILE = r"""
# database
export DB_USER=app
DB_PASSWORD = 's3cr3t # not a comment'   # a comment
DB_URL="postgres://db:5432/app?sslmode=require"
GREETING="line one\nline two \"quoted\""
SINGLE='it\'s literal \n'
EMPTY=
SPACED =   padded value    # trailing comment
HASH=abc#def
MULTI="first
second"
'QUOTED_KEY'=q
DB_USER=app2
"""


def test_parse_env_follows_dotenv_rules() -> None:
    assert parse_env(ENV_FILE) == {
        "DB_USER": "app2",
        "DB_PASSWORD": "s3cr3t # not a comment",
        "DB_URL": "postgres://db:5432/app?sslmode=require",
        "GREETING": 'line one\nline two "quoted"',
        "SINGLE": "it's literal \\n",
        "EMPTY": "",
        "SPACED": "padded value",
        "HASH": "abc#def",
        "MULTI": "first\nsecond",
        "QUOTED_KEY": "q",
    }


def test_parse_env_keeps_dollar_signs_literal() -> None:
    assert parse_env('A=${HOME}/x\nB="$PATH"\n') == {"A": "${HOME}/x", "B": "$PATH"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GOOD=1\nBAD:KEY=hunter2-value\n", "line 2: 'BAD:KEY' is not a valid key"),
        ("just-a-token-hunter2\n", "line 1: expected KEY=VALUE"),
        ("A=1\nB='hunter2-value\n", "line 2: the quoted value of 'B' is never closed"),
        ('C="hunter2-value" trailing\n', "line 1: unexpected text after the quoted value of 'C'"),
        ("=hunter2-value\n", "line 1: expected KEY=VALUE"),
    ],
)
def test_parse_env_refuses_bad_lines_without_showing_values(text: str, message: str) -> None:
    with pytest.raises(EnvFileError) as info:
        parse_env(text)
    assert str(info.value).startswith(message)
    assert "hunter2" not in str(info.value)


# --------------------------------------------------------------------------- import backup and manifest


def test_backup_is_private_and_holds_source_and_previous(tmp_path: Path) -> None:
    source = Source(
        "Secret ns/db", {"password": "pa55-word"}, {"type": "Secret", "namespace": "ns", "name": "db"}
    )
    previous = Remote("3", {"password": b"old-value"})
    path = write_backup(tmp_path / "backups", "db", NOW, source, {"key": "apps/db"}, previous)
    again = write_backup(tmp_path / "backups", "db", NOW, source, {"key": "apps/db"}, None)
    assert path.name == "20250301T120000Z-db.json" and again != path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert base64.b64decode(doc["data"]["password"]) == b"pa55-word"
    assert doc["previous"]["version"] == "3"
    assert base64.b64decode(doc["previous"]["data"]["password"]) == b"old-value"
    assert json.loads(again.read_text())["previous"] is None


def test_managed_secret_owns_or_adopts() -> None:
    owned = managed_secret(
        "db", "ns", "SecretStore", "vault", {"extract": {"key": "apps/db"}}, secret_type="Opaque", adopt=False
    )
    assert owned["spec"] == {
        "storeRef": {"name": "vault", "kind": "SecretStore"},
        "target": {"name": "db", "creationPolicy": "Owner"},
        "dataFrom": [{"extract": {"key": "apps/db"}}],
    }
    adopted = managed_secret(
        "tls",
        "ns",
        "ClusterSecretStore",
        "ssm",
        {"find": {"path": "/apps/tls/"}},
        secret_type="kubernetes.io/tls",
        adopt=True,
    )
    assert adopted["spec"]["target"] == {
        "name": "tls",
        "creationPolicy": "Merge",
        "type": "kubernetes.io/tls",
    }


# --------------------------------------------------------------------------- rotate: fail fast, withdraw


def _store(status: str | None, reason: str = "", message: str = "") -> dict[str, Any]:
    conditions = [_cond("Ready", status, reason, message)] if status else []
    return {"kind": "SecretStore", "metadata": {"name": "vault"}, "status": {"conditions": conditions}}


@pytest.mark.parametrize(
    ("store", "ready", "want"),
    [
        (None, None, "SecretStore 'vault' does not exist"),
        (
            _store("False", "AuthFailed", "permission denied"),
            None,
            "SecretStore 'vault' is not Ready: AuthFailed: permission denied",
        ),
        (
            _store("True", "Valid"),
            _cond("Ready", "False", "Forbidden", "namespace team-a may not use it"),
            "ManagedSecret cannot use SecretStore 'vault': Forbidden: namespace team-a may not use it",
        ),
        (_store("True", "Valid"), _cond("Ready", "False", "StoreNotReady", "x"), "StoreNotReady: x"),
        # not refusals: a store not looked at yet, a sync failing for a reason a rotation may fix
        (_store(None), None, None),
        (_store("True", "Valid"), _cond("Ready", "False", "KeyNotFound", "y"), None),
        (_store("True", "Valid"), _cond("Ready", "True", "Synced"), None),
    ],
)
def test_rotate_is_blocked_by_the_store_or_a_refused_sync(
    store: dict[str, Any] | None, ready: dict[str, str] | None, want: str | None
) -> None:
    ms = _ms("db", status={"conditions": [ready] if ready else []})
    why = blocked(ms, store, "SecretStore 'vault'")
    if want is None or want.startswith(("SecretStore", "ManagedSecret")):
        assert why == want
    else:
        assert why is not None and why.endswith(want)


def test_a_stale_refused_sync_does_not_block() -> None:
    ms = _ms("db", status={"conditions": [{**_cond("Ready", "False", "Forbidden"), "observedGeneration": 1}]})
    ms["metadata"]["generation"] = 2  # the spec changed since: the operator has not judged it yet
    assert blocked(ms, _store("True", "Valid"), "SecretStore 'vault'") is None


class _Gateway:
    """Just what ``withdraw`` uses: get_object and a merge patch that honours resourceVersion."""

    def __init__(self, ms: dict[str, Any], bump_once: bool = False) -> None:
        self.ms = ms
        self.bump_once = bump_once
        self.patches: list[dict[str, Any]] = []

    async def get_object(self, kind: str, name: str, namespace: str | None) -> dict[str, Any]:
        return json.loads(json.dumps(self.ms))

    async def patch_object(self, kind: str, name: str, namespace: str | None, patch: dict[str, Any]) -> None:
        self.patches.append(patch)
        if self.bump_once:  # someone wrote in between: the precondition fails once
            self.bump_once = False
            self.ms["metadata"]["resourceVersion"] = str(int(self.ms["metadata"]["resourceVersion"]) + 1)
            raise KubeError(409, "the object has been modified")
        assert patch["metadata"]["resourceVersion"] == self.ms["metadata"]["resourceVersion"]
        for key, value in patch["metadata"]["annotations"].items():
            if value is None:
                self.ms["metadata"]["annotations"].pop(key, None)


def _requested(value: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    ms = _ms("db", status=status)
    ms["metadata"].update({"resourceVersion": "7", "annotations": {"rotor.dev/rotate": value}})
    return ms


def test_an_abandoned_request_is_withdrawn() -> None:
    gateway = _Gateway(_requested("mine"), bump_once=True)
    note = asyncio.run(withdraw(gateway, "team-a", "db", ROTATE, "mine"))  # type: ignore[arg-type]
    assert note == "withdrew rotor.dev/rotate=mine: nothing will rotate later"
    assert gateway.ms["metadata"]["annotations"] == {}
    assert len(gateway.patches) == 2  # the 409 made it look again


def test_a_request_taken_or_replaced_is_left_alone() -> None:
    taken = _Gateway(_requested("mine", {"rotation": {"lastRotateRequest": "mine", "phase": "Written"}}))
    note = asyncio.run(withdraw(taken, "team-a", "db", ROTATE, "mine"))  # type: ignore[arg-type]
    assert note.startswith("the operator had already taken rotor.dev/rotate=mine")
    replaced = _Gateway(_requested("someone-else"))
    note = asyncio.run(withdraw(replaced, "team-a", "db", ROTATE, "mine"))  # type: ignore[arg-type]
    assert note == "rotor.dev/rotate no longer holds mine: left as it is"
    assert taken.patches == [] and replaced.patches == []
    assert replaced.ms["metadata"]["annotations"] == {"rotor.dev/rotate": "someone-else"}


# --------------------------------------------------------------------------- one line, kubeconfig


def test_multi_line_backend_errors_are_folded_into_one_line() -> None:
    vault = "1 error occurred:\n\t* permission denied\n\n"
    assert one_line(vault) == "1 error occurred:; * permission denied"
    assert (
        render_table(["A", "MESSAGE"], [["x", vault]])
        == "A   MESSAGE\nx   1 error occurred:; * permission denied\n"
    )
    failed = {
        "rotation": {"phase": "Failed", "lastRotateRequest": "mine"},
        "conditions": [_cond("Rotating", "False", "Failed", "write refused:\n  403 Forbidden\n")],
    }
    result = outcome(_answered(failed), ROTATE, "mine")
    assert (
        result is not None and result.line == "✘ rotation of db failed: Failed: write refused:; 403 Forbidden"
    )


def test_a_missing_kubeconfig_is_said_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CliError) as info:
        check_kubeconfig(None, {})
    assert info.value.message == (
        f"no kubeconfig: {tmp_path}/.kube/config does not exist and KUBECONFIG is not set; point "
        "KUBECONFIG at your cluster's kubeconfig, or pass --kubeconfig PATH"
    )
    with pytest.raises(CliError, match=r"--kubeconfig\) does not exist"):
        check_kubeconfig(str(tmp_path / "nope"), {})
    with pytest.raises(CliError, match=r"^KUBECONFIG=/a:/b: no such file"):
        check_kubeconfig(None, {"KUBECONFIG": "/a:/b"})
    check_kubeconfig(None, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})  # in a pod: in-cluster credentials
    (tmp_path / "config").write_text("")
    check_kubeconfig(None, {"KUBECONFIG": f"/a:{tmp_path / 'config'}"})


def test_usage_errors_are_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    from rotor.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["rotate", "--timeout", "0s", "app"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: argument --timeout: the timeout must be more than 0 (see: rotor rotate --help)\n"
