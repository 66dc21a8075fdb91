"""Runs at the end (file name): the status of every Rotor object the suite left behind validates
against the status models, with no unknown field and only reasons from the Reason enum."""

from __future__ import annotations

import pytest

from support.cluster import Cluster
from support.statuscheck import cluster_status_problems

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_status_written_matches_the_models(cluster: Cluster) -> None:
    checked, problems = await cluster_status_problems(cluster)
    assert not problems, problems
    assert checked > 0, "no Rotor object to check: the scan looked at nothing"
