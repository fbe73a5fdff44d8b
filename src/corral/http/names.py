"""snake_case (Python) <-> camelCase (JSON) names, for fields and error paths."""

from __future__ import annotations

import re


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def camel_path(path: str) -> str:
    """``cron_expression`` -> ``cronExpression``; ``payload.x_y`` keeps inner keys as given."""
    head, dot, tail = path.partition(".")
    bracket = head.find("[")
    if bracket >= 0:
        return to_camel(head[:bracket]) + head[bracket:] + dot + tail
    return to_camel(head) + dot + tail
