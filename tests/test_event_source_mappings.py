"""Event source mappings from lambdalet's SQS queues to functions, through boto3's lambda and
sqs clients against a real node, with handlers that parse the event with Powertools."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from botocore.exceptions import ClientError
from conftest import ROLE, boto_client

from lambdalet.testing import Deploy, ServerThread, make_zip
from lambdalet.triggers.pollers import failed_message_ids, passes_filters

T = TypeVar("T")

REGION = "us-east-1"
ACCOUNT = "000000000000"

# Records what it read through Powertools' SQSEvent, one JSON line per message, in one write
# per batch; fails the messages whose body starts with "fail" (by the response or by raising,
# as FAIL_MODE says) and sleeps SLEEP_S first.
RECORDER = """
import json, os, time
from aws_lambda_powertools.utilities.data_classes import SQSEvent

def handler(event, context):
    started = time.time()
    time.sleep(float(os.environ.get("SLEEP_S", "0")))
    parsed = SQSEvent(event)
    lines, failed = [], []
    for record in parsed.records:
        attributes = record.message_attributes
        color = attributes["color"] if "color" in attributes else None
        lines.append(json.dumps({
            "messageId": record.message_id,
            "receiptHandle": record.receipt_handle,
            "body": record.body,
            "receiveCount": record.attributes.approximate_receive_count,
            "sentTimestamp": record.attributes.sent_timestamp,
            "firstReceive": record.attributes.approximate_first_receive_timestamp,
            "senderId": record.attributes.sender_id,
            "color": color.string_value if color else None,
            "colorType": color.data_type if color else None,
            "md5OfBody": record.md5_of_body,
            "eventSource": record.event_source,
            "eventSourceArn": record.event_source_arn,
            "region": record.aws_region,
            "queueUrl": record.queue_url,
            "batchSize": len(event["Records"]),
            "started": started,
            "ended": time.time(),
        }))
        if record.body.startswith("fail"):
            failed.append(record.message_id)
    with open(os.environ["OUT"], "a") as out:
        out.write("".join(line + "\\n" for line in lines))
    mode = os.environ.get("FAIL_MODE", "raise")
    if failed and mode == "raise":
        raise RuntimeError("failing on purpose")
    if mode == "report":
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
    if mode == "invalid":
        return {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]}
    return {"ok": len(lines)}
"""


def wait_for(check: Callable[[], T | None], what: str, timeout_s: float = 30) -> T:
    """Poll ``check`` until it returns something truthy (bounded by a deadline)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def sqs(server: ServerThread) -> Iterator[Any]:
    client = boto_client(server.url, "sqs")
    yield client
    client.close()


MakeQueue = Callable[..., tuple[str, str]]


@pytest.fixture
def make_queue(sqs: Any) -> Iterator[MakeQueue]:
    """Create queues (URL, ARN) with fresh names and given attributes; deleted after."""
    created: list[str] = []

    def create(**attributes: str) -> tuple[str, str]:
        name = f"esm-{uuid.uuid4().hex[:12]}"
        url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        created.append(url)
        return url, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"

    yield create
    for url in created:
        with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
            sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def mappings(lambda_client: Any) -> Iterator[list[str]]:
    """UUIDs of mappings to delete after the test (they would go on polling otherwise)."""
    created: list[str] = []
    yield created
    for mapping_uuid in created:
        with contextlib.suppress(lambda_client.exceptions.ResourceNotFoundException):
            lambda_client.delete_event_source_mapping(UUID=mapping_uuid)
    for mapping_uuid in created:
        wait_for(functools.partial(gone, lambda_client, mapping_uuid), f"{mapping_uuid} gone")


def gone(client: Any, mapping_uuid: str) -> bool:
    try:
        client.get_event_source_mapping(UUID=mapping_uuid)
    except client.exceptions.ResourceNotFoundException:
        return True
    return False


def state_is(client: Any, mapping_uuid: str, state: str) -> dict[str, Any] | None:
    mapping: dict[str, Any] = client.get_event_source_mapping(UUID=mapping_uuid)
    return mapping if mapping["State"] == state else None


def recorder(deploy: Deploy, out: Path, timeout_s: int = 3, **variables: str) -> str:
    """A recording function; its name."""
    name: str = deploy(
        RECORDER,
        Timeout=timeout_s,
        Environment={"Variables": {"OUT": str(out), **variables}},
    )["FunctionName"]
    return name


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def send(sqs: Any, url: str, bodies: list[str], **extra: Any) -> list[str]:
    """Send messages in batches of ten; their ids."""
    ids: list[str] = []
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(index), "MessageBody": body, **extra}
            for index, body in enumerate(bodies[start : start + 10])
        ]
        result = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not result.get("Failed")
        ids += [entry["MessageId"] for entry in result["Successful"]]
    return ids


def error_of(call: Callable[[], Any]) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return (
        error["Error"]["Code"],
        error["Error"]["Message"],
        error["ResponseMetadata"]["HTTPStatusCode"],
    )


# The API.


def test_create_get_update_delete_follow_aws_states(
    lambda_client: Any, deploy: Deploy, make_queue: MakeQueue, mappings: list[str], tmp_path: Path
) -> None:
    name = recorder(deploy, tmp_path / "out.jsonl")
    _, arn = make_queue()
    created = lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    mappings.append(created["UUID"])
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert created["State"] == "Creating"
    assert created["StateTransitionReason"] == "USER_INITIATED"
    assert created["BatchSize"] == 10
    assert created["MaximumBatchingWindowInSeconds"] == 0
    assert created["EventSourceArn"] == arn
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    assert created["FunctionResponseTypes"] == []
    assert created["EventSourceMappingArn"].endswith(f":event-source-mapping:{created['UUID']}")
    assert "ScalingConfig" not in created
    uuid.UUID(created["UUID"])
    enabled = wait_for(lambda: state_is(lambda_client, created["UUID"], "Enabled"), "Enabled")
    assert enabled["LastModified"] == created["LastModified"]

    updated = lambda_client.update_event_source_mapping(
        UUID=created["UUID"],
        BatchSize=50,
        MaximumBatchingWindowInSeconds=2,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        ScalingConfig={"MaximumConcurrency": 3},
    )
    assert updated["State"] == "Updating"
    assert updated["BatchSize"] == 50
    assert updated["MaximumBatchingWindowInSeconds"] == 2
    assert updated["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert updated["ScalingConfig"] == {"MaximumConcurrency": 3}
    assert updated["LastModified"] >= created["LastModified"]
    wait_for(lambda: state_is(lambda_client, created["UUID"], "Enabled"), "Enabled again")

    disabling = lambda_client.update_event_source_mapping(UUID=created["UUID"], Enabled=False)
    assert disabling["State"] == "Disabling"
    disabled = wait_for(lambda: state_is(lambda_client, created["UUID"], "Disabled"), "Disabled")
    assert disabled["BatchSize"] == 50  # the other settings stay
    enabling = lambda_client.update_event_source_mapping(UUID=created["UUID"], Enabled=True)
    assert enabling["State"] == "Enabling"
    wait_for(lambda: state_is(lambda_client, created["UUID"], "Enabled"), "Enabled at last")

    deleting = lambda_client.delete_event_source_mapping(UUID=created["UUID"])
    assert deleting["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert deleting["State"] == "Deleting"
    wait_for(lambda: gone(lambda_client, created["UUID"]), "the mapping gone")
    code, message, status = error_of(
        lambda: lambda_client.delete_event_source_mapping(UUID=created["UUID"])
    )
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert message == "The resource you requested does not exist."


def test_create_disabled_settles_disabled_and_qualified_function_arn(
    lambda_client: Any, deploy: Deploy, make_queue: MakeQueue, mappings: list[str], tmp_path: Path
) -> None:
    name = recorder(deploy, tmp_path / "out.jsonl")
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    _, arn = make_queue()
    created = lambda_client.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=f"{name}:{version}", Enabled=False
    )
    mappings.append(created["UUID"])
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:1"
    wait_for(lambda: state_is(lambda_client, created["UUID"], "Disabled"), "Disabled")


def test_same_queue_and_function_twice_is_a_conflict(
    lambda_client: Any, deploy: Deploy, make_queue: MakeQueue, mappings: list[str], tmp_path: Path
) -> None:
    name = recorder(deploy, tmp_path / "out.jsonl")
    _, arn = make_queue()
    first = lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    mappings.append(first["UUID"])
    full_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    code, message, status = error_of(
        lambda: lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=full_arn)
    )
    assert (code, status) == ("ResourceConflictException", 409)
    assert message == (
        f'An event source mapping with SQS arn (" {arn} ") and function (" {name} ") already'
        f" exists. Please update or delete the existing mapping with UUID {first['UUID']}"
    )


@pytest.mark.parametrize(
    ("changes", "code", "fragment"),
    [
        (
            {"EventSourceArn": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/s"},
            "InvalidParameterValueException",
            "'kinesis' event sources are not supported",
        ),
        (
            {"EventSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:no-such-queue"},
            "InvalidParameterValueException",
            "AWS.SimpleQueueService.NonExistentQueue",
        ),
        (
            {"EventSourceArn": f"arn:aws:sqs:eu-west-1:{ACCOUNT}:QUEUE"},
            "InvalidParameterValueException",
            f"in region {REGION} and account {ACCOUNT}",
        ),
        ({"EventSourceArn": None}, "InvalidParameterValueException", "EventSourceArn is required"),
        ({"FunctionName": "no-such-function"}, "InvalidParameterValueException", "Function does"),
        (
            {"BatchSize": 11},
            "InvalidParameterValueException",
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is"
            " greater than 10",
        ),
        ({"BatchSize": 0}, "ValidationException", "'batchSize' failed to satisfy"),
        ({"BatchSize": 10_001}, "ValidationException", "less than or equal to 10000"),
        (
            {"MaximumBatchingWindowInSeconds": 301},
            "ValidationException",
            "'maximumBatchingWindowInSeconds'",
        ),
        (
            {"ScalingConfig": {"MaximumConcurrency": 1}},
            "ValidationException",
            "'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have"
            " value greater than or equal to 2",
        ),
        (
            {"FunctionResponseTypes": ["Everything"]},
            "ValidationException",
            "enum value set: [ReportBatchItemFailures]",
        ),
        (
            {"StartingPosition": "LATEST"},
            "InvalidParameterValueException",
            "Unsupported StartingPosition parameter for given event source mapping type.",
        ),
        (
            {"FilterCriteria": {"Filters": [{"Pattern": "not json"}]}},
            "InvalidParameterValueException",
            "Invalid filter pattern definition",
        ),
        ({"Enabled": "yes"}, "ValidationException", "'enabled'"),
    ],
)
def test_create_refuses_bad_input_as_aws(
    raw_client: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    tmp_path: Path,
    changes: dict[str, Any],
    code: str,
    fragment: str,
) -> None:
    name = recorder(deploy, tmp_path / "out.jsonl")
    _, arn = make_queue()
    request = {"EventSourceArn": arn, "FunctionName": name, **changes}
    request = {key: value for key, value in request.items() if value is not None}
    got_code, message, status = error_of(lambda: raw_client.create_event_source_mapping(**request))
    assert (got_code, status) == (code, 400)
    assert fragment in message
    assert not raw_client.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]


def test_a_queue_visibility_timeout_below_the_function_timeout_is_refused(
    lambda_client: Any, deploy: Deploy, make_queue: MakeQueue, mappings: list[str], tmp_path: Path
) -> None:
    slow = recorder(deploy, tmp_path / "slow.jsonl", timeout_s=60)
    quick = recorder(deploy, tmp_path / "quick.jsonl", timeout_s=10)
    _, arn = make_queue(VisibilityTimeout="30")
    code, message, status = error_of(
        lambda: lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=slow)
    )
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert message == (
        "Queue visibility timeout: 30 seconds is less than Function timeout: 60 seconds"
    )
    mapping = lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=quick)
    mappings.append(mapping["UUID"])
    code, message, _ = error_of(
        lambda: lambda_client.update_event_source_mapping(UUID=mapping["UUID"], FunctionName=slow)
    )
    assert code == "InvalidParameterValueException"
    assert message.startswith("Queue visibility timeout: 30 seconds")


def test_update_checks_the_combined_settings_and_missing_mappings(
    lambda_client: Any, deploy: Deploy, make_queue: MakeQueue, mappings: list[str], tmp_path: Path
) -> None:
    name = recorder(deploy, tmp_path / "out.jsonl")
    _, arn = make_queue()
    created = lambda_client.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, BatchSize=100, MaximumBatchingWindowInSeconds=1
    )
    mappings.append(created["UUID"])
    code, message, _ = error_of(
        lambda: lambda_client.update_event_source_mapping(
            UUID=created["UUID"], MaximumBatchingWindowInSeconds=0
        )
    )
    assert code == "InvalidParameterValueException"
    assert "Maximum batch window in seconds must be greater than 0" in message
    code, message, _ = error_of(
        lambda: lambda_client.update_event_source_mapping(
            UUID=created["UUID"], FunctionName="no-such-function"
        )
    )
    assert (code, message.split(":")[0]) == (
        "InvalidParameterValueException",
        "Function does not exist",
    )
    assert lambda_client.get_event_source_mapping(UUID=created["UUID"])["BatchSize"] == 100
    missing = str(uuid.uuid4())
    for call in (
        lambda: lambda_client.get_event_source_mapping(UUID=missing),
        lambda: lambda_client.update_event_source_mapping(UUID=missing, BatchSize=5),
    ):
        assert error_of(call) == (
            "ResourceNotFoundException",
            "The resource you requested does not exist.",
            404,
        )


def test_list_filters_by_source_and_function_and_pages(
    lambda_client: Any, deploy: Deploy, make_queue: MakeQueue, mappings: list[str], tmp_path: Path
) -> None:
    first = recorder(deploy, tmp_path / "a.jsonl")
    second = recorder(deploy, tmp_path / "b.jsonl")
    _, arn_a = make_queue()
    _, arn_b = make_queue()
    made = {}
    for arn, name in ((arn_a, first), (arn_b, first), (arn_a, second)):
        mapping = lambda_client.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=name, Enabled=False
        )
        mappings.append(mapping["UUID"])
        made[(arn, name)] = mapping["UUID"]

    def listed(**filters: Any) -> set[str]:
        found = lambda_client.list_event_source_mappings(**filters)["EventSourceMappings"]
        return {mapping["UUID"] for mapping in found}

    assert listed(EventSourceArn=arn_a) == {made[(arn_a, first)], made[(arn_a, second)]}
    assert listed(FunctionName=first) == {made[(arn_a, first)], made[(arn_b, first)]}
    assert listed(
        FunctionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{second}", EventSourceArn=arn_a
    ) == {made[(arn_a, second)]}
    assert listed(FunctionName=f"{first}:1") == set()
    pages: list[str] = []
    marker: str | None = None
    while True:
        kwargs: dict[str, Any] = {"FunctionName": first, "MaxItems": 1}
        if marker:
            kwargs["Marker"] = marker
        page = lambda_client.list_event_source_mappings(**kwargs)
        assert len(page["EventSourceMappings"]) <= 1
        pages += [mapping["UUID"] for mapping in page["EventSourceMappings"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert sorted(pages) == sorted([made[(arn_a, first)], made[(arn_b, first)]])
    paginated = lambda_client.get_paginator("list_event_source_mappings").paginate(
        EventSourceArn=arn_a, PaginationConfig={"PageSize": 1}
    )
    assert sum(len(page["EventSourceMappings"]) for page in paginated) == 2


# Delivery.


def test_every_message_is_processed_exactly_once_in_sqs_events(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out)
    url, arn = make_queue()
    bodies = [f"message {index}" for index in range(25)]
    sent_ids = send(
        sqs,
        url,
        bodies,
        MessageAttributes={"color": {"DataType": "String", "StringValue": "blue"}},
    )
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, BatchSize=10
    )
    mappings.append(mapping["UUID"])
    wait_for(lambda: len(read_lines(out)) >= 25, "25 messages processed")
    wait_for(lambda: queue_counts(sqs, url) == (0, 0), "the queue empty")
    records = read_lines(out)
    assert sorted(record["messageId"] for record in records) == sorted(sent_ids)
    assert sorted(record["body"] for record in records) == sorted(bodies)
    assert all(record["batchSize"] <= 10 for record in records)
    record = records[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceArn"] == arn
    assert record["region"] == REGION
    assert record["queueUrl"].endswith(f"/{ACCOUNT}/{arn.rsplit(':', 1)[-1]}")
    assert record["receiveCount"] == "1"
    assert record["senderId"] == ACCOUNT
    assert int(record["firstReceive"]) >= int(record["sentTimestamp"]) > 0
    assert (record["color"], record["colorType"]) == ("blue", "String")
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert record["receiptHandle"]
    time.sleep(0.3)  # a late duplicate would show here
    assert len(read_lines(out)) == 25


def test_a_batching_window_gathers_batches_larger_than_one_receive(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out)
    url, arn = make_queue()
    send(sqs, url, [f"m{index}" for index in range(25)])
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        BatchSize=100,
        MaximumBatchingWindowInSeconds=1,
        ScalingConfig={"MaximumConcurrency": 2},
    )
    mappings.append(mapping["UUID"])
    wait_for(lambda: len(read_lines(out)) >= 25, "25 messages processed")
    records = read_lines(out)
    assert len(records) == 25
    # Two pollers share 25 messages: one of them gathered more than a receive's ten.
    assert max(record["batchSize"] for record in records) > 10


def test_disabling_while_a_batch_is_gathered_shows_its_messages_again_at_once(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out)
    url, arn = make_queue(VisibilityTimeout="600")
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, BatchSize=100, MaximumBatchingWindowInSeconds=300
    )
    mappings.append(mapping["UUID"])
    wait_for(lambda: state_is(lambda_client, mapping["UUID"], "Enabled"), "Enabled")
    send(sqs, url, ["a", "b", "c"])
    wait_for(lambda: queue_counts(sqs, url) == (0, 3), "the messages held in a batch")
    lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    wait_for(lambda: state_is(lambda_client, mapping["UUID"], "Disabled"), "Disabled")
    assert queue_counts(sqs, url) == (3, 0)  # not hidden for the 600 s visibility timeout
    assert not read_lines(out)


def test_failing_handler_messages_are_redriven_to_the_dead_letter_queue(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out, timeout_s=2)
    dlq_url, dlq_arn = make_queue()
    url, arn = make_queue(
        VisibilityTimeout="2",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
    )
    sent_ids = send(sqs, url, ["fail 1", "fail 2", "fail 3"])
    mapping = lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    mappings.append(mapping["UUID"])
    wait_for(lambda: queue_counts(sqs, dlq_url)[0] == 3, "three messages in the DLQ", 45)
    wait_for(lambda: queue_counts(sqs, url) == (0, 0), "the source queue empty")
    lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    moved = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(message["MessageId"] for message in moved) == sorted(sent_ids)
    attempts: dict[str, set[str]] = {}
    for record in read_lines(out):
        attempts.setdefault(record["messageId"], set()).add(record["receiveCount"])
    assert attempts == {message_id: {"1", "2"} for message_id in sent_ids}


def test_report_batch_item_failures_deletes_only_the_others(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out, timeout_s=2, FAIL_MODE="report")
    url, arn = make_queue(VisibilityTimeout="2")
    bodies = ["ok 1", "fail 1", "ok 2", "ok 3", "fail 2"]
    sent = dict(zip(send(sqs, url, bodies), bodies, strict=True))
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, FunctionResponseTypes=["ReportBatchItemFailures"]
    )
    mappings.append(mapping["UUID"])

    def retried_failures() -> bool:
        again = {r["body"] for r in read_lines(out) if r["receiveCount"] == "2"}
        return again == {"fail 1", "fail 2"}

    wait_for(retried_failures, "the failed messages delivered a second time")
    lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    wait_for(lambda: state_is(lambda_client, mapping["UUID"], "Disabled"), "Disabled")
    seen: dict[str, int] = {}
    for record in read_lines(out):
        seen[record["body"]] = seen.get(record["body"], 0) + 1
    assert {body: seen[body] for body in ("ok 1", "ok 2", "ok 3")} == {
        "ok 1": 1,
        "ok 2": 1,
        "ok 3": 1,
    }
    assert seen["fail 1"] >= 2 and seen["fail 2"] >= 2
    wait_for(lambda: sum(queue_counts(sqs, url)) == 2, "only the failed messages left")
    left = wait_for(
        lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"),
        "the failed messages visible again",
    )
    assert sorted(sent[message["MessageId"]] for message in left) == ["fail 1", "fail 2"]


def test_an_invalid_batch_item_failures_response_fails_the_whole_batch(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out, timeout_s=2, FAIL_MODE="invalid")
    url, arn = make_queue(VisibilityTimeout="2")
    send(sqs, url, ["a", "b"])
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, FunctionResponseTypes=["ReportBatchItemFailures"]
    )
    mappings.append(mapping["UUID"])
    wait_for(
        lambda: {r["body"] for r in read_lines(out) if r["receiveCount"] == "2"} == {"a", "b"},
        "both messages delivered again",
    )


def test_disabling_stops_delivery_and_enabling_resumes_it(
    server: ServerThread,
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out)
    url, arn = make_queue()
    queue_name = arn.rsplit(":", 1)[-1]
    mapping = lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    mappings.append(mapping["UUID"])
    send(sqs, url, ["before"])
    wait_for(lambda: len(read_lines(out)) == 1, "the first message processed")

    lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    wait_for(lambda: state_is(lambda_client, mapping["UUID"], "Disabled"), "Disabled")
    assert server.node.mapping_pollers.poller(mapping["UUID"]) is None
    assert server.node.queues.waiting_receives(queue_name) == 0  # nobody polls the queue
    send(sqs, url, ["while disabled 1", "while disabled 2"])
    time.sleep(0.5)
    assert queue_counts(sqs, url) == (2, 0)
    assert [record["body"] for record in read_lines(out)] == ["before"]

    lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    wait_for(lambda: len(read_lines(out)) == 3, "the messages sent while disabled processed")
    assert sorted(record["body"] for record in read_lines(out)[1:]) == [
        "while disabled 1",
        "while disabled 2",
    ]


def drain_slowly(
    server: ServerThread,
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    out: Path,
    count: int,
    maximum_concurrency: int,
) -> tuple[int, list[dict[str, Any]]]:
    """Send ``count`` messages to a mapping of batch size 1 whose handler takes 0.2 s; once
    all are processed, the most pollers seen at work and what the handler recorded."""
    name = recorder(deploy, out, SLEEP_S="0.2")
    url, arn = make_queue()
    send(sqs, url, [f"m{index}" for index in range(count)])
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        BatchSize=1,
        ScalingConfig={"MaximumConcurrency": maximum_concurrency},
    )
    mappings.append(mapping["UUID"])
    poller = wait_for(
        lambda: server.node.mapping_pollers.poller(mapping["UUID"]), "the mapping's poller"
    )
    most_workers = 0

    def done() -> bool:
        nonlocal most_workers
        most_workers = max(most_workers, poller.worker_count)
        return len(read_lines(out)) >= count

    wait_for(done, f"{count} messages processed", 60)
    return most_workers, read_lines(out)


def test_maximum_concurrency_bounds_the_batches_in_flight(
    server: ServerThread,
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    most_workers, records = drain_slowly(
        server, lambda_client, sqs, deploy, make_queue, mappings, tmp_path / "out.jsonl", 12, 2
    )
    assert most_workers == 2
    intervals = [(record["started"], record["ended"]) for record in records]
    overlap = max(
        sum(1 for start, end in intervals if start <= moment < end) for moment, _ in intervals
    )
    assert overlap <= 2


def test_pollers_scale_up_while_batches_come_back_full(
    server: ServerThread,
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    most_workers, records = drain_slowly(
        server, lambda_client, sqs, deploy, make_queue, mappings, tmp_path / "out.jsonl", 40, 8
    )
    assert 5 < most_workers <= 8  # started with five, grew with the backlog, within the limit
    assert sorted(record["body"] for record in records) == sorted(
        f"m{index}" for index in range(40)
    )


def test_throttled_batches_stay_in_the_queue_until_the_function_may_run(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out, timeout_s=2)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    url, arn = make_queue(VisibilityTimeout="2")
    send(sqs, url, ["throttled"])
    mapping = lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    mappings.append(mapping["UUID"])
    wait_for(lambda: state_is(lambda_client, mapping["UUID"], "Enabled"), "Enabled")
    wait_for(lambda: queue_counts(sqs, url) == (0, 1), "the message received")
    time.sleep(0.5)
    assert not read_lines(out)
    assert sum(queue_counts(sqs, url)) == 1  # left in the queue, not lost
    lambda_client.delete_function_concurrency(FunctionName=name)
    wait_for(lambda: read_lines(out), "the message processed once the throttle is lifted")
    wait_for(lambda: queue_counts(sqs, url) == (0, 0), "the queue empty")
    assert [record["body"] for record in read_lines(out)] == ["throttled"]


def test_a_mapping_being_deleted_cannot_be_updated(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out, SLEEP_S="1.5")
    url, arn = make_queue()
    mapping = lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    mappings.append(mapping["UUID"])
    send(sqs, url, ["slow"])
    wait_for(lambda: queue_counts(sqs, url) == (0, 1), "the batch in flight")
    assert lambda_client.delete_event_source_mapping(UUID=mapping["UUID"])["State"] == "Deleting"
    code, message, status = error_of(
        lambda: lambda_client.update_event_source_mapping(UUID=mapping["UUID"], BatchSize=5)
    )
    assert (code, status) == ("ResourceInUseException", 400)
    assert "is being deleted" in message
    # The batch in flight was allowed to finish: processed and deleted, not redelivered.
    wait_for(lambda: gone(lambda_client, mapping["UUID"]), "the mapping gone")
    assert [record["body"] for record in read_lines(out)] == ["slow"]
    assert queue_counts(sqs, url) == (0, 0)


def test_filter_criteria_deliver_matching_messages_and_delete_the_rest(
    lambda_client: Any,
    sqs: Any,
    deploy: Deploy,
    make_queue: MakeQueue,
    mappings: list[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    name = recorder(deploy, out)
    url, arn = make_queue()
    pattern = json.dumps({"body": {"kind": ["order"]}})
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        FilterCriteria={"Filters": [{"Pattern": pattern}]},
    )
    mappings.append(mapping["UUID"])
    assert mapping["FilterCriteria"] == {"Filters": [{"Pattern": pattern}]}
    send(sqs, url, [json.dumps({"kind": "order", "n": 1}), json.dumps({"kind": "ping"}), "plain"])
    wait_for(lambda: queue_counts(sqs, url) == (0, 0), "every message consumed")
    assert [json.loads(record["body"])["n"] for record in read_lines(out)] == [1]


def test_deleting_the_function_keeps_the_mapping(
    lambda_client: Any, sqs: Any, make_queue: MakeQueue, mappings: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    name = f"esm-fn-{uuid.uuid4().hex[:8]}"

    def create() -> None:
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": RECORDER})},
            Environment={"Variables": {"OUT": str(out)}},
        )

    create()
    url, arn = make_queue()
    mapping = lambda_client.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    mappings.append(mapping["UUID"])
    wait_for(lambda: state_is(lambda_client, mapping["UUID"], "Enabled"), "Enabled")
    lambda_client.delete_function(FunctionName=name)
    kept = lambda_client.get_event_source_mapping(UUID=mapping["UUID"])
    assert kept["FunctionArn"].endswith(f":function:{name}")
    send(sqs, url, ["waits for the function"])
    time.sleep(0.5)
    assert queue_counts(sqs, url) == (1, 0)  # nothing received while the function is gone
    try:
        create()
        wait_for(lambda: len(read_lines(out)) == 1, "the message delivered to the new function")
    finally:
        lambda_client.delete_function(FunctionName=name)


def test_a_restarted_node_resumes_its_enabled_mappings(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    out = tmp_path / "out.jsonl"
    with ServerThread(data_dir=data_dir, sandbox_backend="process") as first:
        client, sqs = boto_client(first.url), boto_client(first.url, "sqs")
        client.create_function(
            FunctionName="resumed",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": RECORDER})},
            Environment={"Variables": {"OUT": str(out)}},
        )
        url = sqs.create_queue(QueueName="resumed")["QueueUrl"]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:resumed"
        mapping = client.create_event_source_mapping(EventSourceArn=arn, FunctionName="resumed")
        wait_for(lambda: state_is(client, mapping["UUID"], "Enabled"), "Enabled")
        send(sqs, url, ["first"])
        wait_for(lambda: len(read_lines(out)) == 1, "the first message processed")
    with ServerThread(data_dir=data_dir, sandbox_backend="process") as second:
        sqs = boto_client(second.url, "sqs")
        url = sqs.get_queue_url(QueueName="resumed")["QueueUrl"]
        send(sqs, url, ["after the restart"])
        wait_for(lambda: len(read_lines(out)) == 2, "the message processed after the restart")
        assert second.node.mapping_pollers.poller(mapping["UUID"]) is not None


# The pure parts.


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", set()),
        (b"null", set()),
        (b"{}", set()),
        (b'{"batchItemFailures": []}', set()),
        (b'{"batchItemFailures": null}', set()),
        (b'{"batchItemFailures": [{"itemIdentifier": "a"}]}', {"a"}),
        (b'{"batchItemFailures": [{"itemIdentifier": "zzz"}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": null}]}', None),
        (b'{"batchItemFailures": [{"id": "a"}]}', None),
        (b'{"batchItemFailures": "a"}', None),
        (b"not json", None),
        (b'"a string"', None),
    ],
)
def test_batch_item_failures_follow_aws_rules(payload: bytes, expected: set[str] | None) -> None:
    assert failed_message_ids(payload, {"a", "b"}) == expected


def test_filters_match_json_bodies_and_record_fields() -> None:
    record = {"body": '{"kind": "order"}', "attributes": {"ApproximateReceiveCount": "1"}}
    assert passes_filters(record, [])
    assert passes_filters(record, [{"body": {"kind": ["order"]}}])
    assert not passes_filters(record, [{"body": {"kind": ["ping"]}}])
    assert passes_filters(
        record, [{"body": {"kind": ["ping"]}}, {"attributes": {"ApproximateReceiveCount": ["1"]}}]
    )
    assert passes_filters({"body": "plain"}, [{"body": ["plain"]}])
