"""Schedule expressions: rate(), cron() with L, W, # and names, at(); their next ticks in time
zones and across daylight-saving changes. Pure functions, no node."""

from __future__ import annotations

from datetime import datetime

import pytest

from lambdalet.errors import ScheduleExpressionError
from lambdalet.triggers.cron import next_fire_ms, parse_expression, parse_timezone


def ms(text: str) -> int:
    """Unix ms of an ISO 8601 time with an offset."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(at_ms: int, zone: str = "UTC") -> str:
    """An instant as ISO 8601 on the wall clock of ``zone``."""
    return datetime.fromtimestamp(at_ms / 1000, parse_timezone(zone)).isoformat()


def ticks(
    expression: str,
    after: str,
    count: int,
    zone: str = "UTC",
    *,
    anchor: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> list[str]:
    """The next ``count`` ticks after ``after`` (fewer if the expression runs out)."""
    parsed, tz = parse_expression(expression), parse_timezone(zone)
    found: list[str] = []
    at_ms: int | None = ms(after)
    while len(found) < count:
        assert at_ms is not None
        at_ms = next_fire_ms(
            parsed,
            tz,
            at_ms,
            anchor_ms=ms(anchor or after),
            start_ms=ms(start) if start else None,
            end_ms=ms(end) if end else None,
        )
        if at_ms is None:
            break
        found.append(iso(at_ms, zone))
    return found


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 12 * * ? *)", "2026-01-01T13:00", "2026-01-02T12:00 2026-01-03T12:00"),
        (
            "cron(0/15 * * * ? *)",
            "2026-01-01T10:07",
            "2026-01-01T10:15 2026-01-01T10:30 2026-01-01T10:45 2026-01-01T11:00",
        ),
        (
            "cron(*/20 9-10 * * ? *)",
            "2026-01-01T10:30",
            "2026-01-01T10:40 2026-01-02T09:00 2026-01-02T09:20",
        ),
        (  # a stepped range
            "cron(5 8-18/5 * * ? *)",
            "2026-01-01T00:00",
            "2026-01-01T08:05 2026-01-01T13:05 2026-01-01T18:05 2026-01-02T08:05",
        ),
        (  # from Friday 2 January 2026
            "cron(0 8 ? * MON-FRI *)",
            "2026-01-02T00:00",
            "2026-01-02T08:00 2026-01-05T08:00 2026-01-06T08:00",
        ),
        (  # a range that wraps around the week; names in any case
            "cron(0 9 ? * fri-mon *)",
            "2026-01-01T00:00",
            "2026-01-02T09:00 2026-01-03T09:00 2026-01-04T09:00 2026-01-05T09:00 2026-01-09T09:00",
        ),
        ("cron(0 0 1 JAN,JUL ? *)", "2026-01-01T00:00", "2026-07-01T00:00 2027-01-01T00:00"),
        (  # 1 is Sunday and 7 Saturday, as in Quartz
            "cron(0 10 ? * 1,7 *)",
            "2026-01-01T00:00",
            "2026-01-03T10:00 2026-01-04T10:00 2026-01-10T10:00",
        ),
        ("cron(0 10 L * ? *)", "2026-01-01T00:00", "2026-01-31T10:00 2026-02-28T10:00"),
        ("cron(0 10 L 2 ? *)", "2027-03-01T00:00", "2028-02-29T10:00 2029-02-28T10:00"),
        (  # 31 January and 28 February 2026 are Saturdays, 31 March a Tuesday
            "cron(0 10 LW * ? *)",
            "2026-01-01T00:00",
            "2026-01-30T10:00 2026-02-27T10:00 2026-03-31T10:00",
        ),
        (  # 1 August 2026 is a Saturday: Monday the 3rd, not 31 July
            "cron(0 10 1W * ? *)",
            "2026-07-15T00:00",
            "2026-08-03T10:00 2026-09-01T10:00",
        ),
        (  # 31 May 2026 is a Sunday: Friday the 29th; months of 30 days have no tick
            "cron(0 10 31W * ? *)",
            "2026-05-01T00:00",
            "2026-05-29T10:00 2026-07-31T10:00 2026-08-31T10:00",
        ),
        (  # 15 February and 15 March 2026 are Sundays
            "cron(0 10 15W * ? *)",
            "2026-02-01T00:00",
            "2026-02-16T10:00 2026-03-16T10:00 2026-04-15T10:00",
        ),
        (  # the last Friday of the month
            "cron(0 10 ? * 6L *)",
            "2026-01-01T00:00",
            "2026-01-30T10:00 2026-02-27T10:00 2026-03-27T10:00",
        ),
        (  # the first Monday
            "cron(0 10 ? * 2#1 *)",
            "2026-01-01T00:00",
            "2026-01-05T10:00 2026-02-02T10:00 2026-03-02T10:00",
        ),
        (  # a fifth Monday: only some months have one
            "cron(0 10 ? * MON#5 *)",
            "2026-01-01T00:00",
            "2026-03-30T10:00 2026-06-29T10:00 2026-08-31T10:00",
        ),
        ("cron(0 10 ? * L *)", "2026-01-01T00:00", "2026-01-03T10:00 2026-01-10T10:00"),
        ("cron(0 0 29 2 ? *)", "2026-01-01T00:00", "2028-02-29T00:00 2032-02-29T00:00"),
        ("cron(0 12 * * ? 2027-2028)", "2026-06-01T00:00", "2027-01-01T12:00 2027-01-02T12:00"),
        ("cron(0 12 * * ? 2020)", "2026-01-01T00:00", ""),  # no tick left
    ],
)
def test_cron_ticks(expression: str, after: str, expected: str) -> None:
    """Ticks in UTC, written as yyyy-mm-ddThh:mm."""
    wanted = expected.split()
    found = ticks(expression, after + ":00+00:00", len(wanted) or 1)
    assert [tick.removesuffix(":00+00:00") for tick in found] == wanted


def test_cron_tick_is_strictly_after() -> None:
    assert ticks("cron(0 12 * * ? *)", "2026-01-01T12:00:00+00:00", 1) == [
        "2026-01-02T12:00:00+00:00"
    ]
    assert ticks("cron(0 12 * * ? *)", "2026-01-01T11:59:59.999+00:00", 1) == [
        "2026-01-01T12:00:00+00:00"
    ]


def test_cron_in_a_time_zone() -> None:
    # Noon in Paris is 11:00 UTC in winter and 10:00 UTC in summer.
    found = ticks("cron(0 12 * * ? *)", "2026-03-28T00:00:00+00:00", 3, "Europe/Paris")
    assert found == [
        "2026-03-28T12:00:00+01:00",
        "2026-03-29T12:00:00+02:00",
        "2026-03-30T12:00:00+02:00",
    ]


def test_dst_spring_forward_skips_the_missing_time() -> None:
    # 8 March 2026, New York: 02:00 EST becomes 03:00 EDT; 02:30 does not exist that day.
    found = ticks("cron(30 2 * * ? *)", "2026-03-07T00:00:00-05:00", 3, "America/New_York")
    assert found == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]
    # An hourly schedule has no 02:00 that day, and no extra tick either.
    hourly = ticks("cron(0 * * * ? *)", "2026-03-08T00:30:00-05:00", 3, "America/New_York")
    assert hourly == [
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
    ]


def test_dst_fall_back_fires_the_repeated_time_once() -> None:
    # 1 November 2026, New York: 02:00 EDT becomes 01:00 EST; 01:30 happens twice.
    found = ticks("cron(30 1 * * ? *)", "2026-10-31T00:00:00-04:00", 3, "America/New_York")
    assert found == [
        "2026-10-31T01:30:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]
    half_hourly = ticks("cron(0/30 * * * ? *)", "2026-11-01T00:40:00-04:00", 4, "America/New_York")
    assert half_hourly == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T02:00:00-05:00",  # not 01:00 and 01:30 EST again
        "2026-11-01T02:30:00-05:00",
    ]


def test_dst_after_inside_the_repeated_hour() -> None:
    # From 01:20 EST (the second 01:20), the next :15 is 02:15 EST, not the first 01:15 again.
    found = ticks("cron(15 * * * ? *)", "2026-11-01T01:20:00-05:00", 1, "America/New_York")
    assert found == ["2026-11-01T02:15:00-05:00"]


def test_rate_counts_absolute_time_across_dst() -> None:
    # A day is 24 hours: at noon EST before the change, 13:00 EDT after it.
    found = ticks(
        "rate(1 day)",
        "2026-03-07T12:00:00-05:00",
        2,
        "America/New_York",
        anchor="2026-03-06T12:00:00-05:00",
    )
    assert found == ["2026-03-08T13:00:00-04:00", "2026-03-09T13:00:00-04:00"]


def test_rate_starts_at_its_anchor_then_every_period() -> None:
    created = "2026-01-01T10:00:30+00:00"
    # The first tick is the anchor itself (the creation): searched from just before it.
    rate, utc = parse_expression("rate(5 minutes)"), parse_timezone("UTC")
    first = next_fire_ms(rate, utc, ms(created) - 1, anchor_ms=ms(created))
    assert first == ms(created)
    assert ticks("rate(5 minutes)", created, 2) == [
        "2026-01-01T10:05:30+00:00",
        "2026-01-01T10:10:30+00:00",
    ]
    # A StartDate replaces the creation as the anchor; an EndDate ends the ticks.
    assert ticks(
        "rate(2 hours)",
        "2026-01-01T00:00:00+00:00",
        5,
        start="2026-01-02T06:00:00+00:00",
        end="2026-01-02T10:00:00+00:00",
    ) == ["2026-01-02T06:00:00+00:00", "2026-01-02T08:00:00+00:00", "2026-01-02T10:00:00+00:00"]


def test_cron_start_and_end_dates() -> None:
    assert ticks(
        "cron(0 12 * * ? *)",
        "2026-01-01T00:00:00+00:00",
        5,
        start="2026-01-03T12:00:00+00:00",
        end="2026-01-04T12:00:00+00:00",
    ) == ["2026-01-03T12:00:00+00:00", "2026-01-04T12:00:00+00:00"]


def test_at_fires_once_in_its_time_zone() -> None:
    assert ticks("at(2026-12-01T10:00:00)", "2026-01-01T00:00:00+00:00", 3, "Europe/Paris") == [
        "2026-12-01T10:00:00+01:00"
    ]
    # StartDate and EndDate do not apply to one-time schedules.
    assert ticks(
        "at(2026-12-01T10:00:00)",
        "2026-01-01T00:00:00+00:00",
        1,
        start="2027-01-01T00:00:00+00:00",
        end="2026-02-01T00:00:00+00:00",
    ) == ["2026-12-01T10:00:00+00:00"]


def test_at_on_dst_changes() -> None:
    # Inside the skipped hour: the instant the clock would have shown with EST, 03:30 EDT.
    assert ticks("at(2026-03-08T02:30:00)", "2026-01-01T00:00:00+00:00", 1, "America/New_York") == [
        "2026-03-08T03:30:00-04:00"
    ]
    # Inside the repeated hour: its first occurrence.
    assert ticks("at(2026-11-01T01:30:00)", "2026-01-01T00:00:00+00:00", 1, "America/New_York") == [
        "2026-11-01T01:30:00-04:00"
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("every 5 minutes", "use rate(5 minutes), cron(0 12 * * ? *) or at("),
        ("rate(1 minutes)", "with the value 1 the unit is 'minute'"),
        ("rate(5 minute)", "with the value 5 the unit is 'minutes'"),
        ("rate(0 minutes)", "must be a whole number above 0"),
        ("rate(5 seconds)", "the unit must be minute(s), hour(s) or day(s)"),
        ("rate(five minutes)", "a rate is rate(VALUE UNIT)"),
        ("cron(0 12 * *)", "a cron expression has six fields"),
        ("cron(0 12 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 12 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(60 12 * * ? *)", "the Minutes field '60' is not valid: 60 is out of range 0-59"),
        ("cron(0 24 * * ? *)", "the Hours field '24' is not valid"),
        ("cron(0 12 32 * ? *)", "the Day-of-month field '32' is not valid"),
        ("cron(0 12 * FOO ? *)", "'FOO' is not a number 1-12 or a name JAN-DEC"),
        ("cron(0 12 ? * 8 *)", "the Day-of-week field '8' is not valid"),
        ("cron(0 12 ? * 2#6 *)", "the week after '#' must be 1-5"),
        ("cron(0/0 12 * * ? *)", "the step '0' must be a whole number above 0"),
        ("cron(0 12 * * ? 1969)", "1969 is out of range 1970-2199"),
        ("at(2026-13-01T10:00:00)", "a one-time schedule is at(yyyy-mm-ddThh:mm:ss)"),
        ("at(2026-12-01 10:00)", "a one-time schedule is at(yyyy-mm-ddThh:mm:ss)"),
    ],
)
def test_invalid_expressions_say_why(expression: str, message: str) -> None:
    with pytest.raises(ScheduleExpressionError) as raised:
        parse_expression(expression)
    assert message in str(raised.value)
    assert expression in str(raised.value)


def test_invalid_time_zone() -> None:
    with pytest.raises(
        ScheduleExpressionError, match="Invalid ScheduleExpressionTimezone Mars/Base"
    ):
        parse_timezone("Mars/Base")
    with pytest.raises(ScheduleExpressionError, match="IANA time zone"):
        parse_timezone("../etc/passwd")
