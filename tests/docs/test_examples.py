"""The docs' code is real: every example runs against the real Redis and a fresh SQLite file,
and every ```python block in docs/*.md is a verbatim copy of an example file (or a marked
region of one).

Include convention, in a docs page::

    <!-- include: examples/quickstart.py -->
    ```python
    ...the whole file...
    ```

    <!-- include: examples/app_handlers/reports.py#sync -->
    ```python
    ...the lines between "# --8<-- [start:sync]" and "# --8<-- [end:sync]"...
    ```
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"

INCLUDE = re.compile(r"<!-- include: (?P<path>[^\s#]+)(?:#(?P<region>[\w-]+))? -->\n```python\n")
PYTHON_BLOCK = re.compile(r"^```python\n", re.MULTILINE)

# Lines each example must print: the docs quote them.
EXPECTED: dict[str, list[str]] = {
    "quickstart.py": [
        "dataProcessingJob completed {'success': True, 'processedCount': 1000}",
        "resize_image completed {'width': 320}",
        "HealthReport(status='healthy'",
    ],
    "priorities_retries.py": [
        "run order: ['CRITICAL', '15', 'HIGH', 'NORMAL', 'LOW']",
        "flaky-task: completed after 2 attempt(s); result={'attempt': 2} "
        "reason='RuntimeError: upstream timed out'",
        "charge-card: failed after 1 attempt(s); result=None "
        "reason='amount must be a positive integer, got 0'",
        "send-invoice: failed after 1 attempt(s); result=None "
        "reason=\"handler 'send-invoice' not registered\"",
    ],
    "schedules.py": [
        "2026-03-08T07:00:00+00:00\n2026-03-09T06:30:00+00:00\n2026-03-10T06:30:00+00:00",
        "fired: True",
        "scheduled run: completed {'success': True, 'processedCount': 1000}",
        "manual run: completed {'success': True, 'processedCount': 1000}",
        "stats: True",
    ],
    "troubleshooting.py": [
        "HealthReport(status='unhealthy', details={'redis': \"unreachable: Redis not reachable "
        "at 127.0.0.1:1",
        "BrokerUnavailable: Redis not reachable at 127.0.0.1:1",
        "ValidationError: handler_name: no handler named 'sendInvoice' is registered",
        "ValidationError: cron_expression: second field: 60 out of range 0-59",
        "ValidationError: cron_expression: never fires: day 30 does not exist in month 2",
        "ValidationError: cron_expression: @daily: @-aliases are not supported; "
        "write the fields (@daily = '0 0 0 * * *')",
        "ValidationError: timezone: unknown IANA time zone 'EST5'",
        "InvalidJobOptions: name: must be 1-64 letters, digits, '_' or '-', "
        "not starting with a digit or '-'",
        "InvalidJobOptions: data.when: set is not JSON-serializable",
        "InvalidJobOptions: options.priority: must be between 1 and 20, got 0",
        "InvalidJobOptions: options.retries: unknown option",
    ],
}


def _region(text: str, region: str | None, where: str) -> str:
    if region is None:
        return text
    start = re.search(rf"^[ \t]*# --8<-- \[start:{region}\]\n", text, re.MULTILINE)
    end = re.search(rf"^[ \t]*# --8<-- \[end:{region}\]\n", text, re.MULTILINE)
    assert start, f"{where}: no start marker for region {region!r}"
    assert end, f"{where}: no end marker for region {region!r}"
    assert start.end() <= end.start(), f"{where}: region {region!r} ends before it starts"
    return textwrap.dedent(text[start.end() : end.start()]).strip("\n") + "\n"


def _includes() -> list[tuple[str, str, str]]:
    """(where, expected, actual) for every include in docs/*.md."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in INCLUDE.finditer(text):
            body_end = text.index("\n```\n", match.end() - 1)
            actual = text[match.end() : body_end + 1]
            where = f"{page.name}: {match['path']}" + (
                f"#{match['region']}" if match["region"] else ""
            )
            source = ROOT / match["path"]
            assert source.is_file(), f"{where}: no such file"
            assert source.resolve().is_relative_to(EXAMPLES), f"{where}: not under examples/"
            expected = _region(source.read_text(encoding="utf-8"), match["region"], where)
            found.append((where, expected, actual))
    return found


def test_every_python_block_in_the_docs_is_included_from_an_example() -> None:
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "no docs pages"
    for page in pages:
        text = page.read_text(encoding="utf-8")
        blocks = len(PYTHON_BLOCK.findall(text))
        included = len(INCLUDE.findall(text))
        assert blocks == included, f"{page.name}: {blocks - included} python block(s) not included"


def test_included_blocks_match_their_files() -> None:
    includes = _includes()
    assert len(includes) >= 8
    for where, expected, actual in includes:
        assert actual == expected, f"{where}: the block differs from the file; copy it again"


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs(example: str, queue_name: str, database_url: str, redis_url: str) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "CORRAL_QUEUE": queue_name,
        "CORRAL_PREFIX": "corraltest",
        "LOG_LEVEL": "warning",
    }
    env.pop("CORRAL_HANDLERS", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in EXPECTED[example]:
        assert line in done.stdout, f"{example}: {line!r} not in output:\n{done.stdout}"


def test_every_example_is_tested() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(EXPECTED)
