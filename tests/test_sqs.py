"""The SQS-compatible queues, through boto3's sqs client against a real node."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from conftest import boto_client

from lambdalet.testing import ServerThread

MAX_MESSAGE_BYTES = 262_144


@pytest.fixture(scope="module")
def sqs(server: ServerThread) -> Iterator[Any]:
    client = boto_client(server.url, "sqs")
    yield client
    client.close()


@pytest.fixture(scope="module")
def raw_sqs(server: ServerThread) -> Iterator[Any]:
    """An sqs client that sends what it is given, to reach the server's own checks."""
    client = boto_client(server.url, "sqs", parameter_validation=False)
    yield client
    client.close()


MakeQueue = Callable[..., str]


@pytest.fixture
def make_queue(sqs: Any) -> Iterator[MakeQueue]:
    """Create queues with fresh names (and given attributes); deleted after the test."""
    created: list[str] = []

    def create(**attributes: str) -> str:
        url: str = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}", Attributes=attributes)[
            "QueueUrl"
        ]
        created.append(url)
        return url

    yield create
    for url in created:
        with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
            sqs.delete_queue(QueueUrl=url)


def error_of(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        call()
    error: dict[str, Any] = raised.value.response["Error"]
    return error


def receive_within(sqs: Any, url: str, bound_s: int = 10, **options: Any) -> list[dict[str, Any]]:
    """Long-poll until a message comes or ``bound_s`` passes (a bound, not an expectation)."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        response = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2, **options)
        if response.get("Messages"):
            messages: list[dict[str, Any]] = response["Messages"]
            return messages
    return []


def counts(sqs: Any, url: str) -> tuple[int, int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


def test_queue_lifecycle(sqs: Any, server: ServerThread) -> None:
    name = f"life-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    assert url == f"{server.url}/000000000000/{name}"
    # Idempotent with the same attributes (or none), refused with different ones.
    again = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})
    assert again["QueueUrl"] == url
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists) as raised:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
    assert raised.value.response["Error"]["Code"] == "QueueAlreadyExists"
    assert "different value for attribute VisibilityTimeout" in str(raised.value)
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url

    others = [sqs.create_queue(QueueName=f"{name}-{i}")["QueueUrl"] for i in range(3)]
    assert sqs.list_queues(QueueNamePrefix=name)["QueueUrls"] == [url, *others]
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=f"nothing-{name}")
    first = sqs.list_queues(QueueNamePrefix=name, MaxResults=3)
    assert first["QueueUrls"] == [url, *others[:2]]
    rest = sqs.list_queues(QueueNamePrefix=name, MaxResults=3, NextToken=first["NextToken"])
    assert rest["QueueUrls"] == others[2:]
    assert "NextToken" not in rest

    for queue_url in [url, *others]:
        sqs.delete_queue(QueueUrl=queue_url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as missing:
        sqs.get_queue_url(QueueName=name)
    assert missing.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert missing.value.response["Error"]["Message"] == "The specified queue does not exist."


def test_send_receive_delete_in_aws_shape(sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue()
    attributes = {
        "ordinal": {"DataType": "Number", "StringValue": "1"},
        "category": {"DataType": "String", "StringValue": "test"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffbytes"},
        "trace.id": {"DataType": "String.custom", "StringValue": "abc"},
    }
    body = "héllo wörld"
    sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert len(sent["MD5OfMessageAttributes"]) == 32
    uuid.UUID(sent["MessageId"])

    response = sqs.receive_message(
        QueueUrl=url,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    (message,) = response["Messages"]
    assert set(message) == {
        "MessageId",
        "ReceiptHandle",
        "MD5OfBody",
        "Body",
        "Attributes",
        "MD5OfMessageAttributes",
        "MessageAttributes",
    }
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == body
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["MessageAttributes"] == attributes
    system = message["Attributes"]
    assert set(system) == {
        "SenderId",
        "SentTimestamp",
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
    }
    assert system["ApproximateReceiveCount"] == "1"
    assert int(system["ApproximateFirstReceiveTimestamp"]) >= int(system["SentTimestamp"])

    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert counts(sqs, url) == (0, 0, 0)


def test_receive_returns_only_the_attributes_asked_for(sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue()
    sqs.send_message(
        QueueUrl=url,
        MessageBody="x",
        MessageAttributes={
            "trace.id": {"DataType": "String", "StringValue": "t"},
            "trace.span": {"DataType": "String", "StringValue": "s"},
            "other": {"DataType": "Number", "StringValue": "2"},
        },
    )
    (message,) = sqs.receive_message(
        QueueUrl=url,
        VisibilityTimeout=0,
        AttributeNames=["ApproximateReceiveCount"],
        MessageAttributeNames=["trace.*"],
    )["Messages"]
    assert message["Attributes"] == {"ApproximateReceiveCount": "1"}
    assert set(message["MessageAttributes"]) == {"trace.id", "trace.span"}
    (plain,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert "Attributes" not in plain
    assert "MessageAttributes" not in plain
    assert "MD5OfMessageAttributes" not in plain


def test_a_message_comes_back_after_its_visibility_timeout(sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue(VisibilityTimeout="1")
    sqs.send_message(QueueUrl=url, MessageBody="again")
    (first,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert counts(sqs, url) == (0, 1, 0)
    (second,) = receive_within(sqs, url, AttributeNames=["ApproximateReceiveCount"])
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    # The first receipt handle no longer deletes the message (as on AWS, without an error).
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert counts(sqs, url) == (0, 1, 0)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    assert counts(sqs, url) == (0, 0, 0)


def test_delayed_messages(sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue()
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert counts(sqs, url) == (0, 0, 1)
    (message,) = receive_within(sqs, url)
    assert message["Body"] == "later"
    delayed_queue = make_queue(DelaySeconds="900")
    sqs.send_message(QueueUrl=delayed_queue, MessageBody="x")
    assert counts(sqs, delayed_queue) == (0, 0, 1)
    sqs.send_message(QueueUrl=delayed_queue, MessageBody="now", DelaySeconds=0)
    (now,) = sqs.receive_message(QueueUrl=delayed_queue)["Messages"]
    assert now["Body"] == "now"


def test_long_polling_returns_when_a_message_is_sent(
    sqs: Any, make_queue: MakeQueue, server: ServerThread
) -> None:
    url = make_queue()
    results: list[dict[str, Any]] = []
    poller = boto_client(server.url, "sqs")

    def long_poll() -> None:
        results.append(poller.receive_message(QueueUrl=url, WaitTimeSeconds=20))

    thread = threading.Thread(target=long_poll)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.node.queues.waiting_receives(url) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.node.queues.waiting_receives(url) == 1
    sqs.send_message(QueueUrl=url, MessageBody="wake up")
    thread.join(15)  # a bound: the poll itself would wait 20 s without the wake-up
    assert not thread.is_alive()
    assert [m["Body"] for m in results[0]["Messages"]] == ["wake up"]
    assert server.node.queues.waiting_receives(url) == 0
    poller.close()


def test_the_queue_wait_time_is_the_default_long_poll(
    sqs: Any, make_queue: MakeQueue, server: ServerThread
) -> None:
    url = make_queue(ReceiveMessageWaitTimeSeconds="20")
    results: list[dict[str, Any]] = []
    poller = boto_client(server.url, "sqs")
    thread = threading.Thread(target=lambda: results.append(poller.receive_message(QueueUrl=url)))
    thread.start()
    deadline = time.monotonic() + 10
    while not server.node.queues.waiting_receives(url) and time.monotonic() < deadline:
        time.sleep(0.01)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "batch"}])
    thread.join(15)
    assert not thread.is_alive()
    assert results[0]["Messages"][0]["Body"] == "batch"
    poller.close()


def test_change_message_visibility(sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue()
    sqs.send_message(QueueUrl=url, MessageBody="one")
    sqs.send_message(QueueUrl=url, MessageBody="two")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
    one, two = received["Messages"]
    assert counts(sqs, url) == (0, 2, 0)
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=one["ReceiptHandle"], VisibilityTimeout=0
    )
    (again,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    assert again["Body"] == "one"
    with pytest.raises(sqs.exceptions.MessageNotInflight):
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=30
        )
    # The handle of an earlier receive no longer names the message.
    error = error_of(
        lambda: sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=one["ReceiptHandle"], VisibilityTimeout=30
        )
    )
    assert error["Code"] == "InvalidParameterValue"
    assert "Message does not exist or is not available" in error["Message"]
    error = error_of(
        lambda: sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=two["ReceiptHandle"], VisibilityTimeout=43_201
        )
    )
    assert error["Code"] == "InvalidParameterValue"
    assert "VisibilityTimeout" in error["Message"]

    result = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "ok", "ReceiptHandle": two["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "bad", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 0},
        ],
    )
    assert result["Successful"] == [{"Id": "ok"}]
    assert result["Failed"] == [
        {
            "Id": "bad",
            "SenderFault": True,
            "Code": "ReceiptHandleIsInvalid",
            "Message": 'The input receipt handle "not-a-handle" is not a valid receipt handle.',
        }
    ]


def test_redrive_to_a_dead_letter_queue(sqs: Any, make_queue: MakeQueue) -> None:
    dead_letter = make_queue()
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    policy = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": "2"}
    source = make_queue(RedrivePolicy=json.dumps(policy))
    source_arn = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    shown = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])
    assert json.loads(shown["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": 2,
    }
    sent = sqs.send_message(QueueUrl=source, MessageBody="poison")
    for attempt in ("1", "2"):
        (message,) = sqs.receive_message(
            QueueUrl=source, VisibilityTimeout=0, AttributeNames=["ApproximateReceiveCount"]
        )["Messages"]
        assert message["Attributes"]["ApproximateReceiveCount"] == attempt
    assert "Messages" not in sqs.receive_message(QueueUrl=source)
    assert counts(sqs, source) == (0, 0, 0)
    (moved,) = sqs.receive_message(QueueUrl=dead_letter, MessageSystemAttributeNames=["All"])[
        "Messages"
    ]
    assert moved["MessageId"] == sent["MessageId"]
    assert moved["Body"] == "poison"
    assert moved["Attributes"]["DeadLetterQueueSourceArn"] == source_arn

    # Removing the policy stops the redrive.
    sqs.set_queue_attributes(QueueUrl=source, Attributes={"RedrivePolicy": ""})
    assert (
        "RedrivePolicy"
        not in sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["All"])["Attributes"]
    )
    error = error_of(
        lambda: sqs.set_queue_attributes(
            QueueUrl=source,
            Attributes={
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dead_letter_arn + "-gone", "maxReceiveCount": 3}
                )
            },
        )
    )
    assert error["Code"] == "InvalidAttributeValue"
    assert "Dead letter target does not exist" in error["Message"]
    error = error_of(
        lambda: sqs.set_queue_attributes(
            QueueUrl=source,
            Attributes={
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": 0}
                )
            },
        )
    )
    assert "maxReceiveCount" in error["Message"]


def test_send_message_batch_with_partial_failures(sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue()
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "good", "MessageBody": "fine"},
            {"Id": "late", "MessageBody": "too late", "DelaySeconds": 901},
            {
                "Id": "typed",
                "MessageBody": "x",
                "MessageAttributes": {"a": {"DataType": "Weird", "StringValue": "v"}},
            },
            {
                "Id": "with-attributes",
                "MessageBody": "y",
                "MessageAttributes": {"a": {"DataType": "String", "StringValue": "v"}},
            },
        ],
    )
    assert [entry["Id"] for entry in result["Successful"]] == ["good", "with-attributes"]
    good, with_attributes = result["Successful"]
    assert good["MD5OfMessageBody"] == hashlib.md5(b"fine").hexdigest()
    assert "MD5OfMessageAttributes" not in good
    assert len(with_attributes["MD5OfMessageAttributes"]) == 32
    failed = {entry["Id"]: entry for entry in result["Failed"]}
    assert set(failed) == {"late", "typed"}
    assert failed["late"]["Code"] == "InvalidParameterValue"
    assert failed["late"]["SenderFault"] is True
    assert "DelaySeconds must be >= 0 and <= 900" in failed["late"]["Message"]
    assert "supported type prefixes: Binary, Number, String" in failed["typed"]["Message"]
    bodies = [
        m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert bodies == ["fine", "y"]


def test_batch_request_errors(raw_sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue()
    exceptions = raw_sqs.exceptions
    with pytest.raises(exceptions.EmptyBatchRequest):
        raw_sqs.send_message_batch(QueueUrl=url, Entries=[])
    with pytest.raises(exceptions.TooManyEntriesInBatchRequest) as many:
        raw_sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)]
        )
    assert "You have sent 11" in str(many.value)
    with pytest.raises(exceptions.BatchEntryIdsNotDistinct):
        raw_sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}]
        )
    with pytest.raises(exceptions.InvalidBatchEntryId):
        raw_sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": "no spaces", "ReceiptHandle": "h"}]
        )
    with pytest.raises(exceptions.BatchRequestTooLong) as too_long:
        raw_sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": "x" * 100_000} for i in range(3)],
        )
    assert "cannot be longer than 262144 bytes" in str(too_long.value)
    assert too_long.value.response["Error"]["Code"] == (
        "AWS.SimpleQueueService.BatchRequestTooLong"
    )
    assert counts(raw_sqs, url) == (0, 0, 0)


def test_delete_message_batch_with_partial_failures(sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue()
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 3
    other_queue = make_queue()
    sqs.send_message(QueueUrl=other_queue, MessageBody="elsewhere")
    (elsewhere,) = sqs.receive_message(QueueUrl=other_queue)["Messages"]
    result = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "first", "ReceiptHandle": messages[0]["ReceiptHandle"]},
            {"Id": "second", "ReceiptHandle": messages[1]["ReceiptHandle"]},
            {"Id": "garbage", "ReceiptHandle": "garbage"},
            {"Id": "wrong-queue", "ReceiptHandle": elsewhere["ReceiptHandle"]},
        ],
    )
    assert result["Successful"] == [{"Id": "first"}, {"Id": "second"}]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in result["Failed"]] == [
        ("garbage", "ReceiptHandleIsInvalid", True),
        ("wrong-queue", "ReceiptHandleIsInvalid", True),
    ]
    assert counts(sqs, url) == (0, 1, 0)


def test_error_codes(sqs: Any, raw_sqs: Any, make_queue: MakeQueue, server: ServerThread) -> None:
    url = make_queue()
    missing = f"{server.url}/000000000000/missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=missing, MessageBody="x")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.receive_message(QueueUrl=missing)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.delete_queue(QueueUrl=missing)

    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as bad_handle:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-receipt-handle")
    assert bad_handle.value.response["Error"] == {
        "Code": "ReceiptHandleIsInvalid",
        "Message": 'The input receipt handle "not-a-receipt-handle" is not a valid receipt handle.',
        "QueryErrorCode": "ReceiptHandleIsInvalid",
        "Type": "Sender",
    }

    error = error_of(lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11))
    assert error["Code"] == "InvalidParameterValue"
    assert error["Message"] == (
        "Value 11 for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and"
        " 10, if provided."
    )
    assert (
        "WaitTimeSeconds"
        in error_of(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=21))["Message"]
    )

    error = error_of(
        lambda: sqs.send_message(QueueUrl=url, MessageBody="x" * (MAX_MESSAGE_BYTES + 1))
    )
    assert error["Code"] == "InvalidParameterValue"
    assert error["Message"] == (
        "One or more parameters are invalid. Reason: Message must be shorter than 262144 bytes."
    )
    # Exactly the limit is accepted; attributes count towards it.
    sqs.send_message(QueueUrl=url, MessageBody="x" * MAX_MESSAGE_BYTES)
    error = error_of(
        lambda: sqs.send_message(
            QueueUrl=url,
            MessageBody="x" * (MAX_MESSAGE_BYTES - 5),
            MessageAttributes={"name": {"DataType": "String", "StringValue": "value"}},
        )
    )
    assert "Message must be shorter" in error["Message"]

    with pytest.raises(sqs.exceptions.InvalidMessageContents):
        sqs.send_message(QueueUrl=url, MessageBody="bell \x07")
    error = error_of(lambda: raw_sqs.send_message(QueueUrl=url, MessageBody=""))
    assert error["Code"] == "MissingParameter"
    with pytest.raises(sqs.exceptions.InvalidAttributeName) as unknown:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Colour"])
    assert str(unknown.value).endswith("Unknown Attribute Colour.")
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Colour": "red"})
    with pytest.raises(sqs.exceptions.InvalidAttributeValue) as out_of_range:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "43201"})
    assert "from 0 to 43200" in str(out_of_range.value)
    with pytest.raises(sqs.exceptions.UnsupportedOperation):
        sqs.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true"})
    error = error_of(lambda: sqs.create_queue(QueueName="has spaces"))
    assert error["Code"] == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.UnsupportedOperation) as unsupported:
        sqs.list_queue_tags(QueueUrl=url)
    assert "ListQueueTags" in str(unsupported.value)


def test_errors_on_the_wire(server: ServerThread) -> None:
    response = httpx.post(
        server.url + "/",
        headers={
            "X-Amz-Target": "AmazonSQS.GetQueueUrl",
            "Content-Type": "application/x-amz-json-1.0",
        },
        content=json.dumps({"QueueName": "nowhere"}),
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-amz-json-1.0"
    assert response.headers["x-amzn-query-error"] == (
        "AWS.SimpleQueueService.NonExistentQueue;Sender"
    )
    assert response.json() == {
        "__type": "com.amazonaws.sqs#QueueDoesNotExist",
        "message": "The specified queue does not exist.",
    }
    unknown = httpx.post(server.url + "/", headers={"X-Amz-Target": "Nobody.DoThis"})
    assert unknown.status_code == 404
    assert unknown.headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_queue_attributes_and_purge(sqs: Any, make_queue: MakeQueue) -> None:
    url = make_queue(MessageRetentionPeriod="3600")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    name = url.rsplit("/", 1)[1]
    assert attributes["QueueArn"] == f"arn:aws:sqs:us-east-1:000000000000:{name}"
    assert attributes["MessageRetentionPeriod"] == "3600"
    assert attributes["VisibilityTimeout"] == "30"
    assert attributes["DelaySeconds"] == "0"
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "0"
    assert attributes["MaximumMessageSize"] == "262144"
    assert int(attributes["CreatedTimestamp"]) <= int(attributes["LastModifiedTimestamp"])
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=url)
    only = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds"])
    assert only["Attributes"] == {"DelaySeconds": "0"}

    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": "120", "DelaySeconds": "0"}
    )
    changed = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert changed["Attributes"] == {"VisibilityTimeout": "120"}

    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(4)]
    )
    sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=600)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    assert counts(sqs, url) == (3, 1, 1)
    sqs.purge_queue(QueueUrl=url)
    assert counts(sqs, url) == (0, 0, 0)


def test_python_callers_use_node_queues(sqs: Any, server: ServerThread) -> None:
    queues = server.node.queues
    name = f"py-{uuid.uuid4().hex[:8]}"
    url = server.call(queues.create_queue(name))
    sent = server.call(queues.send_message(queues.queue_arn(name), "from python"))
    (received,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert received["MessageId"] == sent.message_id
    sqs.send_message(QueueUrl=url, MessageBody="from boto3")
    (message,) = server.call(queues.receive_messages(name, wait_time_s=0))
    assert message.body == "from boto3"
    server.call(queues.delete_message(url, message.receipt_handle))
    server.call(queues.delete_queue(url))


def test_messages_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ServerThread(data_dir=data_dir) as first:
        sqs = boto_client(first.url, "sqs")
        url = sqs.create_queue(QueueName="durable", Attributes={"VisibilityTimeout": "77"})[
            "QueueUrl"
        ]
        sent = sqs.send_message(
            QueueUrl=url,
            MessageBody="still here",
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )
        sqs.close()
    with ServerThread(data_dir=data_dir) as second:
        sqs = boto_client(second.url, "sqs")
        url = sqs.get_queue_url(QueueName="durable")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
        assert attributes["Attributes"] == {"VisibilityTimeout": "77"}
        (message,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
        assert message["MessageId"] == sent["MessageId"]
        assert message["Body"] == "still here"
        assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
        sqs.close()


def test_a_node_on_the_memory_store_serves_queues(tmp_path: Path) -> None:
    with ServerThread(data_dir=tmp_path, store_url="memory") as running:
        sqs = boto_client(running.url, "sqs")
        url = sqs.create_queue(QueueName="in-memory")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="m", DelaySeconds=0)
        (message,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        assert counts(sqs, url) == (0, 0, 0)
        sqs.close()
