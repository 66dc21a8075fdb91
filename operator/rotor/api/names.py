"""Names users see on the wire: the API group, and Rotor's labels, annotations and finalizer.
Every other module imports them from here."""

from __future__ import annotations

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
#: On a written Secret: the keyed digest of its data.
DATA_HASH_ANNOTATION = "rotor.dev/data-hash"
#: On a Secret written under creationPolicy Merge: the keys Rotor owns, comma-separated.
MANAGED_KEYS_ANNOTATION = "rotor.dev/managed-keys"
#: On a restarted workload's pod template.
RESTARTED_AT_ANNOTATION = "rotor.dev/restarted-at"

#: The change-notification receiver (``--notify-addr``): its one path, the header carrying the
#: body's HMAC-SHA256 (``sha256=<hex>``), and the key of the notify Secret holding the HMAC key.
NOTIFY_PATH = "/v1/notify"
NOTIFY_SIGNATURE_HEADER = "X-Rotor-Signature"
NOTIFY_SECRET_KEY = "hmac-key"
