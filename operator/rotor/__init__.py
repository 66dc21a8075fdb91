"""Rotor: sync and rotate secrets from Vault and AWS into Kubernetes Secrets."""

__version__ = "0.1.0"
