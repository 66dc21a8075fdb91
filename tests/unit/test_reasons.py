"""Every condition reason the code can emit is a member of ``Reason`` (api/status.py): the source
is scanned for the places a reason is given, so a new literal that is not in the enum fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rotor
from rotor.api.status import Reason
from rotor.conditions import readiness_conditions
from rotor.values import errors as value_errors

ROOT = Path(rotor.__file__).parent
MEMBERS = {r.value for r in Reason}
#: literals named ``reason`` that are never written into a condition, and where they are
NOT_CONDITIONS = {
    "": "inventory.py: a report row without a reason",
    "Pending": "services/stores.py: a StoreHandle's reason before its first validation (status is "
    "written only after it)",
}
#: calls whose argument at this position (or keyword) is a condition reason
REASON_ARGS = {
    "set_condition": (3, "reason"),
    "readiness_conditions": (None, "reason"),
    "SyncFailure": (0, "reason"),
    "StoreProblem": (0, "reason"),
}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _literals(node: ast.expr) -> list[str]:
    """String literals an expression can evaluate to (through conditional expressions)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    return []


def emitted_reasons() -> dict[str, list[str]]:
    """reason literal -> where it is given."""
    found: dict[str, list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in REASON_ARGS:
                position, keyword = REASON_ARGS[_name(node.func)]
                args: list[ast.expr] = []
                if position is not None and len(node.args) > position:
                    args.append(node.args[position])
                args += [k.value for k in node.keywords if k.arg == keyword]
                for arg in args:
                    for literal in _literals(arg):
                        found.setdefault(literal, []).append(f"{where}:{node.lineno}")
            # a provider error's reason mapped to a condition reason: {"KeyNotFound": ...}.get(.., default)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Dict)
            ):
                for value in [*node.func.value.values, *node.args[1:]]:
                    if value is not None:
                        for literal in _literals(value):
                            found.setdefault(literal, []).append(f"{where}:{node.lineno}")
            # ``x.reason = "..."``, ``a, x.reason = ..., "..."`` and ``reason: str = "..."``
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    pairs: list[tuple[ast.expr, ast.expr]] = []
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        pairs = list(zip(target.elts, node.value.elts, strict=False))
                    else:
                        pairs = [(target, node.value)]
                    for t, v in pairs:
                        if isinstance(t, ast.Attribute) and t.attr == "reason":
                            for literal in _literals(v):
                                found.setdefault(literal, []).append(f"{where}:{node.lineno}")
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == "reason"
                and node.value is not None
            ):
                for literal in _literals(node.value):
                    found.setdefault(literal, []).append(f"{where}:{node.lineno}")
            # (ready, reason, message) returned by the functions that compute a condition
            if isinstance(node, ast.FunctionDef) and node.name in ("validity", "expiring_condition"):
                for ret in ast.walk(node):
                    if (
                        isinstance(ret, ast.Return)
                        and isinstance(ret.value, ast.Tuple)
                        and len(ret.value.elts) == 3
                    ):
                        for literal in _literals(ret.value.elts[1]):
                            found.setdefault(literal, []).append(f"{where}:{ret.lineno}")
    return found


def test_the_scan_finds_the_reasons_it_should() -> None:
    found = emitted_reasons()
    # the scan sees the known emitters; if these vanish the scan itself is broken
    for expected in (
        "InvalidSpec",
        "SecretConflict",
        "KeyNotFound",
        "StoreNotFound",
        "ProviderError",
        "InvalidConfig",
        "Valid",
    ):
        assert expected in found, expected


def test_every_reason_literal_in_the_code_is_a_reason_member() -> None:
    strays = {
        reason: where
        for reason, where in emitted_reasons().items()
        if reason not in MEMBERS and reason not in NOT_CONDITIONS
    }
    assert not strays, f"condition reasons that are not members of Reason: {strays}"


def test_rotation_check_reasons_come_from_the_enum() -> None:
    from rotor.rotation import checks

    for name in ("MANUAL", "EXPIRING", "SCHEDULED", "EXPIRES_SOON", "EXPIRED", "ROTATION_OVERDUE", "VALID"):
        assert getattr(checks, name) in MEMBERS, name


@pytest.mark.parametrize(
    "cls",
    [
        value_errors.ValueFailure,
        value_errors.ValidationFailed,
        value_errors.TemplateError,
        value_errors.PropertyNotFound,
        value_errors.InvalidSpec,
        value_errors.TooLarge,
    ],
)
def test_value_failures_carry_enum_reasons(cls: type[value_errors.ValueFailure]) -> None:
    assert cls.reason in MEMBERS


@pytest.mark.parametrize("ready", [True, False])
@pytest.mark.parametrize("reason", ["Synced", "InvalidSpec", "ProviderError", "SecretConflict"])
def test_readiness_conditions_emit_only_members(ready: bool, reason: str) -> None:
    import datetime as dt

    conditions = readiness_conditions(
        [], ready=ready, reason=reason, message="m", generation=1, now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    assert {c["reason"] for c in conditions} <= MEMBERS
