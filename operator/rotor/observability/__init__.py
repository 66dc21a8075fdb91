"""Metrics, logs and Events: what a platform team sees of Rotor."""
