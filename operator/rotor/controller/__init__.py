"""The controller core: an in-memory index of objects, and one scheduler of due work."""
