"""The loop a ``corral`` command runs on: uvloop by default where it is installed, asyncio's
own when CORRAL_UVLOOP=false or uvloop is missing."""

from __future__ import annotations

import asyncio
import sys

import pytest

from corral.cli.loop import loop_factory, run
from corral.settings import load_settings

uvloop = pytest.importorskip("uvloop")


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_uvloop_when_wanted_and_installed() -> None:
    assert loop_factory(True) is uvloop.new_event_loop
    assert run(_loop_type(), use_uvloop=True) is uvloop.Loop


def test_asyncio_when_turned_off() -> None:
    assert loop_factory(False) is None
    assert not issubclass(run(_loop_type(), use_uvloop=False), uvloop.Loop)


def test_asyncio_when_uvloop_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loop_factory(True) is None
    assert not issubclass(run(_loop_type(), use_uvloop=True), uvloop.Loop)


def test_the_setting_defaults_to_on_and_reads_corral_uvloop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CORRAL_UVLOOP", raising=False)
    assert load_settings().uvloop is True
    monkeypatch.setenv("CORRAL_UVLOOP", "false")
    assert load_settings().uvloop is False
