"""Schedules: the firing loop on a clock the tests move (one node, several nodes, downtime),
the EventBridge Scheduler API through boto3, the CLI, and schedules running functions.

Expressions and their next ticks are tested in ``test_cron.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from botocore.exceptions import ClientError
from conftest import ROLE, StoreFactory, boto_client

from lambdalet.errors import ConflictException, ScheduleExpressionError
from lambdalet.store.base import Store
from lambdalet.store.sqlite import SqliteStore
from lambdalet.testing import FakeClock, ServerThread, make_zip
from lambdalet.triggers.cron import parse_timezone
from lambdalet.triggers.models import Schedule
from lambdalet.triggers.schedules import Scheduler

T = TypeVar("T")

MINUTE = 60_000
T0 = 1_893_456_000_000  # 2030-01-01T00:00:00Z, a Tuesday
ACCOUNT = "000000000000"
REGION = "us-east-1"
TARGET = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ticker"
SCHEDULE_ARN = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/"
LAMBDALET = Path(sys.executable).parent / "lambdalet"


# -- the loop, on a clock the tests move --------------------------------------------------------


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class Enqueued:
    """Stands in for Node.enqueue: keeps what the scheduler enqueued."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, Any]] = []
        self.fail_next = 0

    async def __call__(
        self, function_name: str, qualifier: str | None, payload: bytes, request_id: str
    ) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("the queue is unavailable")
        self.events.append((function_name, qualifier, json.loads(payload)))

    async def reach(self, count: int) -> None:
        """Wait (bounded) until ``count`` events were enqueued."""
        await eventually(lambda: len(self.events) >= count, f"{count} events")

    def times(self) -> list[str]:
        return [event["time"] for _, _, event in self.events]


def new_schedule(clock: FakeClock, name: str, expression: str, **fields: Any) -> Schedule:
    return Schedule(
        name=name,
        expression=expression,
        target_arn=fields.pop("target_arn", TARGET),
        role_arn=ROLE,
        created_ms=clock.now_ms(),
        last_modified_ms=clock.now_ms(),
        revision_id=str(uuid.uuid4()),
        **fields,
    )


def scheduler_on(store: Store, clock: FakeClock, enqueued: Enqueued) -> Scheduler:
    return Scheduler(store, enqueued, region=REGION, account_id=ACCOUNT, clock=clock)


def stamp(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for work that runs on the event loop, not for time to pass."""
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def advance_until(clock: FakeClock, predicate: Callable[[], bool], what: str) -> None:
    """Move the clock a second at a time until ``predicate`` holds (bounded)."""
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        clock.advance(1000)
        await asyncio.sleep(0.01)


def test_each_tick_fires_once(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock, enqueued = make_store(), FakeClock(T0), Enqueued()
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        await scheduler.create(new_schedule(clock, "five", "rate(5 minutes)"))
        assert await scheduler.fire_due() == 1  # a new rate fires at once
        assert await scheduler.fire_due() == 0
        clock.advance(5 * MINUTE - 1)
        assert await scheduler.fire_due() == 0  # never early
        clock.advance(1)
        assert await scheduler.fire_due() == 1
        assert await scheduler.fire_due() == 0
        assert enqueued.times() == [stamp(T0), stamp(T0 + 5 * MINUTE)]
        function_name, qualifier, event = enqueued.events[0]
        assert (function_name, qualifier) == ("ticker", None)
        assert event["source"] == "aws.scheduler"
        assert event["detail-type"] == "Scheduled Event"
        assert event["detail"] == "{}"  # a string, as EventBridge Scheduler sends it
        assert event["resources"] == [SCHEDULE_ARN + "five"]
        assert (event["account"], event["region"], event["version"]) == (ACCOUNT, REGION, "0")
        assert event["id"] != enqueued.events[1][2]["id"]
        await store.close()

    run(scenario())


def test_input_is_sent_verbatim_to_the_qualified_target(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock, enqueued = make_store(), FakeClock(T0), Enqueued()
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        await scheduler.create(
            new_schedule(
                clock,
                "with-input",
                "cron(0/10 * * * ? *)",
                input='{"job": "report"}',
                target_arn=TARGET + ":live",
            )
        )
        assert await scheduler.fire_due() == 1  # 00:00 is a tick of */10
        assert enqueued.events == [("ticker", "live", {"job": "report"})]
        await store.close()

    run(scenario())


def test_missed_ticks_fire_once_after_downtime(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, enqueued = FakeClock(T0), Enqueued()
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        await scheduler.create(new_schedule(clock, "minutely", "rate(1 minute)"))
        assert await scheduler.fire_due() == 1
        await store.close()

        clock.advance(10 * MINUTE + 30_000)  # the node is down for ten ticks and a half

        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        assert await scheduler.fire_due() == 1  # once, not ten times
        assert await scheduler.fire_due() == 0
        # Stamped with the first missed tick; the next one is on the grid after now.
        assert enqueued.times() == [stamp(T0), stamp(T0 + MINUTE)]
        assert (await scheduler.get("default", "minutely")).next_fire_ms == T0 + 11 * MINUTE
        clock.advance(30_000)
        assert await scheduler.fire_due() == 1
        assert enqueued.times()[-1] == stamp(T0 + 11 * MINUTE)
        await store.close()

    run(scenario())


def test_two_schedulers_on_one_sqlite_file_fire_each_tick_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, enqueued = FakeClock(T0), Enqueued()
        first, second = SqliteStore(tmp_path / "shared.db"), SqliteStore(tmp_path / "shared.db")
        await first.open()
        await second.open()
        node_a = scheduler_on(first, clock, enqueued)
        node_b = scheduler_on(second, clock, enqueued)
        names = [f"s{i}" for i in range(8)]
        for name in names:
            await node_a.create(new_schedule(clock, name, "rate(1 minute)"))
        for tick in range(5):
            fired = await asyncio.gather(node_a.fire_due(), node_b.fire_due(), node_a.fire_due())
            assert sum(fired) == len(names), f"tick {tick}: {fired}"
            clock.advance(MINUTE)
        fired_ticks = [(event["resources"][0], event["time"]) for _, _, event in enqueued.events]
        assert len(fired_ticks) == len(set(fired_ticks)) == 5 * len(names)
        await first.close()
        await second.close()

    run(scenario())


def test_two_running_loops_fire_each_tick_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, enqueued = FakeClock(T0), Enqueued()
        stores = [SqliteStore(tmp_path / "shared.db"), SqliteStore(tmp_path / "shared.db")]
        for store in stores:
            await store.open()
        loops = [scheduler_on(store, clock, enqueued) for store in stores]
        for loop in loops:
            await loop.start()
        await loops[0].create(new_schedule(clock, "a", "rate(1 minute)"))
        await loops[1].create(new_schedule(clock, "b", "cron(* * * * ? *)"))
        expected = 0
        for minute in range(5):
            if minute:
                clock.advance(MINUTE)
            expected += 2  # both schedules tick every minute, from T0
            await enqueued.reach(expected)
        for loop in loops:
            await loop.stop()
        fired_ticks = [(event["resources"][0], event["time"]) for _, _, event in enqueued.events]
        assert len(fired_ticks) == len(set(fired_ticks)) == expected
        for store in stores:
            await store.close()

    run(scenario())


def test_loop_wakes_for_a_new_schedule_and_follows_the_clock(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock, enqueued = make_store(), FakeClock(T0), Enqueued()
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        await scheduler.start()
        await scheduler.create(new_schedule(clock, "hourly", "cron(0 * * * ? *)"))
        await eventually(lambda: len(enqueued.events) == 1, "the first tick")
        clock.advance(59 * MINUTE)
        await scheduler.create(new_schedule(clock, "late", "at(2030-01-01T00:59:30)"))
        clock.advance(MINUTE)
        await eventually(lambda: len(enqueued.events) == 3, "three events")
        await scheduler.stop()
        assert sorted(enqueued.times()) == [
            stamp(T0),
            stamp(T0 + 59 * MINUTE + 30_000),
            stamp(T0 + 60 * MINUTE),
        ]
        await store.close()

    run(scenario())


def test_one_time_schedule_and_action_after_completion(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock, enqueued = make_store(), FakeClock(T0), Enqueued()
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        at = "at(2030-01-01T01:00:00)"
        await scheduler.create(new_schedule(clock, "keep", at))
        await scheduler.create(new_schedule(clock, "drop", at, action_after_completion="DELETE"))
        clock.advance(60 * MINUTE)
        assert await scheduler.fire_due() == 2
        clock.advance(24 * 60 * MINUTE)
        assert await scheduler.fire_due() == 0
        kept = await scheduler.get("default", "keep")
        assert kept.next_fire_ms is None
        assert [s.name for s in await scheduler.list_schedules("default")] == ["keep"]
        await store.close()

    run(scenario())


def test_disabled_schedule_does_not_fire_until_enabled(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock, enqueued = make_store(), FakeClock(T0), Enqueued()
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        disabled = await scheduler.create(
            new_schedule(clock, "paused", "cron(0/5 * * * ? *)", state="DISABLED")
        )
        clock.advance(30 * MINUTE)
        assert await scheduler.fire_due() == 0
        await scheduler.update(
            replace(disabled, state="ENABLED", revision_id=str(uuid.uuid4()), next_fire_ms=None)
        )
        assert await scheduler.fire_due() == 1  # 00:30, from now on: nothing from before
        assert enqueued.times() == [stamp(T0 + 30 * MINUTE)]
        await store.close()

    run(scenario())


def test_a_tick_read_before_an_update_is_not_claimed(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock = make_store(), FakeClock(T0)
        await store.open()
        scheduler = scheduler_on(store, clock, Enqueued())
        created = await scheduler.create(new_schedule(clock, "s", "rate(1 hour)"))
        (read,) = await store.due_schedules(T0, 10)
        await scheduler.update(replace(created, input="{}", revision_id=str(uuid.uuid4())))
        assert not await store.claim_schedule_tick(read, T0 + 60 * MINUTE)
        (fresh,) = await store.due_schedules(T0, 10)
        assert await store.claim_schedule_tick(fresh, T0 + 60 * MINUTE)
        assert not await store.claim_schedule_tick(fresh, T0 + 60 * MINUTE)  # already moved
        await store.close()

    run(scenario())


def test_a_failed_enqueue_gives_the_tick_back(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock, enqueued = make_store(), FakeClock(T0), Enqueued()
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        await scheduler.create(new_schedule(clock, "s", "rate(1 hour)"))
        enqueued.fail_next = 1
        with pytest.raises(OSError):
            await scheduler.fire_due()
        assert (await scheduler.get("default", "s")).next_fire_ms == T0
        assert await scheduler.fire_due() == 1
        assert enqueued.times() == [stamp(T0)]
        await store.close()

    run(scenario())


def test_the_loop_backs_off_and_goes_on_after_a_failure(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock, enqueued = make_store(), FakeClock(T0), Enqueued()
        await store.open()
        scheduler = scheduler_on(store, clock, enqueued)
        enqueued.fail_next = 1
        await scheduler.start()
        await scheduler.create(new_schedule(clock, "s", "rate(1 hour)"))
        await eventually(lambda: enqueued.fail_next == 0, "the failed enqueue")
        await advance_until(clock, lambda: len(enqueued.events) == 1, "the retried tick")
        await scheduler.stop()
        assert enqueued.times() == [stamp(T0)]
        await store.close()

    run(scenario())


def test_a_schedule_that_can_no_longer_fire_is_stopped(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock, enqueued = make_store(), FakeClock(T0), Enqueued()
        await store.open()
        await scheduler_on(store, clock, enqueued).create(new_schedule(clock, "s", "rate(1 hour)"))
        # The node now runs another region: the stored target is no function of it any more.
        moved = Scheduler(store, enqueued, region="eu-west-1", account_id=ACCOUNT, clock=clock)
        assert await moved.fire_due() == 0
        assert (await moved.get("default", "s")).next_fire_ms is None
        assert enqueued.events == []
        await store.close()

    run(scenario())


def test_put_errors(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store, clock = make_store(), FakeClock(T0)
        await store.open()
        scheduler = scheduler_on(store, clock, Enqueued())
        await scheduler.create(new_schedule(clock, "s", "rate(1 hour)"))
        with pytest.raises(ConflictException):
            await scheduler.create(new_schedule(clock, "s", "rate(1 hour)"))
        with pytest.raises(ScheduleExpressionError, match="is in the past"):
            await scheduler.create(new_schedule(clock, "old", "at(2029-12-31T23:59:00)"))
        await store.close()

    run(scenario())


# -- the EventBridge Scheduler API through boto3 ----------------------------------------------


@pytest.fixture(scope="module")
def scheduler_client(server: ServerThread) -> Iterator[Any]:
    client = boto_client(server.url, "scheduler")
    yield client
    client.close()


@pytest.fixture
def schedule_name(scheduler_client: Any) -> Iterator[str]:
    """A fresh schedule name; the schedule is deleted after the test if it exists."""
    name = f"sched-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(scheduler_client.exceptions.ResourceNotFoundException):
        scheduler_client.delete_schedule(Name=name)


# A tick far in the future: schedules made through the API on the shared node never fire.
NEVER = "cron(0 12 1 1 ? 2199)"


def create_args(name: str, **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": NEVER,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": TARGET, "RoleArn": ROLE},
    }
    args.update(changes)
    return args


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_api_create_get_update_list_delete(scheduler_client: Any, schedule_name: str) -> None:
    start, end = datetime(2031, 1, 1, tzinfo=UTC), datetime(2032, 1, 1, tzinfo=UTC)
    created = scheduler_client.create_schedule(
        **create_args(
            schedule_name,
            ScheduleExpression="cron(0 9 ? * MON-FRI *)",
            ScheduleExpressionTimezone="Europe/Paris",
            StartDate=start,
            EndDate=end,
            Description="weekday mornings",
            Target={
                "Arn": TARGET + ":live",
                "RoleArn": ROLE,
                "Input": '{"job": "report"}',
                "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
            },
        )
    )
    assert created["ScheduleArn"] == SCHEDULE_ARN + schedule_name

    got = scheduler_client.get_schedule(Name=schedule_name)
    assert got["Arn"] == SCHEDULE_ARN + schedule_name
    assert (got["Name"], got["GroupName"], got["State"]) == (schedule_name, "default", "ENABLED")
    assert got["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert got["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert (got["StartDate"], got["EndDate"]) == (start, end)
    assert got["Description"] == "weekday mornings"
    assert got["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert got["ActionAfterCompletion"] == "NONE"
    assert got["Target"] == {
        "Arn": TARGET + ":live",
        "RoleArn": ROLE,
        "Input": '{"job": "report"}',
        "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
    }

    scheduler_client.update_schedule(
        **create_args(schedule_name, ScheduleExpression="rate(7 days)", State="DISABLED")
    )
    updated = scheduler_client.get_schedule(Name=schedule_name)
    assert (updated["ScheduleExpression"], updated["State"]) == ("rate(7 days)", "DISABLED")
    assert updated["CreationDate"] == got["CreationDate"]
    assert updated["LastModificationDate"] >= got["LastModificationDate"]
    # An update replaces the whole schedule: what it leaves out is back to its default.
    assert "StartDate" not in updated and "Input" not in updated["Target"]
    assert updated["ScheduleExpressionTimezone"] == "UTC"

    listed = scheduler_client.list_schedules(NamePrefix=schedule_name)["Schedules"]
    assert [(s["Name"], s["State"], s["Target"]) for s in listed] == [
        (schedule_name, "DISABLED", {"Arn": TARGET})
    ]
    assert listed[0]["Arn"] == SCHEDULE_ARN + schedule_name
    assert (
        scheduler_client.list_schedules(NamePrefix=schedule_name, State="ENABLED")["Schedules"]
        == []
    )

    scheduler_client.delete_schedule(Name=schedule_name)
    with pytest.raises(scheduler_client.exceptions.ResourceNotFoundException):
        scheduler_client.get_schedule(Name=schedule_name)


def test_api_list_pages(scheduler_client: Any) -> None:
    prefix = f"page-{uuid.uuid4().hex[:8]}-"
    names = [prefix + letter for letter in "abc"]
    for name in names:
        scheduler_client.create_schedule(**create_args(name))
    try:
        first = scheduler_client.list_schedules(NamePrefix=prefix, MaxResults=2)
        assert [s["Name"] for s in first["Schedules"]] == names[:2]
        second = scheduler_client.list_schedules(
            NamePrefix=prefix, MaxResults=2, NextToken=first["NextToken"]
        )
        assert [s["Name"] for s in second["Schedules"]] == names[2:]
        assert "NextToken" not in second
        paginator = scheduler_client.get_paginator("list_schedules")
        pages = paginator.paginate(NamePrefix=prefix, PaginationConfig={"PageSize": 1})
        assert [s["Name"] for page in pages for s in page["Schedules"]] == names
    finally:
        for name in names:
            scheduler_client.delete_schedule(Name=name)


def test_api_conflict(scheduler_client: Any, schedule_name: str) -> None:
    scheduler_client.create_schedule(**create_args(schedule_name))
    with pytest.raises(scheduler_client.exceptions.ConflictException) as raised:
        scheduler_client.create_schedule(**create_args(schedule_name))
    assert error_of(raised) == (
        "ConflictException",
        409,
        f"Schedule {schedule_name} already exists in group default.",
    )


def test_api_missing_schedule(scheduler_client: Any, schedule_name: str) -> None:
    expected = ("ResourceNotFoundException", 404, f"Schedule {schedule_name} does not exist.")
    calls: list[Callable[[], Any]] = [
        lambda: scheduler_client.get_schedule(Name=schedule_name),
        lambda: scheduler_client.delete_schedule(Name=schedule_name),
        lambda: scheduler_client.update_schedule(**create_args(schedule_name)),
    ]
    for call in calls:
        with pytest.raises(scheduler_client.exceptions.ResourceNotFoundException) as raised:
            call()
        assert error_of(raised) == expected


def test_api_other_groups_do_not_exist(scheduler_client: Any, schedule_name: str) -> None:
    with pytest.raises(scheduler_client.exceptions.ResourceNotFoundException) as raised:
        scheduler_client.create_schedule(**create_args(schedule_name, GroupName="team"))
    assert error_of(raised) == (
        "ResourceNotFoundException",
        404,
        "Schedule group team does not exist. lambdalet has the default group only.",
    )
    with pytest.raises(scheduler_client.exceptions.ResourceNotFoundException):
        scheduler_client.list_schedules(GroupName="team")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}},
            "FlexibleTimeWindow Mode FLEXIBLE is not supported: lambdalet fires every schedule"
            ' at its exact time; use {"Mode": "OFF"}',
        ),
        (
            {"ScheduleExpression": "rate(1 minutes)"},
            "Invalid Schedule Expression rate(1 minutes): with the value 1 the unit is 'minute'"
            " (singular for 1, plural otherwise): rate(1 minute)",
        ),
        (
            {"ScheduleExpression": "cron(0 12 * * * *)"},
            "Invalid Schedule Expression cron(0 12 * * * *): exactly one of day-of-month and"
            " day-of-week must be '?' (for example cron(0 12 * * ? *) or cron(0 12 ? * MON-FRI *))",
        ),
        (
            {"ScheduleExpression": "at(2020-01-01T00:00:00)"},
            "The schedule expression at(2020-01-01T00:00:00) is in the past (UTC): a one-time"
            " schedule must be in the future",
        ),
        (
            {"ScheduleExpressionTimezone": "Mars/Olympus_Mons"},
            "Invalid ScheduleExpressionTimezone Mars/Olympus_Mons: use an IANA time zone name"
            " such as UTC, America/New_York or Europe/Paris",
        ),
        (
            {"Target": {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs", "RoleArn": ROLE}},
            f"The target arn:aws:sqs:{REGION}:{ACCOUNT}:jobs is not supported: lambdalet"
            " schedules invoke functions only; give a function ARN,"
            f" arn:aws:lambda:{REGION}:{ACCOUNT}:function:NAME[:VERSION_OR_ALIAS]",
        ),
        (
            {
                "Target": {
                    "Arn": "arn:aws:lambda:eu-west-1:123456789012:function:other",
                    "RoleArn": ROLE,
                }
            },
            "The target arn:aws:lambda:eu-west-1:123456789012:function:other is not a function"
            f" of this lambdalet, which runs the functions of account {ACCOUNT} in region {REGION}",
        ),
        (
            {"Target": {"Arn": TARGET, "RoleArn": ROLE, "Input": "not json"}},
            "Target.Input must be well-formed JSON when the target is a Lambda function",
        ),
        (
            {
                "Target": {
                    "Arn": TARGET,
                    "RoleArn": ROLE,
                    "DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"},
                }
            },
            "Target.DeadLetterConfig is not supported: lambdalet has no SQS dead-letter queue"
            " for schedules; give the function an OnFailure destination instead"
            " (PutFunctionEventInvokeConfig)",
        ),
        (
            {"Target": {"Arn": TARGET, "RoleArn": ROLE, "SqsParameters": {"MessageGroupId": "g"}}},
            "Target.SqsParameters is not supported: the target of a lambdalet schedule is a"
            " function, which takes Target.Input only",
        ),
        (
            {
                "StartDate": datetime(2031, 1, 2, tzinfo=UTC),
                "EndDate": datetime(2031, 1, 1, tzinfo=UTC),
            },
            "The EndDate you specify must be later than the StartDate.",
        ),
        (
            {"ActionAfterCompletion": "ARCHIVE"},
            "1 validation error detected: Value 'ARCHIVE' at 'actionAfterCompletion' failed to"
            " satisfy constraint: Member must satisfy enum value set: [NONE, DELETE]",
        ),
    ],
)
def test_api_validation_errors(
    server: ServerThread, schedule_name: str, changes: dict[str, Any], message: str
) -> None:
    client = boto_client(server.url, "scheduler", parameter_validation=False)
    try:
        with pytest.raises(client.exceptions.ValidationException) as raised:
            client.create_schedule(**create_args(schedule_name, **changes))
        assert error_of(raised) == ("ValidationException", 400, message)
    finally:
        client.close()


# -- a schedule running a function, on a node whose clock the test moves -----------------------

# Appends the event it gets to the file named by $EVENTS, one JSON document a line.
RECORD_EVENT = """
import json, os
def handler(event, context):
    with open(os.environ["EVENTS"], "a") as out:
        out.write(json.dumps(event) + "\\n")
"""


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(scope="module")
def clocked_server(
    tmp_path_factory: pytest.TempPathFactory, clock: FakeClock
) -> Iterator[ServerThread]:
    """A node whose schedules follow ``clock``."""
    with ServerThread(data_dir=tmp_path_factory.mktemp("schedules"), clock=clock) as running:
        yield running


def recorder_function(server: ServerThread, name: str, events: Path) -> str:
    client = boto_client(server.url)
    try:
        arn: str = client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": RECORD_EVENT})},
            Environment={"Variables": {"EVENTS": str(events)}},
        )["FunctionArn"]
    finally:
        client.close()
    return arn


def events_in(path: Path, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events a recorder function wrote (bounded wait: functions run in
    real time, only the schedules' clock is fake)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines[:count]]
        time.sleep(0.02)
    raise AssertionError(f"{path} did not get {count} events in time")


def test_rate_schedule_runs_the_function_with_the_scheduled_event(
    clocked_server: ServerThread, clock: FakeClock, tmp_path: Path
) -> None:
    events_path = tmp_path / "events.jsonl"
    function_arn = recorder_function(clocked_server, "scheduled-recorder", events_path)
    scheduler = boto_client(clocked_server.url, "scheduler")
    try:
        created_at = clock.now_ms()
        schedule_arn = scheduler.create_schedule(
            Name="every-minute",
            ScheduleExpression="rate(1 minute)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": function_arn, "RoleArn": ROLE},
        )["ScheduleArn"]
        events_in(events_path, 1)  # a rate fires at once
        clock.advance(MINUTE)
        events = [EventBridgeEvent(event) for event in events_in(events_path, 2)]
        scheduler.delete_schedule(Name="every-minute")
    finally:
        scheduler.close()
    assert [event.time for event in events] == [stamp(created_at), stamp(created_at + MINUTE)]
    for event in events:
        assert event.source == "aws.scheduler"
        assert event.detail_type == "Scheduled Event"
        assert event.resources == [schedule_arn]
        assert (event.account, event.region, event.version) == (ACCOUNT, REGION, "0")
        assert event.raw_event["detail"] == "{}"  # AWS Scheduler sends a string here
        uuid.UUID(event.get_id)


def test_one_time_schedule_with_input_runs_once_then_deletes_itself(
    clocked_server: ServerThread, clock: FakeClock, tmp_path: Path
) -> None:
    events_path = tmp_path / "events.jsonl"
    function_arn = recorder_function(clocked_server, "one-time-recorder", events_path)
    scheduler = boto_client(clocked_server.url, "scheduler")
    try:
        in_an_hour = datetime.fromtimestamp(clock.now_ms() / 1000 + 3600, UTC)
        tokyo = in_an_hour.astimezone(parse_timezone("Asia/Tokyo"))
        scheduler.create_schedule(
            Name="once",
            ScheduleExpression=f"at({tokyo:%Y-%m-%dT%H:%M:%S})",
            ScheduleExpressionTimezone="Asia/Tokyo",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": function_arn, "RoleArn": ROLE, "Input": '{"once": true}'},
            ActionAfterCompletion="DELETE",
        )
        clock.advance(3600 * 1000)
        assert events_in(events_path, 1) == [{"once": True}]
        deadline = time.monotonic() + 30
        while scheduler.list_schedules(NamePrefix="once")["Schedules"]:
            assert time.monotonic() < deadline, "the completed schedule was not deleted"
            time.sleep(0.02)
    finally:
        scheduler.close()


# -- the CLI ----------------------------------------------------------------------------------


def lambdalet(server: ServerThread, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LAMBDALET), *args, "--endpoint-url", server.url],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "LAMBDALET_ENDPOINT_URL"},
            "NO_COLOR": "1",
            "COLUMNS": "200",
        },
        timeout=120,
        check=False,
    )


def test_cli_schedule_add_ls_rm(
    clocked_server: ServerThread, clock: FakeClock, tmp_path: Path
) -> None:
    events_path = tmp_path / "events.jsonl"
    recorder_function(clocked_server, "cli-recorder", events_path)

    added = lambdalet(
        clocked_server, "schedule", "add", "cli-recorder", "rate(1 minute)", "--input", '{"n": 1}'
    )
    assert added.returncode == 0, added.stderr
    assert SCHEDULE_ARN + "cli-recorder" in added.stdout
    assert events_in(events_path, 1) == [{"n": 1}]

    listed = lambdalet(clocked_server, "schedule", "ls")
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if "cli-recorder" in line]
    assert "ENABLED" in row and "rate(1 minute)" in row and '{"n": 1}' in row

    again = lambdalet(clocked_server, "schedule", "add", "cli-recorder", "rate(1 minute)")
    assert again.returncode == 1
    assert "ConflictException: Schedule cli-recorder already exists" in again.stderr

    removed = lambdalet(clocked_server, "schedule", "rm", "cli-recorder")
    assert removed.returncode == 0, removed.stderr
    assert "deleted schedule cli-recorder" in removed.stdout
    assert "cli-recorder" not in lambdalet(clocked_server, "schedule", "ls").stdout


def test_cli_schedule_errors(clocked_server: ServerThread) -> None:
    missing = lambdalet(clocked_server, "schedule", "add", "no-such-function", "rate(1 hour)")
    assert missing.returncode == 1
    assert "ResourceNotFoundException" in missing.stderr
    assert "no-such-function" in missing.stderr

    recorder_function(clocked_server, "cli-bad-expression", Path("/dev/null"))
    bad = lambdalet(clocked_server, "schedule", "add", "cli-bad-expression", "every hour")
    assert bad.returncode == 1
    assert "ValidationException: Invalid Schedule Expression every hour" in bad.stderr

    gone = lambdalet(clocked_server, "schedule", "rm", "no-such-schedule")
    assert gone.returncode == 1
    assert "ResourceNotFoundException: Schedule no-such-schedule does not exist." in gone.stderr
