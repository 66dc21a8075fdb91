"""Pydantic JSON Schema -> Kubernetes structural OpenAPI v3 schema.

Pydantic writes JSON Schema 2020-12: ``$ref``/``$defs``, ``anyOf [X, null]`` for optional fields,
``title``, ``const``, numeric ``exclusiveMinimum`` and ``additionalProperties: false``. A CRD wants
every schema inlined and typed, no ``anyOf`` around types, OpenAPI 3.0 boolean exclusive bounds, and no
``additionalProperties`` beside ``properties`` (unknown fields are pruned instead).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

__all__ = ["model_schema", "structural_problems", "to_structural"]

_DROP = {"title", "examples", "$defs", "readOnly", "writeOnly", "deprecated", "$schema"}

# Stable, readable key order in the generated YAML.
_ORDER = [
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
]


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of ``model`` as the API sees it (camelCase, validation mode)."""
    return to_structural(model.model_json_schema(by_alias=True, mode="validation"))


def to_structural(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.get("$defs", {})
    return _convert(schema, defs, ())


def _resolve(ref: str, defs: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}")
    return copy.deepcopy(defs[ref[len(prefix) :]])


def _merge(inner: dict[str, Any], outer: dict[str, Any]) -> dict[str, Any]:
    """``outer``'s own keys (a field's description, default) win over the referenced model's."""
    merged = dict(inner)
    for key, value in outer.items():
        if key in ("$ref", "anyOf", "allOf"):
            continue
        if key == "x-kubernetes-validations":
            merged[key] = [*merged.get(key, []), *value]
        else:
            merged[key] = value
    return merged


def _convert(node: dict[str, Any], defs: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise ValueError(f"recursive schema through {ref}; CRD schemas cannot recurse")
        return _convert(_merge(_resolve(ref, defs), node), defs, (*seen, ref))
    if "allOf" in node:
        if len(node["allOf"]) != 1:
            raise ValueError("allOf with several schemas cannot be made structural")
        return _convert(_merge(node["allOf"][0], node), defs, seen)
    if "anyOf" in node or "oneOf" in node:
        options = [o for o in node.get("anyOf", node.get("oneOf", [])) if o != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"union of several types cannot be made structural: {options}")
        rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
        return _convert(_merge(options[0], rest), defs, seen)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, seen) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, seen)
        elif key == "additionalProperties":
            if isinstance(value, dict) and "properties" not in node:
                out[key] = _convert(value, defs, seen)
            # `false` (unknown fields refused) is expressed by pruning in a structural schema.
        else:
            out[key] = copy.deepcopy(value)
    if out.get("type") == "object" and "properties" in out and not out["properties"]:
        del out["properties"]
    return {k: out[k] for k in sorted(out, key=lambda k: (_ORDER.index(k) if k in _ORDER else 99, k))}


_FORBIDDEN = ("$ref", "allOf", "anyOf", "oneOf", "not", "title", "const", "examples", "nullable", "$defs")


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """What keeps ``schema`` from being a structural schema Rotor is willing to ship (empty: fine)."""
    problems: list[str] = []
    where = path or "<root>"
    for key in _FORBIDDEN:
        if key in schema:
            problems.append(f"{where}: {key} is not allowed")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if "type" not in schema and not preserve:
        problems.append(f"{where}: no type")
    if "default" in schema and schema["default"] is None:
        problems.append(f"{where}: null default")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{where}: properties and additionalProperties together")
    if schema.get("additionalProperties") is False:
        problems.append(f"{where}: additionalProperties: false")
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        problems.append(f"{where}: exclusiveMinimum must be a boolean in OpenAPI v3.0")
    for rule in schema.get("x-kubernetes-validations", []):
        if not rule.get("message"):
            problems.append(f"{where}: CEL rule {rule.get('rule')!r} has no message")
    if schema.get("x-kubernetes-list-type") == "map":
        item = schema.get("items", {})
        for key in schema.get("x-kubernetes-list-map-keys", []):
            if key not in item.get("required", []) and "default" not in item.get("properties", {}).get(
                key, {}
            ):
                problems.append(f"{where}: list map key {key} must be required")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}{{}}")
    return problems
