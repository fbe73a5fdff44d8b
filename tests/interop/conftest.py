"""Fixtures of the Node BullMQ interop tests: the Node project installed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.nodejs import NodeBullmq, install


@pytest.fixture(scope="session")
def node_binary() -> str:
    return install()


@pytest.fixture
def node(node_binary: str, redis_url: str, tmp_path: Path) -> NodeBullmq:
    return NodeBullmq(node_binary, redis_url, tmp_path)
