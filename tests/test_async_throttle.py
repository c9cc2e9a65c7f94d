"""Throttled asynchronous events wait and retry with AWS's backoff: 1 s, doubling up to 5
minutes, until MaximumEventAgeInSeconds; a throttled try is not an invocation.

The waits are read from the due time the store holds (and from what the node returns), so
the tests sleep through the first two waits only (1 s and 2 s), never through the long ones.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from lambdalet.models import AsyncEvent, EventRetry, now_ms
from lambdalet.testing import Deploy, ServerThread, wait_for_file

# The wait is counted from the throttled try, which comes a little after the event is due.
SLACK_MS = 5000

HANDLER = """
import pathlib
def handler(event, context):
    pathlib.Path(event["out"]).write_text(context.aws_request_id)
    return {"ran": True}
"""

# A destination: writes the invocation record it receives to a file named by the record.
RECORDER = """
import json, pathlib
def handler(event, context):
    pathlib.Path(event["requestPayload"]["record"]).write_text(json.dumps(event))
"""


def queued_event(db_path: Path, request_id: str) -> dict[str, Any] | None:
    """The async queue's row of a request, read without writing; None once it is gone."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute(
            "SELECT state, attempts, throttles, accepted_unix_ms, not_before_ms"
            " FROM async_events WHERE request_id = ?",
            (request_id,),
        ).fetchone()
    finally:
        db.close()
    return dict(row) if row is not None else None


def wait_for_throttles(db_path: Path, request_id: str, throttles: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = queued_event(db_path, request_id)
        assert row is not None, "the throttled event left the queue"
        if row["throttles"] >= throttles:
            return row
        time.sleep(0.02)
    raise AssertionError(f"the event was not throttled {throttles} times: {row}")


def test_throttled_event_backs_off_then_runs_once_allowed(
    deploy: Deploy, lambda_client: Any, server: ServerThread, tmp_path: Path
) -> None:
    name = deploy(HANDLER)["FunctionName"]
    recorder_arn = deploy(RECORDER)["FunctionArn"]
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": recorder_arn}}
    )
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    out, record_path = tmp_path / "ran", tmp_path / "record.json"
    response = lambda_client.invoke(
        FunctionName=name,
        InvocationType="Event",
        Payload=json.dumps({"out": str(out), "record": str(record_path)}),
    )
    assert response["StatusCode"] == 202
    request_id = response["ResponseMetadata"]["RequestId"]
    db_path = server.settings.data_dir / "lambdalet.db"

    first = wait_for_throttles(db_path, request_id, 1)
    assert first["attempts"] == 0  # a throttled try gives its attempt back
    assert 1000 <= first["not_before_ms"] - first["accepted_unix_ms"] < 1000 + SLACK_MS
    second = wait_for_throttles(db_path, request_id, 2)
    assert second["attempts"] == 0
    assert 2000 <= second["not_before_ms"] - first["not_before_ms"] < 2000 + SLACK_MS
    assert not out.exists()

    lambda_client.delete_function_concurrency(FunctionName=name)
    assert wait_for_file(out) == request_id
    record = json.loads(wait_for_file(record_path))
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1  # throttles are not counted
    deadline = time.monotonic() + 30
    while queued_event(db_path, request_id) is not None:
        assert time.monotonic() < deadline, "the event that ran was not removed from the queue"
        time.sleep(0.02)


def test_throttle_backoff_doubles_up_to_five_minutes_within_the_event_age(
    deploy: Deploy, lambda_client: Any, server: ServerThread
) -> None:
    name = deploy("def handler(event, context):\n    return 1\n")["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=3600)
    max_age_ms = 3600 * 1000

    def throttled_try(throttles: int, age_ms: int) -> tuple[int, int, int, EventRetry | None]:
        accepted_ms = now_ms() - age_ms
        event = AsyncEvent(7, name, "$LATEST", b"{}", "request", accepted_ms, 1, throttles)
        before_ms = now_ms()
        retry = server.call(server.node.run_async_event(event))
        return accepted_ms, before_ms, now_ms(), retry

    for throttles, wait_ms in [
        (0, 1000),
        (1, 2000),
        (2, 4000),
        (5, 32_000),
        (8, 256_000),
        (9, 300_000),
        (40, 300_000),
    ]:
        _, before_ms, after_ms, retry = throttled_try(throttles, age_ms=0)
        assert retry is not None and retry.throttled and retry.event_id == 7, throttles
        assert before_ms + wait_ms <= retry.not_before_ms <= after_ms + wait_ms, throttles

    # The wait never runs past the event's age limit...
    accepted_ms, _, _, retry = throttled_try(8, age_ms=max_age_ms - 10_000)
    assert retry is not None and retry.throttled
    assert retry.not_before_ms == accepted_ms + max_age_ms
    # ...and past it the event is not tried again.
    assert throttled_try(8, age_ms=max_age_ms + 1)[3] is None
