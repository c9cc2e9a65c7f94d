"""The SNS-compatible topics, through boto3's sns (and sqs, lambda) clients against a real node."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from botocore.exceptions import ClientError
from conftest import boto_client

from lambdalet.testing import Deploy, ServerThread, wait_for_file

# Writes the event it receives to <the directory the SNS message names>/<function name>.json.
WRITE_EVENT = """
import json, pathlib
def handler(event, context):
    directory = json.loads(event["Records"][0]["Sns"]["Message"])["out"]
    target = pathlib.Path(directory) / (context.function_name + ".json")
    target.with_suffix(".tmp").write_text(json.dumps(event))
    target.with_suffix(".tmp").rename(target)
"""


@pytest.fixture(scope="module")
def sns(server: ServerThread) -> Iterator[Any]:
    client = boto_client(server.url, "sns")
    yield client
    client.close()


@pytest.fixture(scope="module")
def raw_sns(server: ServerThread) -> Iterator[Any]:
    """An sns client that sends what it is given, to reach the server's own checks."""
    client = boto_client(server.url, "sns", parameter_validation=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def sqs(server: ServerThread) -> Iterator[Any]:
    client = boto_client(server.url, "sqs")
    yield client
    client.close()


@pytest.fixture
def make_topic(sns: Any) -> Iterator[Callable[..., str]]:
    """Create topics with fresh names; deleted after the test."""
    created: list[str] = []

    def create(**attributes: str) -> str:
        arn: str = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:12]}", Attributes=attributes)[
            "TopicArn"
        ]
        created.append(arn)
        return arn

    yield create
    for arn in created:
        sns.delete_topic(TopicArn=arn)


@pytest.fixture
def make_queue(sqs: Any) -> Iterator[Callable[[], tuple[str, str]]]:
    """Create queues with fresh names; (url, arn); deleted after the test."""
    created: list[str] = []

    def create() -> tuple[str, str]:
        url: str = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        created.append(url)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return url, arn

    yield create
    for url in created:
        with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
            sqs.delete_queue(QueueUrl=url)


def error_of(call: Callable[[], Any]) -> tuple[str, int, str]:
    """(code, HTTP status, message) of the error a call raises."""
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message in a queue now (deliveries are made before Publish answers)."""
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return found
        found += batch


def test_topic_lifecycle(sns: Any, server: ServerThread) -> None:
    name = f"life-{uuid.uuid4().hex[:8]}"
    arn = sns.create_topic(Name=name, Attributes={"DisplayName": "Life"})["TopicArn"]
    assert arn == f"arn:aws:sns:us-east-1:000000000000:{name}"
    assert sns.create_topic(Name=name)["TopicArn"] == arn  # idempotent
    assert sns.create_topic(Name=name, Attributes={"DisplayName": "Life"})["TopicArn"] == arn
    listed = [
        t["TopicArn"]
        for t in sns.get_paginator("list_topics").paginate().build_full_result()["Topics"]
    ]
    assert arn in listed
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["TopicArn"] == arn
    assert attributes["DisplayName"] == "Life"
    assert attributes["Owner"] == "000000000000"
    assert attributes["SubscriptionsConfirmed"] == "0"
    assert json.loads(attributes["Policy"])["Statement"][0]["Resource"] == arn
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="New")
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "New"
    sns.delete_topic(TopicArn=arn)
    code, status, message = error_of(lambda: sns.get_topic_attributes(TopicArn=arn))
    assert (code, status) == ("NotFound", 404)
    assert "Topic does not exist" in message
    sns.delete_topic(TopicArn=arn)  # deleting a topic that is not there is no error
    assert arn not in [t["TopicArn"] for t in sns.list_topics()["Topics"]]


def test_create_topic_errors(sns: Any, raw_sns: Any, make_topic: Callable[..., str]) -> None:
    code, status, message = error_of(lambda: sns.create_topic(Name="bad name!"))
    assert (code, status) == ("InvalidParameter", 400)
    assert "letters, digits" in message
    code, _, message = error_of(lambda: sns.create_topic(Name="orders.fifo"))
    assert code == "InvalidParameter" and "FIFO" in message
    code, _, message = error_of(
        lambda: sns.create_topic(Name="fifo-attr", Attributes={"FifoTopic": "true"})
    )
    assert code == "InvalidParameter" and "FIFO" in message
    code, _, message = error_of(lambda: sns.create_topic(Name="x", Attributes={"Color": "red"}))
    assert code == "InvalidParameter" and "Color" in message
    arn = make_topic(DisplayName="One")
    name = arn.rsplit(":", 1)[1]
    code, _, message = error_of(
        lambda: sns.create_topic(Name=name, Attributes={"DisplayName": "Two"})
    )
    assert code == "InvalidParameter" and "different attributes" in message
    code, _, _ = error_of(lambda: raw_sns.create_topic(Name=""))
    assert code == "InvalidParameter"
    code, status, _ = error_of(lambda: sns.get_topic_attributes(TopicArn="not-an-arn"))
    assert (code, status) == ("InvalidParameter", 400)
    code, _, message = error_of(
        lambda: sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue="{")
    )
    assert code == "InvalidParameter" and "JSON" in message


def test_list_topics_pages(sns: Any, server: ServerThread) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    arns = [sns.create_topic(Name=f"{prefix}-{i:03d}")["TopicArn"] for i in range(101)]
    try:
        first = sns.list_topics()
        assert len(first["Topics"]) == 100
        assert "NextToken" in first
        second = sns.list_topics(NextToken=first["NextToken"])
        listed = [t["TopicArn"] for t in first["Topics"] + second["Topics"]]
        assert set(arns) <= set(listed)
        assert len(listed) == len(set(listed))
        code, _, _ = error_of(lambda: sns.list_topics(NextToken="%%%"))
        assert code == "InvalidParameter"
    finally:
        for arn in arns:
            sns.delete_topic(TopicArn=arn)


def test_subscriptions(
    sns: Any, make_topic: Callable[..., str], make_queue: Callable[[], tuple[str, str]]
) -> None:
    topic = make_topic()
    _, queue_arn = make_queue()
    function_arn = "arn:aws:lambda:us-east-1:000000000000:function:somewhere"
    to_queue = sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    assert to_queue.startswith(topic + ":")
    assert (
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
        == to_queue
    )  # the same endpoint again: the same subscription
    to_function = sns.subscribe(
        TopicArn=topic,
        Protocol="lambda",
        Endpoint=function_arn,
        Attributes={"FilterPolicy": json.dumps({"kind": ["a"]})},
    )["SubscriptionArn"]
    by_topic = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sorted(s["SubscriptionArn"] for s in by_topic) == sorted([to_queue, to_function])
    assert {s["Protocol"]: s["Endpoint"] for s in by_topic} == {
        "sqs": queue_arn,
        "lambda": function_arn,
    }
    everything = sns.get_paginator("list_subscriptions").paginate().build_full_result()
    assert {to_queue, to_function} <= {s["SubscriptionArn"] for s in everything["Subscriptions"]}
    attributes = sns.get_subscription_attributes(SubscriptionArn=to_function)["Attributes"]
    assert attributes["Protocol"] == "lambda"
    assert attributes["TopicArn"] == topic
    assert attributes["PendingConfirmation"] == "false"
    assert json.loads(attributes["FilterPolicy"]) == {"kind": ["a"]}
    assert attributes["FilterPolicyScope"] == "MessageAttributes"
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["SubscriptionsConfirmed"] == "2"

    sns.set_subscription_attributes(
        SubscriptionArn=to_queue, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    sns.set_subscription_attributes(
        SubscriptionArn=to_queue, AttributeName="FilterPolicyScope", AttributeValue="MessageBody"
    )
    sns.set_subscription_attributes(
        SubscriptionArn=to_queue,
        AttributeName="FilterPolicy",
        AttributeValue=json.dumps({"order": {"total": [{"numeric": [">", 10]}]}}),
    )
    attributes = sns.get_subscription_attributes(SubscriptionArn=to_queue)["Attributes"]
    assert attributes["RawMessageDelivery"] == "true"
    assert attributes["FilterPolicyScope"] == "MessageBody"
    sns.set_subscription_attributes(
        SubscriptionArn=to_function, AttributeName="FilterPolicy", AttributeValue=""
    )
    attributes = sns.get_subscription_attributes(SubscriptionArn=to_function)["Attributes"]
    assert "FilterPolicy" not in attributes

    sns.unsubscribe(SubscriptionArn=to_function)
    code, status, _ = error_of(lambda: sns.get_subscription_attributes(SubscriptionArn=to_function))
    assert (code, status) == ("NotFound", 404)
    code, status, _ = error_of(lambda: sns.unsubscribe(SubscriptionArn=to_function))
    assert (code, status) == ("NotFound", 404)
    sns.delete_topic(TopicArn=topic)  # takes its subscriptions with it
    code, _, _ = error_of(lambda: sns.get_subscription_attributes(SubscriptionArn=to_queue))
    assert code == "NotFound"
    assert to_queue not in [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]


def test_subscription_errors(
    sns: Any, make_topic: Callable[..., str], make_queue: Callable[[], tuple[str, str]]
) -> None:
    topic = make_topic()
    _, queue_arn = make_queue()
    function_arn = "arn:aws:lambda:us-east-1:000000000000:function:f"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"Protocol": "email", "Endpoint": "a@example.com"}, "lambda and sqs"),
        ({"Protocol": "sqs", "Endpoint": "https://example.com/queue"}, "not a queue ARN"),
        ({"Protocol": "lambda", "Endpoint": queue_arn}, "not a function ARN"),
        (
            {
                "Protocol": "lambda",
                "Endpoint": function_arn,
                "Attributes": {"RawMessageDelivery": "true"},
            },
            "does not support raw message delivery",
        ),
        (
            {"Protocol": "sqs", "Endpoint": queue_arn, "Attributes": {"RawMessageDelivery": "yes"}},
            "Must be true or false",
        ),
        (
            {"Protocol": "sqs", "Endpoint": queue_arn, "Attributes": {"FilterPolicy": "{"}},
            "FilterPolicy: failed to parse JSON",
        ),
        (
            {
                "Protocol": "sqs",
                "Endpoint": queue_arn,
                "Attributes": {"FilterPolicy": json.dumps({"a": [{"bogus": 1}]})},
            },
            "unrecognized match type bogus",
        ),
        (
            {
                "Protocol": "sqs",
                "Endpoint": queue_arn,
                "Attributes": {"FilterPolicy": json.dumps({"a": {"b": ["c"]}})},
            },
            "nested keys are allowed only with FilterPolicyScope MessageBody",
        ),
        (
            {"Protocol": "sqs", "Endpoint": queue_arn, "Attributes": {"FilterPolicyScope": "All"}},
            "FilterPolicyScope",
        ),
        ({"Protocol": "sqs", "Endpoint": queue_arn, "Attributes": {"Color": "red"}}, "Color"),
    ]
    for arguments, expected in cases:
        code, status, message = error_of(partial(sns.subscribe, TopicArn=topic, **arguments))
        assert (code, status) == ("InvalidParameter", 400), arguments
        assert expected in message, (arguments, message)
    missing = topic + "-missing"
    code, status, _ = error_of(
        lambda: sns.subscribe(TopicArn=missing, Protocol="sqs", Endpoint=queue_arn)
    )
    assert (code, status) == ("NotFound", 404)
    code, _, _ = error_of(lambda: sns.list_subscriptions_by_topic(TopicArn=missing))
    assert code == "NotFound"
    code, status, _ = error_of(lambda: sns.get_subscription_attributes(SubscriptionArn="nope"))
    assert (code, status) == ("InvalidParameter", 400)
    arn = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    code, _, message = error_of(
        lambda: sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
    )
    assert code == "InvalidParameter" and "different attributes" in message
    code, _, message = error_of(
        lambda: sns.set_subscription_attributes(
            SubscriptionArn=arn,
            AttributeName="FilterPolicy",
            AttributeValue=json.dumps({"n": [{"numeric": [">", 5, "<", 1]}]}),
        )
    )
    assert code == "InvalidParameter" and "bottom must be less than the top" in message


def test_fan_out_to_two_functions_and_a_queue(
    sns: Any,
    sqs: Any,
    deploy: Deploy,
    make_topic: Callable[..., str],
    make_queue: Callable[[], tuple[str, str]],
    tmp_path: Path,
) -> None:
    topic = make_topic()
    first = deploy(WRITE_EVENT)["FunctionArn"]
    second = deploy(WRITE_EVENT)["FunctionArn"]
    queue_url, queue_arn = make_queue()
    subscriptions = {
        endpoint: sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint)[
            "SubscriptionArn"
        ]
        for protocol, endpoint in (("lambda", first), ("lambda", second), ("sqs", queue_arn))
    }
    message = json.dumps({"out": str(tmp_path)})
    message_id = sns.publish(
        TopicArn=topic,
        Message=message,
        Subject="Greetings",
        MessageAttributes={
            "color": {"DataType": "String", "StringValue": "blue"},
            "size": {"DataType": "Number", "StringValue": "3"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )["MessageId"]
    for function_arn in (first, second):
        name = function_arn.rsplit(":", 1)[1]
        event = json.loads(wait_for_file(tmp_path / f"{name}.json"))
        record = SNSEvent(event).record
        assert record.event_source == "aws:sns"
        assert record.event_version == "1.0"
        assert record.event_subscription_arn == subscriptions[function_arn]
        assert record.sns.message_id == message_id
        assert record.sns.message == message
        assert record.sns.subject == "Greetings"
        assert record.sns.topic_arn == topic
        assert record.sns.get_type == "Notification"
        assert record.sns.message_attributes["color"].get_type == "String"
        assert record.sns.message_attributes["color"].value == "blue"
        assert record.sns.message_attributes["size"].get_type == "Number"
        assert record.sns.message_attributes["size"].value == "3"
        assert record.sns.message_attributes["blob"].value == "AAE="
        assert record.sns.signature_version == "1"
        assert record.sns.timestamp.endswith("Z")
        assert subscriptions[function_arn] in record.sns.unsubscribe_url
        assert record.sns.signing_cert_url

    (delivered,) = drain(sqs, queue_url)
    envelope = json.loads(delivered["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == message_id
    assert envelope["TopicArn"] == topic
    assert envelope["Subject"] == "Greetings"
    assert envelope["Message"] == message
    assert envelope["MessageAttributes"]["color"] == {"Type": "String", "Value": "blue"}
    assert envelope["MessageAttributes"]["size"] == {"Type": "Number", "Value": "3"}
    assert {"SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL"} <= set(envelope)
    assert "MessageAttributes" not in delivered  # only raw delivery copies them


def test_a_notification_without_subject_or_attributes(
    sns: Any, deploy: Deploy, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    arn = deploy(WRITE_EVENT)["FunctionArn"]
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=arn)
    sns.publish(TopicArn=topic, Message=json.dumps({"out": str(tmp_path)}))
    event = json.loads(wait_for_file(tmp_path / (arn.rsplit(":", 1)[1] + ".json")))
    assert event["Records"][0]["Sns"]["Subject"] is None
    assert event["Records"][0]["Sns"]["MessageAttributes"] == {}
    assert SNSEvent(event).sns_message == json.dumps({"out": str(tmp_path)})


def test_raw_delivery_to_a_queue(
    sns: Any,
    sqs: Any,
    make_topic: Callable[..., str],
    make_queue: Callable[[], tuple[str, str]],
) -> None:
    topic = make_topic()
    url, arn = make_queue()
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    sns.publish(
        TopicArn=topic,
        Message="just the text",
        MessageAttributes={
            "tags": {"DataType": "String.Array", "StringValue": '["a", "b"]'},
            "n": {"DataType": "Number", "StringValue": "7"},
        },
    )
    (message,) = drain(sqs, url)
    assert message["Body"] == "just the text"
    assert message["MessageAttributes"]["n"] == {"DataType": "Number", "StringValue": "7"}
    assert message["MessageAttributes"]["tags"]["StringValue"] == '["a", "b"]'


def test_message_structure_json(
    sns: Any,
    sqs: Any,
    make_topic: Callable[..., str],
    make_queue: Callable[[], tuple[str, str]],
) -> None:
    topic = make_topic()
    url, arn = make_queue()
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    sns.publish(
        TargetArn=topic,
        MessageStructure="json",
        Message=json.dumps({"default": "for everyone", "sqs": "for queues"}),
    )
    sns.publish(
        TopicArn=topic, MessageStructure="json", Message=json.dumps({"default": "fallback"})
    )
    bodies = [json.loads(m["Body"])["Message"] for m in drain(sqs, url)]
    assert sorted(bodies) == ["fallback", "for queues"]


def test_filter_policy_end_to_end(
    sns: Any,
    sqs: Any,
    make_topic: Callable[..., str],
    make_queue: Callable[[], tuple[str, str]],
) -> None:
    topic = make_topic()
    by_attributes_url, by_attributes_arn = make_queue()
    by_body_url, by_body_arn = make_queue()
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=by_attributes_arn,
        Attributes={
            "RawMessageDelivery": "true",
            "FilterPolicy": json.dumps(
                {"store": ["example_corp"], "price": [{"numeric": [">=", 100]}]}
            ),
        },
    )
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=by_body_arn,
        Attributes={
            "RawMessageDelivery": "true",
            "FilterPolicyScope": "MessageBody",
            "FilterPolicy": json.dumps({"order": {"kind": [{"prefix": "gift"}]}}),
        },
    )

    def publish(body: dict[str, Any], store: str, price: str) -> None:
        sns.publish(
            TopicArn=topic,
            Message=json.dumps(body),
            MessageAttributes={
                "store": {"DataType": "String", "StringValue": store},
                "price": {"DataType": "Number", "StringValue": price},
            },
        )

    publish({"id": 1, "order": {"kind": "gift-card"}}, "example_corp", "150")
    publish({"id": 2, "order": {"kind": "book"}}, "example_corp", "50")
    publish({"id": 3, "order": {"kind": "giftwrap"}}, "other", "500")
    by_attributes = sorted(json.loads(m["Body"])["id"] for m in drain(sqs, by_attributes_url))
    by_body = sorted(json.loads(m["Body"])["id"] for m in drain(sqs, by_body_url))
    assert by_attributes == [1]
    assert by_body == [1, 3]


def test_publish_errors(sns: Any, raw_sns: Any, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    code, status, message = error_of(lambda: raw_sns.publish(TopicArn=topic, Message=""))
    assert (code, status) == ("InvalidParameter", 400) and "Empty message" in message
    code, status, message = error_of(lambda: sns.publish(TopicArn=topic + "-gone", Message="x"))
    assert (code, status) == ("NotFound", 404)
    code, _, message = error_of(lambda: raw_sns.publish(Message="x"))
    assert code == "InvalidParameter" and "TopicArn or TargetArn" in message
    code, status, message = error_of(
        lambda: sns.publish(
            TopicArn=topic,
            Message="x",
            MessageAttributes={"n": {"DataType": "Number", "StringValue": "seven"}},
        )
    )
    assert (code, status) == ("ParameterValueInvalid", 400)
    assert "Could not cast message attribute 'n' value to number" in message
    code, _, message = error_of(
        lambda: sns.publish(
            TopicArn=topic,
            Message="x",
            MessageAttributes={"t": {"DataType": "Decimal", "StringValue": "1"}},
        )
    )
    assert code == "ParameterValueInvalid" and "supported type prefixes" in message
    code, _, message = error_of(
        lambda: sns.publish(
            TopicArn=topic,
            Message="x",
            MessageAttributes={"a": {"DataType": "String.Array", "StringValue": "a, b"}},
        )
    )
    assert code == "ParameterValueInvalid" and "JSON array" in message
    code, _, message = error_of(
        lambda: sns.publish(
            TopicArn=topic,
            Message="x",
            MessageAttributes={
                f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)
            },
        )
    )
    assert code == "ParameterValueInvalid" and "exceeds the allowed maximum [10]" in message
    code, _, message = error_of(
        lambda: sns.publish(TopicArn=topic, Message="x", MessageStructure="json")
    )
    assert code == "InvalidParameter" and "failed to parse" in message
    code, _, message = error_of(
        lambda: sns.publish(
            TopicArn=topic, Message=json.dumps({"sqs": "x"}), MessageStructure="json"
        )
    )
    assert code == "InvalidParameter" and "No default entry" in message
    code, _, message = error_of(
        lambda: sns.publish(TopicArn=topic, Message="x", Subject="line\nbreak")
    )
    assert code == "InvalidParameter" and "Subject" in message
    code, _, message = error_of(lambda: sns.publish(TopicArn=topic, Message="x" * 262_145))
    assert code == "InvalidParameter" and "Message too long" in message
    code, _, message = error_of(
        lambda: sns.publish(TopicArn=topic, TargetArn=topic + "x", Message="x")
    )
    assert code == "InvalidParameter" and "Only one of TargetArn or TopicArn" in message


def test_publish_batch(
    sns: Any,
    sqs: Any,
    raw_sns: Any,
    make_topic: Callable[..., str],
    make_queue: Callable[[], tuple[str, str]],
) -> None:
    topic = make_topic()
    url, arn = make_queue()
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    result = sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[
            {"Id": "one", "Message": "first"},
            {
                "Id": "two",
                "Message": "second",
                "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
            },
            {
                "Id": "bad",
                "Message": "third",
                "MessageAttributes": {"k": {"DataType": "Number", "StringValue": "v"}},
            },
        ],
    )
    assert sorted(entry["Id"] for entry in result["Successful"]) == ["one", "two"]
    assert all(entry["MessageId"] for entry in result["Successful"])
    (failure,) = result["Failed"]
    assert failure["Id"] == "bad"
    assert failure["Code"] == "ParameterValueInvalid"
    assert failure["SenderFault"] is True
    assert "number" in failure["Message"]
    assert sorted(m["Body"] for m in drain(sqs, url)) == ["first", "second"]

    code, status, _ = error_of(
        lambda: raw_sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[])
    )
    assert (code, status) == ("EmptyBatchRequest", 400)
    code, _, _ = error_of(
        lambda: sns.publish_batch(
            TopicArn=topic,
            PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": "m"} for i in range(11)],
        )
    )
    assert code == "TooManyEntriesInBatchRequest"
    code, _, _ = error_of(
        lambda: sns.publish_batch(
            TopicArn=topic,
            PublishBatchRequestEntries=[{"Id": "same", "Message": "m"}] * 2,
        )
    )
    assert code == "BatchEntryIdsNotDistinct"
    code, _, _ = error_of(
        lambda: sns.publish_batch(
            TopicArn=topic, PublishBatchRequestEntries=[{"Id": "not ok!", "Message": "m"}]
        )
    )
    assert code == "InvalidBatchEntryId"
    code, _, _ = error_of(
        lambda: sns.publish_batch(
            TopicArn=topic,
            PublishBatchRequestEntries=[
                {"Id": f"e{i}", "Message": "m" * 100_000} for i in range(3)
            ],
        )
    )
    assert code == "BatchRequestTooLong"
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.publish_batch(
            TopicArn=topic + "-gone", PublishBatchRequestEntries=[{"Id": "a", "Message": "m"}]
        )


def test_delivery_to_a_queue_that_is_gone_is_skipped(
    sns: Any,
    sqs: Any,
    make_topic: Callable[..., str],
    make_queue: Callable[[], tuple[str, str]],
) -> None:
    topic = make_topic()
    gone_url, gone_arn = make_queue()
    url, arn = make_queue()
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=gone_arn)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    sqs.delete_queue(QueueUrl=gone_url)
    assert sns.publish(TopicArn=topic, Message="still delivered")["MessageId"]
    (message,) = drain(sqs, url)
    assert json.loads(message["Body"])["Message"] == "still delivered"


def test_errors_on_the_wire(server: ServerThread, sqs: Any) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = httpx.post(
        server.url + "/",
        content="Action=GetTopicAttributes&Version=2010-03-31&TopicArn="
        "arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3Anowhere",
        headers=form,
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/xml")
    text = response.text
    assert text.startswith('<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">')
    assert "<Type>Sender</Type><Code>NotFound</Code>" in text
    assert "<RequestId>" in text
    response = httpx.post(server.url + "/", content="Action=ConfirmSubscription", headers=form)
    assert response.status_code == 400
    assert "<Code>InvalidAction</Code>" in response.text
    response = httpx.post(server.url + "/", content="Version=2010-03-31", headers=form)
    assert response.status_code == 400
    assert "<Code>InvalidParameter</Code>" in response.text
    response = httpx.post(server.url + "/", content="Action=ListTopics", headers=form)
    assert response.status_code == 200
    assert response.text.startswith(
        '<ListTopicsResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
        "<ListTopicsResult><Topics>"
    )
    assert "<ResponseMetadata><RequestId>" in response.text
    # SQS's AWS JSON protocol on the same path keeps working.
    name = f"wire-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    sqs.delete_queue(QueueUrl=url)


def test_topics_and_subscriptions_survive_a_restart(tmp_path: Path) -> None:
    queue_arn = "arn:aws:sqs:us-east-1:000000000000:kept"
    with ServerThread(data_dir=tmp_path) as first:
        client = boto_client(first.url, "sns")
        topic = client.create_topic(Name="kept", Attributes={"DisplayName": "Kept"})["TopicArn"]
        subscription = client.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)[
            "SubscriptionArn"
        ]
        client.close()
    with ServerThread(data_dir=tmp_path) as second:
        client = boto_client(second.url, "sns")
        assert client.get_topic_attributes(TopicArn=topic)["Attributes"]["DisplayName"] == "Kept"
        (found,) = client.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert found["SubscriptionArn"] == subscription
        assert found["Endpoint"] == queue_arn
        client.close()
