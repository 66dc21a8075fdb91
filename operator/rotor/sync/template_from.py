"""``template.from.configMap`` (pure): the template text a ConfigMap holds, or why it is missing.

The ConfigMap lives in the ManagedSecret's namespace. A ConfigMap or key that is not there, or a
key under ``binaryData`` (a template is text), is ``TemplateMissing``: the last good Secret is
kept and the ManagedSecret is synced again when the ConfigMap appears or changes. A template that
is there but does not render is the ordinary ``TemplateError`` of ``rotor.values.template``.
Messages name the ConfigMap and its keys, never a value (a template is not secret, but what it
renders is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotor.api.managedsecret import ManagedSecretSpec, TemplateConfigMapRef
from rotor.values.errors import TemplateMissing
from rotor.values.properties import quote_name

#: at most this many key names are listed in a TemplateMissing message
_LISTED_KEYS = 10


def config_map_ref(spec: ManagedSecretSpec) -> TemplateConfigMapRef | None:
    """The ConfigMap the spec's template comes from, if any."""
    return spec.template.config_map if spec.template is not None else None


def config_map_template(
    ref: TemplateConfigMapRef, namespace: str, config_map: Mapping[str, Any] | None
) -> str:
    """The template text under ``ref.key`` of ``config_map`` (None: there is no such ConfigMap)."""
    where = f"ConfigMap {quote_name(ref.name)} in namespace {quote_name(namespace)}"
    if config_map is None:
        raise TemplateMissing(
            f"template.from: {where} does not exist; create it with the key {quote_name(ref.key)}"
        )
    data = config_map.get("data") or {}
    text = data.get(ref.key)
    if isinstance(text, str):
        return text
    if ref.key in (config_map.get("binaryData") or {}):
        raise TemplateMissing(
            f"template.from: key {quote_name(ref.key)} of {where} is binaryData; a template must be "
            "text (under data)"
        )
    names = sorted(str(k) for k in data)
    listed = ", ".join(quote_name(k) for k in names[:_LISTED_KEYS]) or "none"
    more = f" and {len(names) - _LISTED_KEYS} more" if len(names) > _LISTED_KEYS else ""
    raise TemplateMissing(
        f"template.from: {where} has no key {quote_name(ref.key)} (its keys: {listed}{more})"
    )


def template_sources(spec: ManagedSecretSpec, shared: str | None = None) -> dict[str, str]:
    """Secret key -> template source: the inline ``template.data`` and, with ``template.from``,
    ``shared`` (the ConfigMap's text, from ``config_map_template``) under its Secret key. The schema
    refuses a key rendered by both."""
    if spec.template is None:
        return {}
    sources = dict(spec.template.data or {})
    ref = spec.template.config_map
    if ref is not None:
        if shared is None:
            raise TemplateMissing(f"template.from: ConfigMap {quote_name(ref.name)} was not read")
        sources[ref.target] = shared
    return sources
