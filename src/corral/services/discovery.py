"""Build a :class:`HandlerRegistry` by importing every module of the configured handlers package.

The package name comes from configuration (``CORRAL_HANDLERS``) or code, never from a request
or a job: this is the only place Corral imports code by name.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from collections.abc import Iterable
from types import ModuleType

from corral.core.handlers import HandlerRegistry, marked_name
from corral.errors import HandlerDiscoveryError

logger = logging.getLogger(__name__)


def _not_importable(name: str, exc: BaseException | None) -> HandlerDiscoveryError:
    return HandlerDiscoveryError(
        f"handlers package {name!r} not importable: {type(exc).__name__}: {exc}"
    )


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # any import-time failure is a start-up error naming the module
        raise _not_importable(name, exc) from exc


def _walk_error(name: str) -> None:
    # pkgutil.walk_packages imports sub-packages itself: without this it swallows their
    # ImportError and lets any other exception escape unwrapped. Called inside its except.
    exc = sys.exc_info()[1]
    raise _not_importable(name, exc) from exc


def iter_modules(package_name: str) -> Iterable[ModuleType]:
    """Yield the package and every module below it, importing each in a stable order."""
    package = _import(package_name)
    yield package
    paths = getattr(package, "__path__", None)
    if paths is None:  # a plain module is accepted as a one-module "package"
        return
    names = sorted(
        info.name
        for info in pkgutil.walk_packages(paths, prefix=f"{package.__name__}.", onerror=_walk_error)
    )
    for name in names:
        yield _import(name)


def collect(
    modules: Iterable[ModuleType], registry: HandlerRegistry | None = None
) -> HandlerRegistry:
    registry = registry if registry is not None else HandlerRegistry()
    for module in modules:
        for value in list(vars(module).values()):
            name = marked_name(value)
            if name is not None:
                registry.register(value, name)
    return registry


def discover(package_names: Iterable[str]) -> HandlerRegistry:
    """Import each package (comma-separated names are split by the caller) and collect handlers."""
    registry = HandlerRegistry()
    for package_name in package_names:
        collect(iter_modules(package_name), registry)
    logger.info(
        "handlers discovered: %s",
        ", ".join(sorted(registry)) or "(none)",
        extra={"event": "handlers.discovered", "count": len(registry)},
    )
    return registry
