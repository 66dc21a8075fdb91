"""Turn fetched remote secrets into the Secret's data (pure): properties, decoding, templates,
validation, key names and size. Every failure is a ValueFailure with a documented reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.providers.base import RemoteRef, RemoteSecret
from rotor.sync.template_from import template_sources
from rotor.values.decode import decode
from rotor.values.properties import (
    encode_property,
    extract_property,
    flatten_map,
    require_secret_key,
    sanitize_secret_key,
)
from rotor.values.rewrite import rewrite_keys, rules_of
from rotor.values.size import check_secret_size
from rotor.values.template import render_templates
from rotor.values.validate import validate_all


def _whole_value(secret: RemoteSecret) -> bytes:
    """A remote secret as one Secret value: the single property of a one-property map, else the
    JSON document, else the raw value."""
    if secret.data is not None and len(secret.data) == 1:
        return encode_property(next(iter(secret.data.values())))
    return extract_property(secret.data, secret.raw, None, key=secret.key)


def assemble(
    spec: ManagedSecretSpec,
    fetched: Mapping[RemoteRef, RemoteSecret],
    found: Mapping[int, Mapping[str, RemoteSecret]],
    databases: Mapping[tuple[str, str], RemoteSecret],
    *,
    now: dt.datetime,
    generated: Mapping[str, bytes] | None = None,
    shared_template: str | None = None,
) -> dict[str, bytes]:
    """The whole pipeline in-line (templates rendered here, on the caller's thread).
    ``shared_template`` is the text of a ``template.from`` ConfigMap's key."""
    data = assemble_values(spec, fetched, found, databases, now=now, generated=generated)
    templates = template_sources(spec, shared_template)
    return finish(data, render_templates(templates, data) if templates else {}, replace=replaces(spec))


def replaces(spec: ManagedSecretSpec) -> bool:
    """``template.mergePolicy: Replace``: the Secret holds the rendered keys only."""
    return spec.template is not None and spec.template.replaces


def finish(
    data: Mapping[str, bytes], rendered: Mapping[str, bytes], *, replace: bool = False
) -> dict[str, bytes]:
    """Add the rendered templates (or, with ``replace``, keep only them) and check the Secret's
    size."""
    out = dict(rendered) if replace else {**data, **rendered}
    check_secret_size(out)
    return out


def assemble_values(
    spec: ManagedSecretSpec,
    fetched: Mapping[RemoteRef, RemoteSecret],
    found: Mapping[int, Mapping[str, RemoteSecret]],
    databases: Mapping[tuple[str, str], RemoteSecret],
    *,
    now: dt.datetime,
    generated: Mapping[str, bytes] | None = None,
    leased: Mapping[str, bytes] | None = None,
) -> dict[str, bytes]:
    """Everything but the templates: the values their context is made of. ``leased`` holds the
    current credentials of a ``dataFrom.vaultDynamic`` source (issued, or kept in the Secret)."""
    data: dict[str, bytes] = {}
    # dataFrom first, so that explicit data items win on a key clash
    for index, source in enumerate(spec.data_from):
        where = f"spec.dataFrom[{index}]"
        if source.extract is not None:
            secret = fetched[RemoteRef(source.extract.key, source.extract.version)]
            props = flatten_map(secret.data, secret.raw, key=secret.key)
            if source.rewrite:
                data.update(rewrite_keys(props, rules_of(source.rewrite), where=where))
                continue
            for name, value in props.items():
                data[require_secret_key(name, source=f"dataFrom.extract '{secret.key}'")] = value
        elif source.find is not None:
            entry = found.get(index, {})
            if source.rewrite:
                whole = {name: _whole_value(secret) for name, secret in entry.items()}
                data.update(rewrite_keys(whole, rules_of(source.rewrite), where=where))
                continue
            for remote_key, secret in sorted(entry.items()):
                data[sanitize_secret_key(remote_key.replace("/", "_"))] = _whole_value(secret)
        elif source.vault_database is not None:
            creds = databases[(source.vault_database.mount, source.vault_database.role)]
            for name, value in flatten_map(creds.data, None, key=creds.key).items():
                data[name] = value
        elif source.vault_dynamic is not None:
            where = f"dataFrom.vaultDynamic '{source.vault_dynamic.path}'"
            for name, value in (leased or {}).items():
                data[require_secret_key(name, source=where)] = value
    for item in spec.data:
        ref = item.remote_ref
        secret = fetched[RemoteRef(ref.key, ref.version)]
        if ref.property is None and secret.data is None:
            raw = secret.raw or b""
        elif ref.property is None:
            raw = _whole_value(secret)
        else:
            raw = extract_property(secret.data, secret.raw, ref.property, key=ref.key)
        data[item.secret_key] = decode(raw, item.decode, key=item.secret_key)
    if generated:
        data.update(generated)
    for item in spec.data:
        if item.checks:
            rules = [check.model_dump(by_alias=True, exclude_none=True) for check in item.checks]
            validate_all(item.secret_key, data[item.secret_key], rules, all_values=data, now=now)
    return data
