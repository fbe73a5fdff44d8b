"""Discovery: import every module of a handlers package and collect its marked handlers.

The fixture packages live in ``tests/fixtures`` (prefixed ``corral_fx_`` so their names are
unique in ``sys.modules``); each test puts that directory on ``sys.path``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from corral.errors import DuplicateHandler, HandlerDiscoveryError
from corral.services.discovery import collect, discover, iter_modules

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True)
def fixtures_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))


def test_discovers_every_module_of_a_package() -> None:
    registry = discover(["corral_fx_ok"])
    assert sorted(registry) == ["async_task", "dataProcessingJob", "deep_task", "sync-task"]
    assert registry["async_task"].is_async
    assert registry["dataProcessingJob"].is_async
    assert not registry["sync-task"].is_async
    assert not registry["deep_task"].is_async
    assert registry["sync-task"].origin == "corral_fx_ok.tasks.sync_task"
    assert registry["deep_task"].origin == "corral_fx_ok.extra.deep.deep_task"


def test_unmarked_functions_are_not_registered() -> None:
    registry = discover(["corral_fx_ok"])
    assert "not_a_handler" not in registry


def test_modules_are_yielded_package_first_then_sorted() -> None:
    names = [m.__name__ for m in iter_modules("corral_fx_ok")]
    assert names == [
        "corral_fx_ok",
        "corral_fx_ok.extra",
        "corral_fx_ok.extra.deep",
        "corral_fx_ok.reexport",
        "corral_fx_ok.tasks",
    ]


def test_each_discovery_builds_a_fresh_registry() -> None:
    first = discover(["corral_fx_ok"])
    second = discover(["corral_fx_ok"])
    assert first is not second
    assert sorted(first) == sorted(second)


def test_a_plain_module_is_a_one_module_package() -> None:
    registry = discover(["corral_fx_single"])
    assert list(registry) == ["single_task"]


def test_several_packages() -> None:
    registry = discover(["corral_fx_single", "corral.examples.handlers"])
    assert {"single_task", "dataProcessingJob", "example-task", "batch-task"} == set(registry)


def test_the_example_handlers() -> None:
    registry = discover(["corral.examples.handlers"])
    assert sorted(registry) == ["batch-task", "dataProcessingJob", "example-task"]
    assert not registry["batch-task"].is_async


def test_no_packages_means_no_handlers() -> None:
    assert len(discover([])) == 0


def test_discovery_logs_what_it_found(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="corral.services.discovery"):
        discover(["corral_fx_single"])
    assert any("single_task" in r.getMessage() for r in caplog.records)


def test_collect_into_an_existing_registry() -> None:
    registry = discover(["corral_fx_single"])
    collect(iter_modules("corral_fx_dup.a"), registry)
    assert sorted(registry) == ["single_task", "sync"]


# -- failures ----------------------------------------------------------------------------------


def test_missing_package() -> None:
    with pytest.raises(HandlerDiscoveryError) as info:
        discover(["nonexistent.pkg"])
    assert str(info.value).startswith(
        "handlers package 'nonexistent.pkg' not importable: ModuleNotFoundError"
    )
    assert "\n" not in str(info.value)


def test_module_raising_at_import_names_the_module_and_the_error() -> None:
    with pytest.raises(HandlerDiscoveryError) as info:
        discover(["corral_fx_broken"])
    message = str(info.value)
    assert "'corral_fx_broken.bad'" in message
    assert "RuntimeError: boom at import" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_sub_package_raising_at_import_names_it() -> None:
    # pkgutil.walk_packages imports sub-packages itself; its errors must be wrapped too.
    with pytest.raises(HandlerDiscoveryError) as info:
        discover(["corral_fx_broken_sub"])
    message = str(info.value)
    assert "'corral_fx_broken_sub.sub'" in message
    assert "ValueError: sub-package boom" in message


def test_module_with_a_missing_dependency_names_the_module() -> None:
    with pytest.raises(HandlerDiscoveryError) as info:
        discover(["corral_fx_missing_dep"])
    message = str(info.value)
    assert "'corral_fx_missing_dep.needs'" in message
    assert "ModuleNotFoundError" in message
    assert "corral_fx_no_such_dependency" in message


def test_a_broken_module_does_not_stay_half_imported() -> None:
    for _ in range(2):  # the failed module is not cached: it fails the same way each time
        with pytest.raises(HandlerDiscoveryError, match="boom at import"):
            discover(["corral_fx_broken"])


@pytest.mark.parametrize("name", ["", "../x", ".relative", "a..b"])
def test_malformed_package_names(name: str) -> None:
    with pytest.raises(HandlerDiscoveryError, match="not importable"):
        discover([name])


def test_duplicates_across_two_modules_name_both_modules() -> None:
    with pytest.raises(DuplicateHandler) as info:
        discover(["corral_fx_dup"])
    error = info.value
    assert error.name == "sync"
    assert {error.first, error.second} == {
        "corral_fx_dup.a.sync_from_a",
        "corral_fx_dup.b.sync_from_b",
    }
    assert "corral_fx_dup.a" in str(error)
    assert "corral_fx_dup.b" in str(error)
    assert str(error).startswith("handler 'sync' registered twice: ")


def test_duplicates_across_two_packages() -> None:
    with pytest.raises(DuplicateHandler) as info:
        discover(["corral_fx_ok", "corral_fx_other"])
    assert "corral_fx_ok.tasks.sync_task" in str(info.value)
    assert "corral_fx_other.another_sync_task" in str(info.value)


def test_a_re_exported_handler_is_not_a_duplicate() -> None:
    # corral_fx_ok/__init__ and corral_fx_ok/reexport import handlers from corral_fx_ok.tasks.
    registry = discover(["corral_fx_ok"])
    assert registry["async_task"].origin == "corral_fx_ok.tasks.async_task"
