"""EventBridge Scheduler's schedule expressions and when they fire: pure functions on Unix ms.

Three kinds, as AWS defines them:

- ``rate(VALUE UNIT)``: UNIT is ``minute``/``hour``/``day`` when VALUE is 1 and
  ``minutes``/``hours``/``days`` otherwise. Rates are fixed durations on the absolute clock (a
  "day" is 24 hours even across a DST change) counted from an anchor: the schedule's
  StartDate, or its creation when it has none. The first tick is the anchor itself (AWS:
  "starts invoking the target immediately"), then one every period.
- ``cron(MINUTES HOURS DAY-OF-MONTH MONTH DAY-OF-WEEK YEAR)``: six fields read on the wall
  clock of the schedule's time zone. Day-of-week counts 1 = SUN ... 7 = SAT (as Quartz does).
  Every field takes ``*``, numbers, ``a-b`` ranges (wrapping, like ``FRI-MON``), ``,`` lists and
  ``/`` steps (``0/15``, ``*/5``, ``10-50/20``); months and days of the week take names
  (``JAN``, ``MON``). Exactly one of day-of-month and day-of-week is ``?``. Day-of-month also
  takes ``L`` (last day), ``LW`` (last weekday) and ``15W`` (the weekday nearest the 15th,
  within the month); day-of-week takes ``L`` (Saturday), ``6L`` (the month's last Friday) and
  ``2#1`` (its first Monday). Years run from 1970 to 2199.
- ``at(yyyy-mm-ddThh:mm:ss)``: once, on the wall clock of the time zone. StartDate and
  EndDate do not apply.

Daylight saving time, as EventBridge Scheduler documents it: a wall-clock time that the
spring change skips does not fire; one that the autumn change repeats fires once, at its first
occurrence. An ``at()`` inside a skipped hour fires at the instant the wall clock would have
shown it with the offset in force before the change.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lambdalet.errors import ScheduleExpressionError

T = TypeVar("T")

MINUTE_MS = 60_000
FIRST_YEAR = 1970
LAST_YEAR = 2199
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_WEEKDAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)
}
_RATE = re.compile(r"rate\(\s*(\d+)\s+([a-z]+)\s*\)")
_RATE_UNITS_MS = {"minute": MINUTE_MS, "hour": 60 * MINUTE_MS, "day": 24 * 60 * MINUTE_MS}
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_CRON = re.compile(r"cron\((.*)\)")


@dataclass(frozen=True)
class Rate:
    """``rate(...)``: a tick every ``period_ms`` from the schedule's anchor."""

    period_ms: int


@dataclass(frozen=True)
class At:
    """``at(...)``: one tick at a wall-clock time of the schedule's time zone."""

    wall_time: datetime


@dataclass(frozen=True)
class _DayOfMonth:
    """One item of the day-of-month field: plain days, or ``L``, ``LW``, ``nW``."""

    days: frozenset[int] = frozenset()
    last: bool = False
    last_weekday: bool = False
    nearest_weekday_to: int | None = None


@dataclass(frozen=True)
class _DayOfWeek:
    """One item of the day-of-week field (AWS numbering, 1 = Sunday): plain, ``nL`` or ``n#k``."""

    weekdays: frozenset[int] = frozenset()
    last_of_month: int | None = None
    nth: tuple[int, int] | None = None


@dataclass(frozen=True)
class Cron:
    """``cron(...)``: the sets of values its six fields allow, ready to be searched."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[_DayOfMonth, ...] | None
    months: tuple[int, ...]
    days_of_week: tuple[_DayOfWeek, ...] | None
    years: tuple[int, ...]

    def days(self, year: int, month: int) -> list[int]:
        """The days of ``month`` that the day-of-month or day-of-week field selects, in order."""
        last_day = calendar.monthrange(year, month)[1]
        found: set[int] = set()
        for dom in self.days_of_month or ():
            found |= _days_of_month(dom, year, month, last_day)
        for dow in self.days_of_week or ():
            found |= _days_of_week(dow, year, month, last_day)
        return sorted(found)


Expression = Rate | Cron | At


def parse_expression(text: str) -> Expression:
    """A ``rate()``, ``cron()`` or ``at()`` expression; ScheduleExpressionError says what is
    wrong with one that is not."""
    text = text.strip()
    if text.startswith("rate("):
        return _parse_rate(text)
    if text.startswith("cron("):
        return _parse_cron(text)
    if text.startswith("at("):
        return _parse_at(text)
    raise ScheduleExpressionError(
        f"Invalid Schedule Expression {text}: use rate(5 minutes), cron(0 12 * * ? *) or"
        " at(2026-12-01T10:00:00)"
    )


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/Paris``); ScheduleExpressionError if
    unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleExpressionError(
            f"Invalid ScheduleExpressionTimezone {name}: use an IANA time zone name such as"
            " UTC, America/New_York or Europe/Paris"
        ) from None


def next_fire_ms(
    expression: Expression,
    zone: ZoneInfo,
    after_ms: int,
    *,
    anchor_ms: int,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> int | None:
    """The first tick strictly after ``after_ms``, within [``start_ms``, ``end_ms``] for
    recurring expressions; None when there is none left.

    ``anchor_ms`` is when the schedule was created: rates count from it when there is no
    StartDate.
    """
    if isinstance(expression, At):
        instant_ms = wall_time_ms(expression.wall_time, zone)
        return instant_ms if instant_ms > after_ms else None
    if isinstance(expression, Rate):
        anchor = anchor_ms if start_ms is None else start_ms
        periods = max(0, (after_ms - anchor) // expression.period_ms + 1)
        found: int | None = anchor + periods * expression.period_ms
    else:
        if start_ms is not None:
            after_ms = max(after_ms, start_ms - 1)
        found = _next_cron_ms(expression, zone, after_ms)
    if found is not None and end_ms is not None and found > end_ms:
        return None
    return found


def wall_time_ms(wall_time: datetime, zone: ZoneInfo) -> int:
    """The instant a naive wall-clock time of ``zone`` stands for (the first one when the clock
    shows it twice)."""
    return (wall_time.replace(tzinfo=zone, fold=0) - _EPOCH) // timedelta(milliseconds=1)


def _exists(wall_time: datetime, zone: ZoneInfo, instant_ms: int) -> bool:
    """Whether the clock of ``zone`` ever shows ``wall_time`` (not skipped by a DST change)."""
    shown = (_EPOCH + timedelta(milliseconds=instant_ms)).astimezone(zone)
    return shown.replace(tzinfo=None, fold=0) == wall_time


def _next_cron_ms(cron: Cron, zone: ZoneInfo, after_ms: int) -> int | None:
    after = (_EPOCH + timedelta(milliseconds=after_ms)).astimezone(zone)
    start = after.replace(tzinfo=None, second=0, microsecond=0, fold=0)
    for wall_time in _wall_times(cron, start):
        instant_ms = wall_time_ms(wall_time, zone)
        # Wall times just after ``after`` may lie before it when ``after`` is in the repeated
        # hour of an autumn change; skipped ones never fire.
        if instant_ms > after_ms and _exists(wall_time, zone, instant_ms):
            return instant_ms
    return None


def _wall_times(cron: Cron, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock times that ``cron`` selects, from ``start`` (a whole minute) on."""
    for year in cron.years:
        if year < start.year:
            continue
        for month in cron.months:
            if (year, month) < (start.year, start.month):
                continue
            for day in cron.days(year, month):
                if (year, month, day) < (start.year, start.month, start.day):
                    continue
                for hour in cron.hours:
                    if (year, month, day, hour) < (start.year, start.month, start.day, start.hour):
                        continue
                    for minute in cron.minutes:
                        wall_time = datetime(year, month, day, hour, minute)
                        if wall_time >= start:
                            yield wall_time


def _weekday(year: int, month: int, day: int) -> int:
    """AWS's day-of-week number (1 = Sunday ... 7 = Saturday) of a date."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _days_of_month(item: _DayOfMonth, year: int, month: int, last_day: int) -> set[int]:
    if item.last:
        return {last_day}
    if item.last_weekday:
        day = last_day
        while _weekday(year, month, day) in (1, 7):
            day -= 1
        return {day}
    if item.nearest_weekday_to is not None:
        day = item.nearest_weekday_to
        if day > last_day:
            return set()
        weekday = _weekday(year, month, day)
        if weekday == 7:  # Saturday: the Friday before, or the Monday after the 1st
            return {day - 1 if day > 1 else day + 2}
        if weekday == 1:  # Sunday: the Monday after, or the Friday before the last day
            return {day + 1 if day < last_day else day - 2}
        return {day}
    return {day for day in item.days if day <= last_day}


def _days_of_week(item: _DayOfWeek, year: int, month: int, last_day: int) -> set[int]:
    first_weekday = _weekday(year, month, 1)
    if item.last_of_month is not None:
        day = last_day
        while _weekday(year, month, day) != item.last_of_month:
            day -= 1
        return {day}
    if item.nth is not None:
        weekday, nth = item.nth
        day = 1 + (weekday - first_weekday) % 7 + 7 * (nth - 1)
        return {day} if day <= last_day else set()
    return {
        day for day in range(1, last_day + 1) if (first_weekday + day - 2) % 7 + 1 in item.weekdays
    }


def _parse_rate(text: str) -> Rate:
    match = _RATE.fullmatch(text)
    if match is None:
        raise ScheduleExpressionError(
            f"Invalid Schedule Expression {text}: a rate is rate(VALUE UNIT), for example"
            " rate(5 minutes), rate(1 hour) or rate(7 days)"
        )
    value, unit = int(match.group(1)), match.group(2)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS_MS:
        raise ScheduleExpressionError(
            f"Invalid Schedule Expression {text}: the unit must be minute(s), hour(s) or day(s)"
        )
    if value < 1:
        raise ScheduleExpressionError(
            f"Invalid Schedule Expression {text}: the value must be a whole number above 0"
        )
    expected = singular if value == 1 else singular + "s"
    if unit != expected:
        raise ScheduleExpressionError(
            f"Invalid Schedule Expression {text}: with the value {value} the unit is"
            f" {expected!r} (singular for 1, plural otherwise): rate({value} {expected})"
        )
    return Rate(value * _RATE_UNITS_MS[singular])


def _parse_at(text: str) -> At:
    match = _AT.fullmatch(text)
    wall_time: datetime | None = None
    if match is not None:
        try:
            wall_time = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            wall_time = None
    if wall_time is None:
        raise ScheduleExpressionError(
            f"Invalid Schedule Expression {text}: a one-time schedule is"
            " at(yyyy-mm-ddThh:mm:ss), for example at(2026-12-01T10:00:00)"
        )
    return At(wall_time)


def _parse_cron(text: str) -> Cron:
    match = _CRON.fullmatch(text)
    fields = match.group(1).split() if match else []
    if len(fields) != 6:
        raise ScheduleExpressionError(
            f"Invalid Schedule Expression {text}: a cron expression has six fields, minutes"
            " hours day-of-month month day-of-week year, for example cron(0 12 * * ? *)"
        )
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleExpressionError(
            f"Invalid Schedule Expression {text}: exactly one of day-of-month and day-of-week"
            " must be '?' (for example cron(0 12 * * ? *) or cron(0 12 ? * MON-FRI *))"
        )

    def field(name: str, value: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(value)
        except _FieldError as error:
            raise ScheduleExpressionError(
                f"Invalid Schedule Expression {text}: the {name} field {value!r} is not valid:"
                f" {error}"
            ) from None

    return Cron(
        minutes=field("Minutes", minutes, lambda f: _sorted(_parse_values(f, 0, 59, {}))),
        hours=field("Hours", hours, lambda f: _sorted(_parse_values(f, 0, 23, {}))),
        days_of_month=None if dom == "?" else field("Day-of-month", dom, _parse_days_of_month),
        months=field("Month", month, lambda f: _sorted(_parse_values(f, 1, 12, _MONTHS))),
        days_of_week=None if dow == "?" else field("Day-of-week", dow, _parse_days_of_week),
        years=field("Year", year, lambda f: _sorted(_parse_values(f, FIRST_YEAR, LAST_YEAR, {}))),
    )


class _FieldError(ValueError):
    """Raised when one cron field cannot be parsed."""


def _sorted(values: set[int]) -> tuple[int, ...]:
    return tuple(sorted(values))


def _number(token: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(token.upper()) if not token.isdigit() else int(token)
    if value is None:
        allowed = f"a number {low}-{high}"
        if names:
            by_value = sorted(names, key=names.__getitem__)
            allowed += f" or a name {by_value[0]}-{by_value[-1]}"
        raise _FieldError(f"{token!r} is not {allowed}")
    if not low <= value <= high:
        raise _FieldError(f"{value} is out of range {low}-{high}")
    return value


def _parse_values(field: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """The values a numeric field (``*``, lists, ranges, steps, names) selects."""
    values: set[int] = set()
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise _FieldError(f"the step {step_text!r} must be a whole number above 0")
            step = int(step_text)
        if base == "*":
            sequence = list(range(low, high + 1))
        elif "-" in base:
            first_text, _, last_text = base.partition("-")
            first = _number(first_text, low, high, names)
            last = _number(last_text, low, high, names)
            if first <= last:
                sequence = list(range(first, last + 1))
            else:  # a range that wraps around, like FRI-MON or 22-2
                sequence = list(range(first, high + 1)) + list(range(low, last + 1))
        else:
            first = _number(base, low, high, names)
            # "5/15" is every 15 from 5 to the end of the range; a bare "5" is just 5.
            sequence = list(range(first, high + 1)) if slash else [first]
        values.update(sequence[::step])
    return values


def _parse_days_of_month(field: str) -> tuple[_DayOfMonth, ...]:
    items: list[_DayOfMonth] = []
    for item in field.split(","):
        upper = item.upper()
        if upper == "L":
            items.append(_DayOfMonth(last=True))
        elif upper == "LW":
            items.append(_DayOfMonth(last_weekday=True))
        elif upper.endswith("W"):
            day = _number(upper[:-1], 1, 31, {})
            items.append(_DayOfMonth(nearest_weekday_to=day))
        else:
            items.append(_DayOfMonth(days=frozenset(_parse_values(item, 1, 31, {}))))
    return tuple(items)


def _parse_days_of_week(field: str) -> tuple[_DayOfWeek, ...]:
    items: list[_DayOfWeek] = []
    for item in field.split(","):
        upper = item.upper()
        if upper == "L":
            items.append(_DayOfWeek(weekdays=frozenset({7})))
        elif upper.endswith("L"):
            items.append(_DayOfWeek(last_of_month=_number(upper[:-1], 1, 7, _WEEKDAYS)))
        elif "#" in upper:
            weekday_text, _, nth_text = upper.partition("#")
            weekday = _number(weekday_text, 1, 7, _WEEKDAYS)
            if not nth_text.isdigit() or not 1 <= int(nth_text) <= 5:
                raise _FieldError(f"in {item!r} the week after '#' must be 1-5")
            items.append(_DayOfWeek(nth=(weekday, int(nth_text))))
        else:
            items.append(_DayOfWeek(weekdays=frozenset(_parse_values(item, 1, 7, _WEEKDAYS))))
    return tuple(items)
