"""``template.from``: read the template a ConfigMap holds, from the ConfigMap watch's cache when it
has it, else from the apiserver (then remembered, so the watch keeps it fresh). The decision of
what is missing is pure (``rotor.sync.template_from``); this only gathers the ConfigMap."""

from __future__ import annotations

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.kube.gateway import KubeError, KubeGateway
from rotor.services.ports import ConfigMapCache
from rotor.sync.template_from import config_map_ref, config_map_template
from rotor.values.errors import TemplateMissing
from rotor.values.properties import quote_name


class TemplateReader:
    """Finds the text of a ManagedSecret's ``template.from`` ConfigMap key (``cache``: the index
    the ConfigMap watch feeds; None reads every time)."""

    def __init__(self, gateway: KubeGateway, cache: ConfigMapCache | None = None) -> None:
        self.gateway = gateway
        self.cache = cache

    async def shared_template(self, spec: ManagedSecretSpec, namespace: str) -> str | None:
        """The template text, or None without ``template.from``. Raises TemplateMissing."""
        ref = config_map_ref(spec)
        if ref is None:
            return None
        body = self.cache.config_map(namespace, ref.name) if self.cache is not None else None
        if body is None:
            try:
                body = await self.gateway.get_config_map(namespace, ref.name)
            except KubeError as err:
                if err.status != 403:
                    raise
                raise TemplateMissing(
                    f"template.from: Rotor may not read ConfigMap {quote_name(ref.name)} in namespace "
                    f"{quote_name(namespace)} (get configmaps is refused); grant its service account "
                    "get, list and watch on configmaps"
                ) from None
            if body is not None and self.cache is not None:
                self.cache.remember_config_map(body)
        return config_map_template(ref, namespace, body)
