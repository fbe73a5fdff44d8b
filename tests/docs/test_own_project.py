"""docs/howto-own-project.md is runnable: the Compose file, the Kubernetes manifests and the
systemd units it gives run ``corral`` commands that exist, with options those commands accept,
and set only environment variables Corral reads."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from corral.settings import VARIABLES, load_settings, token_problem
from tests.support.processes import CORRAL

PAGE = Path(__file__).resolve().parents[2] / "docs" / "howto-own-project.md"


def _blocks(language: str) -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.S | re.M)


def _yaml_documents() -> list[dict[str, Any]]:
    return [doc for block in _blocks("yaml") for doc in yaml.safe_load_all(block) if doc]


def _compose() -> dict[str, Any]:
    [compose] = [doc for doc in _yaml_documents() if "services" in doc]
    return compose


def _manifests() -> list[dict[str, Any]]:
    return [doc for doc in _yaml_documents() if "kind" in doc]


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def _corral_commands() -> list[list[str]]:
    """The argument lists after ``corral`` that the page's examples run."""
    commands = []
    for service in _compose()["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command[:1] == ["corral"]:
            commands.append([str(a) for a in command[1:]])
    for manifest in _manifests():
        for container in _containers(manifest):
            if container.get("command") == ["corral"]:
                commands.append([str(a) for a in container.get("args", [])])
    for unit in _blocks("ini"):
        for line in unit.splitlines():
            if re.match(r"ExecStart(Pre)?=", line):
                words = shlex.split(line.split("=", 1)[1])
                assert words[0].endswith("/corral"), line
                commands.append(words[1:])
    return commands


def _variables() -> set[str]:
    """Every variable the examples give a Corral process."""
    names: set[str] = set()
    for service in _compose()["services"].values():
        if str(service.get("command", [""])[0]) == "corral":
            names |= set(service.get("environment", {}))
    for manifest in _manifests():
        if manifest["kind"] in ("Secret", "ConfigMap"):
            names |= set(manifest.get("stringData", {})) | set(manifest.get("data", {}))
        for container in _containers(manifest):
            names |= {e["name"] for e in container.get("env", [])}
    return names | set(_env_file())


def _subcommand(words: list[str]) -> list[str]:
    """['db', 'upgrade', '--x', '1'] -> ['db', 'upgrade']: the words before the first option."""
    return list(words[: next((i for i, w in enumerate(words) if w.startswith("-")), None)])


def test_the_page_gives_compose_kubernetes_and_systemd_examples() -> None:
    services = _compose()["services"]
    assert {"worker", "scheduler", "api", "migrate"} <= set(services)
    deployments = {m["metadata"]["name"] for m in _manifests() if m["kind"] == "Deployment"}
    assert deployments == {"corral-worker", "corral-scheduler", "corral-api"}
    run = {tuple(_subcommand(words)) for words in _corral_commands()}
    assert run == {("worker",), ("scheduler",), ("api",), ("db", "upgrade")}


# typer (0.20) touches attributes click deprecates, once, at import.
@pytest.mark.filterwarnings("ignore:'click.utils.*' is deprecated:DeprecationWarning")
def test_every_corral_command_exists_and_accepts_its_arguments() -> None:
    import typer

    from corral.cli.main import app

    group = typer.main.get_command(app)
    commands = _corral_commands()
    # The real entry point: `corral <command> --help` for each command the page names, at once.
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    helps = {
        tuple(words): subprocess.Popen(
            [CORRAL, *words, "--help"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for words in {tuple(_subcommand(c)) for c in commands}
    }
    for words, proc in helps.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (words, err.decode())
        for option in {o for c in commands if tuple(_subcommand(c)) == words for o in c}:
            if option.startswith("--"):
                assert option in out.decode(), (words, option)
    # Every argument list parses (option names, types and ranges), without running anything.
    for words in commands:
        command: click.Command = group
        rest = list(words)
        while isinstance(command, click.Group):
            name = rest.pop(0)
            found = command.get_command(click.Context(command), name)
            assert found is not None, f"corral {' '.join(words)}: no command {name!r}"
            command = found
        command.make_context(f"corral {' '.join(words)}", rest)


def test_every_variable_is_one_corral_reads() -> None:
    known = set(VARIABLES.values())
    used = _variables()
    assert {"REDIS_URL", "DATABASE_URL", "CORRAL_HANDLERS", "CORRAL_ADMIN_TOKEN"} <= used
    assert used <= known, f"not read by Corral: {sorted(used - known)}"


def _env_file() -> dict[str, str]:
    lines = _blocks("ini")[0].splitlines()  # /etc/corral/corral.env
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _kubernetes_settings() -> dict[str, str]:
    values: dict[str, str] = {}
    for manifest in _manifests():
        if manifest["kind"] in ("Secret", "ConfigMap"):
            values |= {**manifest.get("stringData", {}), **manifest.get("data", {})}
    return values


def test_the_example_settings_are_accepted_in_production() -> None:
    for values in (_env_file(), _kubernetes_settings()):
        settings = load_settings(**values)  # raises ConfigurationError naming a bad variable
        assert settings.environment == "production"
        assert token_problem(settings) is None  # e.g. a token too short for production
