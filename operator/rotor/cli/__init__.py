"""The ``rotor`` command line."""
