"""Backends behind one protocol (base.py), registered in registry.py."""
