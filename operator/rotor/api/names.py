"""Names users see on the wire: the API group, and Rotor's labels, annotations and finalizer.
Every other module imports them from here."""

from __future__ import annotations

import hashlib

GROUP = "rotor.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
#: ``kubectl get rotor`` lists every Rotor object.
CATEGORY = "rotor"

#: On a ManagedSecret: Rotor removes its Secret (per deletionPolicy) before the object goes.
FINALIZER = "rotor.dev/finalizer"
#: On a ManagedSecret: a new value refreshes now.
FORCE_SYNC_ANNOTATION = "rotor.dev/force-sync"
#: On a ManagedSecret: a new value rotates now.
ROTATE_ANNOTATION = "rotor.dev/rotate"
#: On a SecretStore or ClusterSecretStore: a new value validates the store again now.
REVALIDATE_ANNOTATION = "rotor.dev/revalidate"
#: On a written Secret: the ManagedSecret that manages it.
MANAGED_BY_LABEL = "rotor.dev/managed-by"
#: On a ManagedSecret a ClusterManagedSecret generated: that ClusterManagedSecret's name.
CLUSTER_MANAGED_BY_LABEL = "rotor.dev/cluster-managed-by"
#: On a ManagedSecret a ClusterManagedSecret generated: the digest of the spec it was given (an
#: unchanged template writes nothing).
TEMPLATE_HASH_ANNOTATION = "rotor.dev/template-hash"
#: On a written Secret: the keyed digest of its data.
DATA_HASH_ANNOTATION = "rotor.dev/data-hash"
#: On a Secret written under creationPolicy Merge, before per-writer ownership: the keys Rotor
#: owned, comma-separated, without saying for which ManagedSecret. Read only to migrate it.
MANAGED_KEYS_ANNOTATION = "rotor.dev/managed-keys"
#: On a Secret written under creationPolicy Merge, one per ManagedSecret writing into it
#: (``writer_annotation``): the keys that ManagedSecret owns, comma-separated ...
MANAGED_KEYS_PREFIX = "rotor.dev/managed-keys."
#: ... and the keyed digest of those keys' data.
WRITER_DATA_HASH_PREFIX = "rotor.dev/data-hash."


def writer_annotation(prefix: str, managed_secret: str) -> str:
    """``<prefix><managed secret's name>``, e.g. ``rotor.dev/managed-keys.app``. An annotation's
    name part holds at most 63 characters: a longer ManagedSecret name is cut and ends in 8 hex
    characters of its SHA-256, so that it stays unique."""
    room = 63 - len(prefix.split("/", 1)[1])
    if len(managed_secret) <= room:
        return prefix + managed_secret
    digest = hashlib.sha256(managed_secret.encode()).hexdigest()[:8]
    return f"{prefix}{managed_secret[: room - 9]}-{digest}"


#: On a restarted workload's pod template.
RESTARTED_AT_ANNOTATION = "rotor.dev/restarted-at"

#: The change-notification receiver (``--notify-addr``): its one path, the header carrying the
#: body's HMAC-SHA256 (``sha256=<hex>``), and the key of the notify Secret holding the HMAC key.
NOTIFY_PATH = "/v1/notify"
NOTIFY_SIGNATURE_HEADER = "X-Rotor-Signature"
NOTIFY_SECRET_KEY = "hmac-key"
