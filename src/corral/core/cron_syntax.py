"""Cron syntax: an expression's text to the set of values of each field, or an
:class:`~corral.errors.InvalidCronExpression` naming the field. Pure; the rules are listed in
``core.cron``'s docstring."""

from __future__ import annotations

from corral.errors import InvalidCronExpression

MAX_LENGTH = 64

# (name, minimum, maximum for explicit numbers, maximum for '*' and 'N/S')
_FIELDS = (
    ("second", 0, 59, 59),
    ("minute", 0, 59, 59),
    ("hour", 0, 23, 23),
    ("day-of-month", 1, 31, 31),
    ("month", 1, 12, 12),
    ("day-of-week", 0, 7, 6),
)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES: dict[str, dict[str, int]] = {
    "month": {name: i for i, name in enumerate(_MONTHS, start=1)},
    "day-of-week": {name: i for i, name in enumerate(_DAYS)},
}
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February in a leap year


def parse_fields(expression: str) -> tuple[str, list[str], list[frozenset[int]]]:
    """The stripped text, its six fields (a five-field expression gets second ``0``) and each
    field's values, in order: second, minute, hour, day-of-month, month, day-of-week."""
    if not isinstance(expression, str):
        raise InvalidCronExpression(repr(expression), "", "must be a string")
    text = expression.strip()
    if len(text) > MAX_LENGTH:
        problem = f"{len(text)} characters; at most {MAX_LENGTH} allowed"
        raise InvalidCronExpression(text[:MAX_LENGTH], "", problem)
    for position, char in enumerate(text):
        if not char.isascii():
            problem = f"non-ASCII character U+{ord(char):04X} at position {position}"
            raise InvalidCronExpression(text, "", problem)
    if text.startswith("@"):
        problem = f"{text}: @-aliases are not supported; write the fields (@daily = '0 0 0 * * *')"
        raise InvalidCronExpression(text, "", problem)
    parts = text.split()
    if len(parts) not in (5, 6):
        raise InvalidCronExpression(text, "", f"expected 5 or 6 fields, got {len(parts)}")
    if len(parts) == 5:
        parts.insert(0, "0")
    sets = [_parse_field(text, spec, part) for spec, part in zip(_FIELDS, parts, strict=True)]
    dom_star, dow_star = parts[3].startswith("*"), parts[5].startswith("*")
    if (dom_star or dow_star) and min(sets[3]) > max(_LONGEST_MONTH[m - 1] for m in sets[4]):
        problem = f"never fires: day {_fmt(sets[3])} does not exist in month {_fmt(sets[4])}"
        raise InvalidCronExpression(text, "", problem)
    return text, parts, sets


def _parse_field(expression: str, spec: tuple[str, int, int, int], text: str) -> frozenset[int]:
    name = spec[0]
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise InvalidCronExpression(expression, name, f"empty list item in {text!r}")
        values.update(_parse_item(expression, spec, item))
    if name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _parse_item(expression: str, spec: tuple[str, int, int, int], item: str) -> range:
    name, low, _, star_high = spec
    for char, problem in (("?", "'?' is not supported; use '*'"), ("#", "'#' is not supported")):
        if char in item:
            raise InvalidCronExpression(expression, name, problem)
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        step = _number(expression, name, step_text, "step")
        if not 1 <= step <= star_high - low + 1:
            raise InvalidCronExpression(
                expression, name, f"step {step} out of range 1-{star_high - low + 1}"
            )
    if base == "*":
        return range(low, star_high + 1, step)
    first_text, dash, last_text = base.partition("-")
    first = _value(expression, spec, first_text)
    last = _value(expression, spec, last_text) if dash else (star_high if slash else first)
    if first > last:
        raise InvalidCronExpression(expression, name, f"range {base} is reversed")
    return range(first, last + 1, step)


def _value(expression: str, spec: tuple[str, int, int, int], token: str) -> int:
    name, low, high, _ = spec
    names = _NAMES.get(name, {})
    value = names[token.upper()] if token.upper() in names else _number(expression, name, token)
    if not low <= value <= high:
        raise InvalidCronExpression(expression, name, f"{value} out of range {low}-{high}")
    return value


def _number(expression: str, name: str, token: str, what: str = "value") -> int:
    if token and all("0" <= char <= "9" for char in token):
        return int(token)
    upper = token.upper()
    if upper.startswith("L") or (upper.endswith("L") and upper[:-1].isdigit()):
        problem = f"{token!r}: 'L' (last day) is not supported"
    elif upper.endswith("W") and upper[:-1].isdigit():
        problem = f"{token!r}: 'W' (nearest weekday) is not supported"
    elif not token:
        problem = f"empty {what}"
    else:
        problem = f"invalid {what} {token!r}"
    raise InvalidCronExpression(expression, name, problem)


def _fmt(values: frozenset[int]) -> str:
    return ",".join(str(value) for value in sorted(values))
