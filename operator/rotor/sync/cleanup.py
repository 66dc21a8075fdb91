"""Whether deleting a ManagedSecret needs Rotor, and so Rotor's finalizer (pure).

The finalizer costs a ManagedSecret write per new object, so Rotor holds it only where deleting
the ManagedSecret needs an action from it:

| creationPolicy | deletionPolicy | on deletion | finalizer |
|---|---|---|---|
| Owner | Delete | the garbage collector deletes the Secret (its ownerReference) | no (1) |
| Owner | Retain | Rotor removes its ownerReference and label, or the collector would delete it | yes |
| Orphan | Retain | Rotor removes its label (and an ownerReference left from Owner) | yes |
| Orphan | Delete | Rotor deletes the Secret | yes |
| Merge | either | Rotor removes its annotations (and under Delete its keys) | yes |

(1) unless the Secret is Rotor's (labelled) but does not carry the ownerReference yet (created
under ``Orphan``, the next write adds it): the collector would not delete it, so Rotor does; and
unless dynamic credentials are revoked on delete (``vaultDynamic.revokeOnDelete``), which only
Rotor can do.

The decision is taken before a sync writes the Secret (with the Secret as it is) and again after
(with the Secret as written), so a finalizer is in place before any Secret that needs it exists,
and one that is no longer needed is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotor.api.names import MANAGED_BY_LABEL


def owned_by(secret: Mapping[str, Any] | None, uid: str | None) -> bool:
    """The Secret carries an ownerReference to the object of this uid."""
    if secret is None or not uid:
        return False
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def needs_finalizer(
    creation_policy: str,
    deletion_policy: str,
    secret: Mapping[str, Any] | None,
    *,
    name: str,
    uid: str | None,
    revoke_on_delete: bool = False,
) -> bool:
    """Whether deleting the ManagedSecret ``name`` (of ``uid``, whose target Secret is ``secret``
    as last seen, None when there is none yet) needs an action from Rotor."""
    if revoke_on_delete or creation_policy != "Owner" or deletion_policy != "Delete":
        return True
    labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == name and not owned_by(secret, uid)
