"""The watch over every Secret that PushSecrets need starts with the first PushSecret."""

from __future__ import annotations

from types import SimpleNamespace

from rotor.clock import Clock
from rotor.controller.core import Controller, Settings


def push_body(name: str, secret: str) -> dict[str, object]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "PushSecret",
        "metadata": {"namespace": "team-a", "name": name, "generation": 1, "resourceVersion": "1"},
        "spec": {"selector": {"secret": {"name": secret}}},
    }


def test_no_pushsecret_no_watch_over_every_secret() -> None:
    controller = Controller(SimpleNamespace(), Clock(), Settings())  # type: ignore[arg-type]
    push = controller.push
    assert not push.watching_secrets
    # readiness does not wait for a watch that has not started
    assert push.secret_informer not in controller.informers

    push.observe(push_body("p", "source"), "ADDED")
    assert push.watching_secrets
    # ... nor for one that has not listed yet: a push reads its Secret with a GET meanwhile
    assert push.secret_informer not in controller.informers
    push.secret_informer.synced.set()
    assert push.secret_informer in controller.informers
