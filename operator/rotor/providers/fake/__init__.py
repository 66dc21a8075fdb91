"""An in-memory provider for unit tests (not selectable from a store spec)."""

from rotor.providers.fake.provider import BatchingFakeProvider, FakeProvider

__all__ = ["BatchingFakeProvider", "FakeProvider"]
