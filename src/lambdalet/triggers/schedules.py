"""Schedules as event sources: a loop that fires each due tick into the async queue once.

Every schedule keeps its next tick (``next_fire_ms``) in the store. Each pass the loop reads
the due schedules, computes each one's following tick, and claims the due tick by moving
``next_fire_ms`` from the value it read to the following one in one conditional update; only
the node whose update changed the row enqueues the event (through ``Node.enqueue``, so the
function runs as an asynchronous invocation with its retries and destinations). Several nodes
sharing a store therefore fire every tick exactly once. If the enqueue fails, the claim is
given back so the tick is tried again; a node that dies between the claim and the enqueue's
commit loses that one tick (at most once in that case, never twice).

Missed ticks: the following tick is always the first one after *now*. After downtime (or a
pass that came later than a period), the ticks missed are fired once, as one event stamped
with the time the earliest of them was due, and the schedule goes on from the present.
A tick is never fired early, and a late one is never fired more than once.

The event a function receives is the schedule's ``Input`` verbatim or, without one, what
EventBridge Scheduler sends (not the classic EventBridge rule's event): ``source`` is
``aws.scheduler`` (rules send ``aws.events``), ``resources`` holds the schedule's ARN, and
``detail`` is the *string* ``"{}"``, as AWS Scheduler really sends it (rules send an object).

Time comes from an injectable :class:`Clock`, so tests move it forward instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from lambdalet.errors import ResourceNotFoundException, ScheduleExpressionError
from lambdalet.models import now_ms
from lambdalet.store.base import Store
from lambdalet.triggers.cron import At, next_fire_ms, parse_expression, parse_timezone
from lambdalet.triggers.models import Schedule

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 1_000  # how often to look for schedules that other nodes added
BATCH = 100
BACKOFF_MIN_MS = 500
BACKOFF_MAX_MS = 30_000
STOP_TIMEOUT_S = 10.0

_FUNCTION_ARN = re.compile(
    r"arn:aws[a-z-]*:lambda:([a-z0-9-]+):(\d{12}):function:([a-zA-Z0-9_-]{1,64})"
    r"(?::(\$LATEST|[a-zA-Z0-9_-]{1,128}))?"
)

# enqueue(function name, qualifier, payload, request id): Node.enqueue
Enqueue = Callable[[str, str | None, bytes, str], Awaitable[None]]


class Clock(Protocol):
    """Where the scheduler gets the time from, and how it waits."""

    def now_ms(self) -> int:
        """Wall-clock time in Unix milliseconds."""

    async def sleep_ms(self, duration_ms: int) -> None:
        """Return after ``duration_ms`` of this clock's time."""


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        """Wall-clock time in Unix milliseconds."""
        return now_ms()

    async def sleep_ms(self, duration_ms: int) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(duration_ms / 1000)


def function_target(arn: str, region: str, account_id: str) -> tuple[str, str | None]:
    """(name, qualifier) of a target ARN that names a function of this node; ValueError, with
    a message that says what is accepted, for anything else."""
    match = _FUNCTION_ARN.fullmatch(arn)
    if match is None:
        raise ValueError(
            f"The target {arn} is not supported: lambdalet schedules invoke functions only;"
            f" give a function ARN, arn:aws:lambda:{region}:{account_id}:function:NAME"
            "[:VERSION_OR_ALIAS]"
        )
    if (match.group(1), match.group(2)) != (region, account_id):
        raise ValueError(
            f"The target {arn} is not a function of this lambdalet, which runs the functions of"
            f" account {account_id} in region {region}"
        )
    return match.group(3), match.group(4)


def scheduled_event(
    schedule_arn: str, due_ms: int, region: str, account_id: str
) -> dict[str, object]:
    """The event EventBridge Scheduler sends a target when the schedule has no Input."""
    stamp = datetime.fromtimestamp(due_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": account_id,
        "time": stamp,
        "region": region,
        "resources": [schedule_arn],
        "detail": "{}",
    }


class Scheduler:
    """Keeps schedules and fires their ticks; the Python API the Scheduler HTTP API wraps."""

    def __init__(
        self,
        store: Store,
        enqueue: Enqueue,
        *,
        region: str,
        account_id: str,
        clock: Clock | None = None,
        poll_interval_ms: int = POLL_INTERVAL_MS,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.region = region
        self.account_id = account_id
        self._store = store
        self._enqueue = enqueue
        self._poll_interval_ms = poll_interval_ms
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def schedule_arn(self, group_name: str, name: str) -> str:
        """A schedule's ARN."""
        return f"arn:aws:scheduler:{self.region}:{self.account_id}:schedule/{group_name}/{name}"

    def plan(self, schedule: Schedule) -> Schedule:
        """``schedule`` with its first tick from now (None when disabled or nothing is left).

        ScheduleExpressionError if the expression or time zone is invalid, or a one-time
        schedule's time has passed.
        """
        expression = parse_expression(schedule.expression)
        zone = parse_timezone(schedule.timezone)
        now = self.clock.now_ms()
        if isinstance(expression, At) and next_fire_ms(expression, zone, now, anchor_ms=0) is None:
            raise ScheduleExpressionError(
                f"The schedule expression {schedule.expression} is in the past"
                f" ({schedule.timezone}): a one-time schedule must be in the future"
            )
        first: int | None = None
        if schedule.state == "ENABLED":
            first = next_fire_ms(
                expression,
                zone,
                now - 1,  # a tick due right now (a new rate's first) is the first
                anchor_ms=schedule.created_ms,
                start_ms=schedule.start_ms,
                end_ms=schedule.end_ms,
            )
        return replace(schedule, next_fire_ms=first)

    async def create(self, schedule: Schedule) -> Schedule:
        """Add a schedule; ConflictException if its name is taken."""
        planned = self.plan(schedule)
        await self._store.put_schedule(planned, create=True)
        self._wakeup.set()
        return planned

    async def update(self, schedule: Schedule) -> Schedule:
        """Replace a schedule (ticks start again from now); ResourceNotFoundException if gone."""
        planned = self.plan(schedule)
        await self._store.put_schedule(planned, create=False)
        self._wakeup.set()
        return planned

    async def get(self, group_name: str, name: str) -> Schedule:
        """A schedule; ResourceNotFoundException if there is none of that name."""
        schedule = await self._store.get_schedule(group_name, name)
        if schedule is None:
            raise ResourceNotFoundException(f"Schedule {name} does not exist.")
        return schedule

    async def delete(self, group_name: str, name: str) -> None:
        """Remove a schedule; ResourceNotFoundException if there is none of that name."""
        if await self._store.delete_schedule(group_name, name) is None:
            raise ResourceNotFoundException(f"Schedule {name} does not exist.")

    async def list_schedules(
        self,
        group_name: str,
        *,
        name_prefix: str | None = None,
        state: str | None = None,
        after_name: str | None = None,
        limit: int = 100,
    ) -> list[Schedule]:
        """A group's schedules by name."""
        return await self._store.list_schedules(group_name, name_prefix, state, after_name, limit)

    async def fire_due(self) -> int:
        """Fire every tick due now that no other node claims first; return how many fired."""
        fired = 0
        now = self.clock.now_ms()
        while True:
            due = await self._store.due_schedules(now, BATCH)
            for schedule in due:
                fired += await self._fire(schedule, now)
            if len(due) < BATCH:
                return fired

    async def _fire(self, schedule: Schedule, now: int) -> int:
        assert schedule.next_fire_ms is not None
        due_ms = schedule.next_fire_ms
        following: int | None = None
        try:
            function_name, qualifier = function_target(
                schedule.target_arn, self.region, self.account_id
            )
            expression = parse_expression(schedule.expression)
            following = next_fire_ms(
                expression,
                parse_timezone(schedule.timezone),
                now,
                anchor_ms=schedule.created_ms,
                start_ms=schedule.start_ms,
                end_ms=schedule.end_ms,
            )
        except (ValueError, ScheduleExpressionError) as error:
            # Checked when the schedule was put; a stored one that fails (settings changed
            # since) is stopped rather than retried every pass.
            log.error("schedule %s cannot fire and is stopped: %s", schedule.name, error)
            await self._store.claim_schedule_tick(schedule, None)
            return 0
        if not await self._store.claim_schedule_tick(schedule, following):
            return 0  # another node fired this tick, or the schedule changed meanwhile
        if schedule.input is not None:
            payload = schedule.input.encode()
        else:
            arn = self.schedule_arn(schedule.group_name, schedule.name)
            event = scheduled_event(arn, due_ms, self.region, self.account_id)
            payload = json.dumps(event).encode()
        request_id = str(uuid.uuid4())
        try:
            await self._enqueue(function_name, qualifier, payload, request_id)
        except BaseException:
            # Give the tick back so this node or another fires it on a later pass.
            claimed = replace(schedule, next_fire_ms=following)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.claim_schedule_tick(claimed, due_ms))
            raise
        log.info(
            "schedule %s fired %s (request %s)", schedule.name, schedule.target_arn, request_id
        )
        if following is None and schedule.action_after_completion == "DELETE":
            await self._store.delete_schedule(
                schedule.group_name, schedule.name, schedule.revision_id
            )
        return 1

    async def start(self) -> None:
        """Start firing schedules in the background."""
        self._stopping = False
        self._task = asyncio.create_task(self._fire_forever(), name="scheduler")

    async def stop(self) -> None:
        """Stop after the pass under way, so no claimed tick is left unfired."""
        if self._task is None:
            return
        self._stopping = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._task, STOP_TIMEOUT_S)
        except TimeoutError:
            log.error("the scheduler did not stop within %.0f s; cancelled it", STOP_TIMEOUT_S)
        self._task = None

    async def _fire_forever(self) -> None:
        backoff_ms = BACKOFF_MIN_MS
        while not self._stopping:
            try:
                await self.fire_due()
                wait_ms = await self._wait_ms()
                backoff_ms = BACKOFF_MIN_MS
            except Exception:
                log.exception("firing schedules failed; retrying in %d ms", backoff_ms)
                wait_ms = backoff_ms
                backoff_ms = min(backoff_ms * 2, BACKOFF_MAX_MS)
            if not self._stopping:
                await self._sleep(wait_ms)

    async def _wait_ms(self) -> int:
        """How long to wait for the next tick: never longer than the poll interval, since
        other nodes may add schedules to the store."""
        next_tick_ms = await self._store.next_schedule_tick_ms()
        if next_tick_ms is None:
            return self._poll_interval_ms
        return max(0, min(self._poll_interval_ms, next_tick_ms - self.clock.now_ms()))

    async def _sleep(self, duration_ms: int) -> None:
        """Wait ``duration_ms`` of the clock's time, or less if woken (a schedule was put)."""
        if duration_ms <= 0 or self._wakeup.is_set():
            self._wakeup.clear()
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep_ms(duration_ms))
        waker = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        self._wakeup.clear()
