"""The informer's list/watch logic over a scripted API (the real apiserver is in the integration
tests: every ManagedSecret test goes through it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kopf._cogs.structs.references import match_namespace as kopf_match

from rotor.kube.gateway import KubeError
from rotor.kube.informer import Informer, match_namespace, plain_namespaces, slim

PATTERNS = [
    "team-*",
    "!kube-*",
    "!kube-*,!rotor-system",
    "myapp-*, !*-pr-*, *pr-123",
    "!*-pr-*, *pr-123",
    "a,b",
    "*",
    "!*",
    "team-?",
]
NAMES = [
    "team-a",
    "team-ab",
    "kube-system",
    "rotor-system",
    "default",
    "myapp-pr-123",
    "myapp-pr-4",
    "otherapp-pr-123",
    "myapp-live",
    "a",
    "b",
    "c",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_namespace_patterns_match_kopf(pattern: str) -> None:
    for name in NAMES:
        assert match_namespace(name, pattern) == kopf_match(name, pattern), (name, pattern)


def test_plain_names_get_a_watch_each_and_globs_watch_the_cluster() -> None:
    assert plain_namespaces([]) is None
    assert plain_namespaces(["b", "a", "c"]) == ["a", "b", "c"]
    assert plain_namespaces(["a,b"]) is None  # kopf: "a,b" matches only "a"
    assert plain_namespaces(["team-*"]) is None
    assert plain_namespaces(["!kube-system"]) is None


def test_slim_drops_managed_fields_and_the_applied_copy_of_the_spec() -> None:
    body = {
        "kind": "ManagedSecret",
        "metadata": {
            "name": "x",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "1"},
        },
    }
    assert slim(body)["metadata"] == {"name": "x", "annotations": {"keep": "1"}}


def obj(name: str, rv: int, namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv)}}


class Content:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> Any:
        for chunk in self.chunks:
            yield chunk


class Response:
    def __init__(self, events: list[dict[str, Any]], split: int = 7) -> None:
        raw = b"".join(json.dumps(e).encode() + b"\n" for e in events)
        # deliver in odd-sized chunks: lines span chunk boundaries
        self.content = Content([raw[i : i + split] for i in range(0, len(raw), split)])
        self.released = False

    def release(self) -> None:
        self.released = True


class ScriptedAPI:
    """Lists and watches come from scripts; when a script runs out, the stream blocks forever."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_calls: list[tuple[str | None, str | None]] = []
        self.watch_calls: list[tuple[str | None, str]] = []
        self.responses: list[Response] = []

    async def list_page(self, kind: str, namespace: str | None, **kw: Any) -> dict[str, Any]:
        self.list_calls.append((namespace, kw.get("continue_")))
        step = self.lists.pop(0)
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[no-any-return]

    async def open_watch(self, kind: str, namespace: str | None, **kw: Any) -> Response:
        self.watch_calls.append((namespace, kw["resource_version"]))
        if not self.watches:
            await asyncio.Event().wait()
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        response = Response(step)
        self.responses.append(response)
        return response


async def run_until(informer: Informer, events: list[Any], count: int) -> None:
    task = asyncio.create_task(informer.run())
    for _ in range(500):
        if len(events) >= count:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_lists_in_pages_then_watches_from_the_lists_version() -> None:
    api = ScriptedAPI(
        lists=[
            {"metadata": {"continue": "t1", "resourceVersion": "10"}, "items": [obj("a", 5)]},
            {"metadata": {"resourceVersion": "11"}, "items": [obj("b", 6)]},
        ],
        watches=[
            [
                {"type": "ADDED", "object": obj("c", 12)},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}},
            ],
            [{"type": "MODIFIED", "object": obj("a", 21)}],
        ],
    )
    events: list[tuple[str, str | None]] = []
    bodies: list[dict[str, Any]] = []

    def record(b: dict[str, Any], t: str | None) -> None:
        events.append((b["metadata"]["name"], t))
        bodies.append(b)

    informer = Informer(api, "ManagedSecret", record)  # type: ignore[arg-type]
    await run_until(informer, events, 4)
    assert events == [("a", None), ("b", None), ("c", "ADDED"), ("a", "MODIFIED")]
    # listed items get the kind and apiVersion a list leaves out (Events name them)
    assert {(b["kind"], b["apiVersion"]) for b in bodies[:2]} == {("ManagedSecret", "rotor.dev/v1alpha1")}
    assert api.list_calls == [(None, None), (None, "t1")]
    # the second watch resumes from the bookmark, not from the list
    assert api.watch_calls[:2] == [(None, "11"), (None, "20")]
    assert informer.synced.is_set()
    assert all(r.released for r in api.responses)


async def test_gone_relists_and_reports_what_vanished_as_deleted() -> None:
    api = ScriptedAPI(
        lists=[
            {"metadata": {"resourceVersion": "10"}, "items": [obj("a", 5), obj("b", 6)]},
            {"metadata": {"resourceVersion": "30"}, "items": [obj("b", 25)]},
        ],
        watches=[[{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}]],
    )
    events: list[tuple[str, str | None]] = []
    informer = Informer(api, "ManagedSecret", lambda b, t: events.append((b["metadata"]["name"], t)))  # type: ignore[arg-type]
    await run_until(informer, events, 4)
    assert events == [("a", None), ("b", None), ("b", None), ("a", "DELETED")]
    assert informer.relists == 2


async def test_a_gone_at_watch_start_relists_too() -> None:
    api = ScriptedAPI(
        lists=[
            {"metadata": {"resourceVersion": "10"}, "items": [obj("a", 5)]},
            {"metadata": {"resourceVersion": "30"}, "items": [obj("a", 5)]},
        ],
        watches=[KubeError(410, "Expired")],
    )
    events: list[tuple[str, str | None]] = []
    informer = Informer(api, "ManagedSecret", lambda b, t: events.append((b["metadata"]["name"], t)))  # type: ignore[arg-type]
    await run_until(informer, events, 2)
    assert informer.relists == 2


async def test_failures_back_off_and_a_bad_handler_does_not_stop_the_stream() -> None:
    api = ScriptedAPI(
        lists=[
            KubeError(403, "forbidden"),
            KubeError(503, "unavailable"),
            {"metadata": {"resourceVersion": "10"}, "items": [obj("boom", 1), obj("ok", 2)]},
        ],
        watches=[],
    )
    events: list[str] = []

    def handler(body: dict[str, Any], _: str | None) -> None:
        if body["metadata"]["name"] == "boom":
            raise ValueError("bad object")
        events.append(body["metadata"]["name"])

    sleeps: list[float] = []

    async def no_wait(delay: float) -> None:
        sleeps.append(delay)

    informer = Informer(api, "ManagedSecret", handler)  # type: ignore[arg-type]
    informer.sleep = no_wait  # type: ignore[assignment]
    await run_until(informer, events, 1)
    assert events == ["ok"]
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.5  # 1 s, jittered
    assert 1.0 <= sleeps[1] <= 3.0  # doubled


async def test_namespace_patterns_filter_a_cluster_watch_and_plain_names_watch_each() -> None:
    api = ScriptedAPI(
        lists=[
            {"metadata": {"resourceVersion": "1"}, "items": [obj("a", 1, "team-a"), obj("b", 1, "iso-x")]}
        ],
        watches=[],
    )
    events: list[str] = []
    informer = Informer(
        api, "ManagedSecret", lambda b, t: events.append(b["metadata"]["namespace"]), namespaces=["!iso-*"]
    )  # type: ignore[arg-type]
    await run_until(informer, events, 1)
    await asyncio.sleep(0)
    assert events == ["team-a"]

    api = ScriptedAPI(
        lists=[
            {"metadata": {"resourceVersion": "1"}, "items": []},
            {"metadata": {"resourceVersion": "1"}, "items": []},
        ],
        watches=[],
    )
    informer = Informer(api, "ManagedSecret", lambda b, t: None, namespaces=["one", "two"])  # type: ignore[arg-type]
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(ns for ns, _ in api.list_calls) == ["one", "two"]
