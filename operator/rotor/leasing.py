"""The one renewal rule for everything Rotor holds under a lease: the dynamic credentials of a
ManagedSecret (``rotor.sync.lease``) and each Vault store's own token
(``rotor.providers.vault.client``).

A lease of ``duration`` seconds is renewed ``renewal_lead(duration, percent)`` before it ends
(``percent`` of the way through a full lease). A renewal that grants less than was asked has hit
the max TTL: it cannot be extended again (``extendable``), so what it covers is replaced (new
credentials, a new login) at the same lead before its end instead of renewed.
"""

from __future__ import annotations

#: Vault store tokens are renewed at about 2/3 of their TTL
TOKEN_RENEW_PERCENT = 67


def renewal_lead(duration: float, percent: float) -> float:
    """Seconds before its end at which a lease of ``duration`` seconds is renewed or replaced."""
    return max(0.0, duration * (100 - percent) / 100)


def extendable(granted: float, asked: float) -> bool:
    """Whether a renewal that granted ``granted`` seconds (``asked`` asked) can be renewed again."""
    return asked > 0 and granted >= asked


__all__ = ["TOKEN_RENEW_PERCENT", "extendable", "renewal_lead"]
