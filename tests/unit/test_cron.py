"""Cron parsing, validation, matching and time zone names (core/cron.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from corral.core.cron import MAX_LENGTH, CronExpression, next_fires, parse_timezone
from corral.errors import InvalidCronExpression, ValidationError

SHANGHAI = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- parsing ---------------------------------------------------------------------------------


def test_spec_daily_at_two() -> None:
    cron = CronExpression.parse("0 0 2 * * *")
    assert cron.seconds == {0}
    assert cron.minutes == {0}
    assert cron.hours == {2}
    assert cron.days_of_month == frozenset(range(1, 32))
    assert cron.months == frozenset(range(1, 13))
    assert cron.days_of_week == frozenset(range(7))
    assert (cron.dom_star, cron.dow_star, cron.hour_wildcard) == (True, True, False)
    assert cron.source == "0 0 2 * * *"


def test_spec_every_thirty_minutes() -> None:
    cron = CronExpression.parse("0 */30 * * * *")
    assert cron.minutes == {0, 30}
    assert cron.hours == frozenset(range(24))
    assert cron.hour_wildcard


def test_spec_weekdays_at_nine() -> None:
    cron = CronExpression.parse("0 0 9 * * 1-5")
    assert cron.hours == {9}
    assert cron.days_of_week == {1, 2, 3, 4, 5}
    assert not cron.hour_wildcard


def test_spec_first_of_month() -> None:
    cron = CronExpression.parse("0 0 0 1 * *")
    assert cron.days_of_month == {1}
    assert not cron.dom_star


def test_five_fields_mean_second_zero() -> None:
    five = CronExpression.parse("0 2 * * *")
    six = CronExpression.parse("0 0 2 * * *")
    assert five.seconds == {0}
    assert dataclasses.replace(five, source=six.source) == six
    assert five.source == "0 2 * * *"


def test_source_is_stripped_and_tabs_separate() -> None:
    assert CronExpression.parse("  0\t0 2 * * *\n").source == "0\t0 2 * * *"


def test_day_of_week_seven_is_sunday() -> None:
    assert CronExpression.parse("0 0 0 * * 7").days_of_week == {0}
    assert CronExpression.parse("0 0 0 * * 0") == dataclasses.replace(
        CronExpression.parse("0 0 0 * * 7"), source="0 0 0 * * 0"
    )
    assert CronExpression.parse("0 0 0 * * 5-7").days_of_week == {5, 6, 0}


@pytest.mark.parametrize(
    ("expression", "months", "days"),
    [
        ("0 0 0 * JAN MON", {1}, {1}),
        ("0 0 0 * jan-mar sun-tue", {1, 2, 3}, {0, 1, 2}),
        ("0 0 0 * Dec,FEB Sat,Fri", {12, 2}, {6, 5}),
        ("0 0 0 * JUL-12/2 MON-5", {7, 9, 11}, {1, 2, 3, 4, 5}),
    ],
)
def test_month_and_day_names(expression: str, months: set[int], days: set[int]) -> None:
    cron = CronExpression.parse(expression)
    assert cron.months == months
    assert cron.days_of_week == days


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*/15", {0, 15, 30, 45}),
        ("10-20/5", {10, 15, 20}),
        ("50/3", {50, 53, 56, 59}),
        ("1,2,3-5,59", {1, 2, 3, 4, 5, 59}),
        ("7", {7}),
        ("0-59/60", {0}),
        ("007", {7}),
    ],
)
def test_field_syntax(field: str, expected: set[int]) -> None:
    assert CronExpression.parse(f"{field} * * * * *").seconds == expected


def test_day_of_week_step_forms_end_at_saturday() -> None:
    assert CronExpression.parse("0 0 0 * * */2").days_of_week == {0, 2, 4, 6}
    assert CronExpression.parse("0 0 0 * * 1/2").days_of_week == {1, 3, 5}


def test_star_flags_follow_vixie_first_character() -> None:
    cron = CronExpression.parse("0 0 */2 */2 * */3")
    assert (cron.hour_wildcard, cron.dom_star, cron.dow_star) == (True, True, True)
    fixed = CronExpression.parse("0 0 0-23 1-31 * 0-6")
    assert (fixed.hour_wildcard, fixed.dom_star, fixed.dow_star) == (False, False, False)


AT_CAP = ",".join(["1"] * 27) + " 00 0 * * *"  # "1,1,...,1": repeats are fine when in range


def test_list_of_ones_at_the_length_cap_is_valid() -> None:
    assert len(AT_CAP) == MAX_LENGTH
    cron = CronExpression.parse(AT_CAP)
    assert cron.seconds == {1}
    assert cron.minutes == {0}


def test_length_is_measured_after_stripping() -> None:
    assert CronExpression.parse(f"  {AT_CAP}\n").source == AT_CAP


def test_feb_29_is_valid() -> None:
    fires = next_fires("0 0 0 29 2 *", "UTC", z("2026-01-01T00:00"), 2)
    assert fires == [z("2028-02-29T00:00"), z("2032-02-29T00:00")]


def test_expression_is_frozen_value() -> None:
    cron = CronExpression.parse("0 0 2 * * *")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cron.source = "x"  # type: ignore[misc]
    assert cron == CronExpression.parse("0 0 2 * * *")
    assert hash(cron) == hash(CronExpression.parse("0 0 2 * * *"))


# -- bad input ---------------------------------------------------------------------------------

BAD = [
    ("", "", "expected 5 or 6 fields, got 0"),
    ("   ", "", "expected 5 or 6 fields, got 0"),
    ("* * * *", "", "expected 5 or 6 fields, got 4"),
    ("0 0 0 1 1 * 2026", "", "expected 5 or 6 fields, got 7"),
    ("60 * * * * *", "second", "60 out of range 0-59"),
    ("* 60 * * * *", "minute", "60 out of range 0-59"),
    ("* * 24 * * *", "hour", "24 out of range 0-23"),
    ("0 0 0 0 * *", "day-of-month", "0 out of range 1-31"),
    ("0 0 0 32 * *", "day-of-month", "32 out of range 1-31"),
    ("* * * * 13 *", "month", "13 out of range 1-12"),
    ("* * * * 0 *", "month", "0 out of range 1-12"),
    ("* * * * * 8", "day-of-week", "8 out of range 0-7"),
    ("*/0 * * * * *", "second", "step 0 out of range 1-60"),
    ("*/0 0 * * *", "minute", "step 0 out of range 1-60"),
    ("0 */0 * * *", "hour", "step 0 out of range 1-24"),
    ("* * */25 * * *", "hour", "step 25 out of range 1-24"),
    ("5-1 * * * * *", "second", "range 5-1 is reversed"),
    ("0 0 0 * * FRI-MON", "day-of-week", "range FRI-MON is reversed"),
    ("0 0 0 30 2 *", "", "never fires"),
    ("0 0 0 31 4,6,9,11 *", "", "never fires"),
    ("0 0 0 30,31 2 */2", "", "never fires"),
    ("@reboot", "", "@-aliases are not supported"),
    ("@daily", "", "@-aliases are not supported"),
    ("٠ ٢ * * *", "", "non-ASCII character U+0660"),
    ("0 ２ * * *", "", "non-ASCII character U+FF12"),
    ("0-99999999/1 * * * *", "minute", "99999999 out of range 0-59"),
    ("0-99999999/1 * * * * *", "second", "99999999 out of range 0-59"),
    ("1-5/99999999 * * * * *", "second", "step 99999999 out of range 1-60"),
    ("0 0 0 L * *", "day-of-month", "'L' (last day) is not supported"),
    ("0 0 0 * * 5L", "day-of-week", "'L' (last day) is not supported"),
    ("0 0 0 15W * *", "day-of-month", "'W' (nearest weekday) is not supported"),
    ("0 0 0 ? * 1", "day-of-month", "'?' is not supported"),
    ("0 0 0 * * ?", "day-of-week", "'?' is not supported"),
    ("0 0 0 * * 5#3", "day-of-week", "'#' is not supported"),
    ("L", "", "expected 5 or 6 fields, got 1"),
    ("?", "", "expected 5 or 6 fields, got 1"),
    ("#", "", "expected 5 or 6 fields, got 1"),
    ("1,,2 * * * * *", "second", "empty list item"),
    ("1, * * * * *", "second", "empty list item"),
    (",1 * * * * *", "second", "empty list item"),
    ("1- * * * * *", "second", "empty value"),
    ("/5 * * * * *", "second", "empty value"),
    ("*/ * * * * *", "second", "empty step"),
    ("1-2-3 * * * * *", "second", "invalid value '2-3'"),
    ("*/5/2 * * * * *", "second", "invalid step '5/2'"),
    ("*-5 * * * * *", "second", "invalid value '*'"),
    ("+5 * * * * *", "second", "invalid value '+5'"),
    ("0 0 JAN * * *", "hour", "invalid value 'JAN'"),
    ("0 0 0 * * JAN", "day-of-week", "invalid value 'JAN'"),
    ("0 0 0 * MON *", "month", "invalid value 'MON'"),
    ("*/MON 0 0 * * *", "second", "invalid step 'MON'"),
    ("0 0 0 * * 1\x00", "day-of-week", "invalid value"),
]


@pytest.mark.parametrize(("expression", "field", "message"), BAD)
def test_bad_expression_names_field(expression: str, field: str, message: str) -> None:
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression.parse(expression)
    error = caught.value
    assert error.field == field
    assert error.path == "cronExpression"
    assert message in str(error)
    assert str(error).startswith(
        f"cronExpression: {field} field: " if field else "cronExpression: "
    )
    assert isinstance(error, ValueError)


def test_error_message_format_matches_the_api_contract() -> None:
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression.parse("60 * * * * *")
    assert str(caught.value) == "cronExpression: second field: 60 out of range 0-59"
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression.parse("* * * *")
    assert str(caught.value) == "cronExpression: expected 5 or 6 fields, got 4"


def test_aliases_say_what_to_write_instead() -> None:
    with pytest.raises(InvalidCronExpression, match="0 0 0 \\* \\* \\*"):
        CronExpression.parse("@daily")


def test_65_characters_rejected_before_parsing_fields() -> None:
    expression = AT_CAP.replace(" 00 ", " 000 ")
    assert len(expression) == MAX_LENGTH + 1
    with pytest.raises(InvalidCronExpression, match="65 characters; at most 64") as caught:
        CronExpression.parse(expression)
    assert caught.value.field == ""


def test_10000_characters_rejected() -> None:
    with pytest.raises(InvalidCronExpression, match="10000 characters") as caught:
        CronExpression.parse("1," * 5000)
    assert caught.value.field == ""
    assert len(caught.value.expression) == MAX_LENGTH


def test_non_string_rejected() -> None:
    with pytest.raises(InvalidCronExpression, match="must be a string"):
        CronExpression.parse(None)  # type: ignore[arg-type]


def test_both_day_fields_restricted_use_or_so_a_missing_day_still_fires() -> None:
    # dom and dow both restricted: Vixie OR, so Mondays in February still fire
    cron = CronExpression.parse("0 0 0 30 2 1")
    assert cron.next_fire(z("2026-01-01T00:00"), ZoneInfo("UTC")) == z("2026-02-02T00:00")


def test_direct_construction_rejects_empty_sets() -> None:
    cron = CronExpression.parse("0 0 2 * * *")
    with pytest.raises(ValueError, match="at least one value"):
        dataclasses.replace(cron, hours=frozenset())


# -- firing ----------------------------------------------------------------------------------


def test_next_fire_is_strictly_after() -> None:
    cron = CronExpression.parse("0 0 2 * * *")
    fire = cron.next_fire(z("2026-05-01T00:00"), SHANGHAI)
    assert fire == z("2026-05-01T18:00")
    assert cron.next_fire(fire, SHANGHAI) == z("2026-05-02T18:00")
    assert cron.next_fire(fire - timedelta(microseconds=1), SHANGHAI) == fire
    assert fire.tzinfo is UTC


def test_next_fire_accepts_any_aware_datetime() -> None:
    cron = CronExpression.parse("0 0 2 * * *")
    after = datetime(2026, 5, 1, 1, 59, 59, 999_999, tzinfo=SHANGHAI)
    assert cron.next_fire(after, SHANGHAI) == z("2026-04-30T18:00")


def test_every_second_never_skips_or_repeats() -> None:
    cron = CronExpression.parse("* * * * * *")
    assert cron.next_fire(z("2026-01-01T00:00:00.5"), NY) == z("2026-01-01T00:00:01")
    assert cron.next_fire(z("2026-01-01T00:00:00"), NY) == z("2026-01-01T00:00:01")


def test_naive_datetimes_rejected() -> None:
    cron = CronExpression.parse("0 0 2 * * *")
    with pytest.raises(ValueError, match="timezone-aware"):
        cron.next_fire(datetime(2026, 1, 1), SHANGHAI)  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        list(cron.fires_between(datetime(2026, 1, 1), z("2026-01-02T00:00"), SHANGHAI))  # noqa: DTZ001


def test_fires_between_is_half_open() -> None:
    cron = CronExpression.parse("0 0 * * * *")
    fires = list(cron.fires_between(z("2026-01-01T00:00"), z("2026-01-01T03:00"), ZoneInfo("UTC")))
    assert fires == [z("2026-01-01T01:00"), z("2026-01-01T02:00"), z("2026-01-01T03:00")]
    assert list(cron.fires_between(z("2026-01-01T03:00"), z("2026-01-01T01:00"), NY)) == []


def test_weekdays_skip_the_weekend() -> None:
    fires = next_fires("0 0 9 * * 1-5", "Asia/Shanghai", z("2026-05-01T02:00"), 3)  # a Friday
    assert fires == [z("2026-05-04T01:00"), z("2026-05-05T01:00"), z("2026-05-06T01:00")]


def test_vixie_or_when_both_day_fields_restricted() -> None:
    # the 13th, or any Friday
    fires = next_fires("0 0 12 13 * FRI", "UTC", z("2026-02-01T00:00"), 4)
    assert [fire.day for fire in fires] == [6, 13, 20, 27]


def test_vixie_and_when_a_day_field_starts_with_star() -> None:
    # odd days of the month that are also Mondays
    fires = next_fires("0 0 0 */2 * MON", "UTC", z("2026-06-01T00:00"), 3)
    assert fires == [z("2026-06-15T00:00"), z("2026-06-29T00:00"), z("2026-07-13T00:00")]


def test_rare_schedule_found_decades_ahead() -> None:
    # 29 February that is a Sunday (AND because day-of-week starts with '*'): 2032, 2060, 2088
    fires = next_fires("0 0 0 29 2 */7", "UTC", z("2026-01-01T00:00"), 3)
    assert fires == [z("2032-02-29T00:00"), z("2060-02-29T00:00"), z("2088-02-29T00:00")]


def test_search_stops_at_the_end_of_the_calendar() -> None:
    cron = CronExpression.parse("* * * * * *")
    assert cron.next_fire(datetime.max.replace(tzinfo=UTC), SHANGHAI) is None
    assert next_fires(cron, SHANGHAI, datetime.max.replace(tzinfo=UTC), 3) == []


def test_next_fires_accepts_strings_and_objects() -> None:
    after = z("2026-05-01T00:00")
    by_name = next_fires("0 0 2 * * *", "Asia/Shanghai", after, 2)
    by_object = next_fires(CronExpression.parse("0 0 2 * * *"), SHANGHAI, after, 2)
    assert by_name == by_object == [z("2026-05-01T18:00"), z("2026-05-02T18:00")]
    assert next_fires("0 0 2 * * *", "Asia/Shanghai", after, 0) == []


def test_next_fires_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must be"):
        next_fires("0 0 2 * * *", "UTC", z("2026-01-01T00:00"), -1)
    with pytest.raises(InvalidCronExpression):
        next_fires("0 0 2 * *  * *", "UTC", z("2026-01-01T00:00"), 1)
    with pytest.raises(ValidationError) as caught:
        next_fires("0 0 2 * * *", "Mars/Olympus", z("2026-01-01T00:00"), 1)
    assert caught.value.path == "timezone"


def test_zones_with_odd_offsets() -> None:
    # Kolkata +05:30, Chatham +12:45/+13:45, Etc/GMT-8 is UTC+8
    after = z("2026-01-01T00:00")
    assert next_fires("0 0 0 * * *", "Asia/Kolkata", after, 1) == [z("2026-01-01T18:30")]
    assert next_fires("0 0 0 * * *", "Pacific/Chatham", after, 1) == [z("2026-01-01T10:15")]
    assert next_fires("0 0 0 * * *", "Etc/GMT-8", after, 1) == [z("2026-01-01T16:00")]


def test_santiago_midnight_gap_fires_at_one() -> None:
    # Chile springs forward at 00:00 -> 01:00 (2026-09-06); 00:30 fires at 01:00 -03 = 04:00Z
    fires = next_fires("0 30 0 * * *", "America/Santiago", z("2026-09-05T12:00"), 2)
    assert fires == [z("2026-09-06T04:00"), z("2026-09-07T03:30")]


def test_lord_howe_half_hour_shift() -> None:
    # 2026-10-04 02:00 -> 02:30 (+10:30 -> +11): 02:15 fires at the end of the gap
    fires = next_fires("0 15 2 * * *", "Australia/Lord_Howe", z("2026-10-03T00:00"), 1)
    assert fires == [z("2026-10-03T15:30")]
    tz = ZoneInfo("Australia/Lord_Howe")
    assert fires[0].astimezone(tz).strftime("%H:%M") == "02:30"


# -- time zone names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "asia/shanghai",
        "Asia/Shanghai ",
        " Asia/Shanghai",
        "UTC+8",
        "GMT+8",
        "Local",
        "localtime",
        "../../etc/passwd",
        "/etc/localtime",
        "Asia/../Asia/Shanghai",
        "Asia/Shanghai/",
        "A" * 33,
        "x" * 10_000,
        "Asia/Shanghai\x00",
        "Mars/Olympus",
    ],
)
def test_unknown_time_zones_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_timezone(name)
    assert caught.value.path == "timezone"
    assert "unknown IANA time zone" in str(caught.value)
    assert str(caught.value).startswith("timezone: unknown IANA time zone")
    assert len(str(caught.value)) < 100


def test_non_string_time_zone_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        parse_timezone(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["Etc/GMT-8", "Asia/Shanghai", "America/Argentina/ComodRivadavia", "UTC"]
)
def test_known_time_zones_accepted(name: str) -> None:
    zone = parse_timezone(name)
    assert isinstance(zone, ZoneInfo)
    assert zone.key == name


def test_etc_gmt_minus_8_means_utc_plus_8() -> None:
    offset = datetime(2026, 1, 1, tzinfo=parse_timezone("Etc/GMT-8")).utcoffset()
    assert offset == timedelta(hours=8)
