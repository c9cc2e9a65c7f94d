"""Queue and topic destinations of asynchronous invocations, and DeadLetterConfig."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import ROLE, boto_client

from lambdalet.testing import ServerThread, make_zip

SUCCEEDS = "def handler(event, context):\n    return {'doubled': event['n'] * 2}\n"
FAILS = "def handler(event, context):\n    raise ValueError(f\"no good: {event['n']}\")\n"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node that retries failed async events after 50 ms (then 100 ms)."""
    with ServerThread(
        data_dir=tmp_path_factory.mktemp("destinations"),
        async_retry_delay_ms=50,
        sandbox_backend="process",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def clients(node: ServerThread) -> Iterator[tuple[Any, Any, Any]]:
    """(lambda, sqs, sns) clients of the node."""
    made = [boto_client(node.url, service) for service in ("lambda", "sqs", "sns")]
    yield made[0], made[1], made[2]
    for client in made:
        client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_function(lambda_client: Any, source: str, **settings: Any) -> str:
    name = unique("fn")
    lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
        **settings,
    )
    return name


def create_queue(sqs: Any) -> tuple[str, str]:
    url: str = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def receive_one(sqs: Any, url: str) -> dict[str, Any]:
    """The first message to arrive in a queue, waiting up to 30 s (a bound, not a timing)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
            message: dict[str, Any] = messages[0]
            return message
    raise AssertionError(f"nothing arrived in {url}")


def invoke_async(lambda_client: Any, name: str, payload: dict[str, Any]) -> str:
    response = lambda_client.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(payload)
    )
    assert response["StatusCode"] == 202
    request_id: str = response["ResponseMetadata"]["RequestId"]
    return request_id


def test_on_success_to_a_queue(clients: tuple[Any, Any, Any]) -> None:
    lambda_client, sqs, _ = clients
    name = create_function(lambda_client, SUCCEEDS)
    url, arn = create_queue(sqs)
    config = lambda_client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}}
    )
    assert config["DestinationConfig"]["OnSuccess"]["Destination"] == arn
    request_id = invoke_async(lambda_client, name, {"n": 21})
    record = json.loads(receive_one(sqs, url)["Body"])
    assert record["version"] == "1.0"
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["functionArn"].endswith(f":function:{name}:$LATEST")
    assert record["requestPayload"] == {"n": 21}
    assert record["responseContext"]["statusCode"] == 200
    assert record["responsePayload"] == {"doubled": 42}


def test_on_failure_to_a_topic_fanned_out_to_a_queue(clients: tuple[Any, Any, Any]) -> None:
    lambda_client, sqs, sns = clients
    name = create_function(lambda_client, FAILS)
    topic = sns.create_topic(Name=unique("failures"))["TopicArn"]
    url, queue_arn = create_queue(sqs)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    lambda_client.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": topic}},
    )
    request_id = invoke_async(lambda_client, name, {"n": 1})
    envelope = json.loads(receive_one(sqs, url)["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"] == topic
    record = json.loads(envelope["Message"])
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "no good: 1"


def test_dead_letter_queue_after_retries(clients: tuple[Any, Any, Any]) -> None:
    lambda_client, sqs, _ = clients
    url, arn = create_queue(sqs)
    name = create_function(lambda_client, FAILS, DeadLetterConfig={"TargetArn": arn})
    assert lambda_client.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {
        "TargetArn": arn
    }
    lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    request_id = invoke_async(lambda_client, name, {"n": 7})
    message = receive_one(sqs, url)
    assert json.loads(message["Body"]) == {"n": 7}  # the original event, as AWS sends it
    attributes = message["MessageAttributes"]
    assert attributes["RequestID"] == {"DataType": "String", "StringValue": request_id}
    assert attributes["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}
    assert attributes["ErrorMessage"] == {"DataType": "String", "StringValue": "no good: 7"}


def test_dead_letter_topic_and_its_removal(clients: tuple[Any, Any, Any]) -> None:
    lambda_client, sqs, sns = clients
    name = create_function(lambda_client, FAILS)
    topic = sns.create_topic(Name=unique("dead"))["TopicArn"]
    url, queue_arn = create_queue(sqs)
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    updated = lambda_client.update_function_configuration(
        FunctionName=name, DeadLetterConfig={"TargetArn": topic}
    )
    assert updated["DeadLetterConfig"] == {"TargetArn": topic}
    lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    request_id = invoke_async(lambda_client, name, {"n": 3})
    message = receive_one(sqs, url)
    assert json.loads(message["Body"]) == {"n": 3}
    assert message["MessageAttributes"]["RequestID"]["StringValue"] == request_id
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"] == "no good: 3"

    lambda_client.update_function_configuration(
        FunctionName=name, DeadLetterConfig={"TargetArn": ""}
    )
    assert "DeadLetterConfig" not in lambda_client.get_function_configuration(FunctionName=name)


def test_invalid_targets_are_refused(clients: tuple[Any, Any, Any]) -> None:
    lambda_client, _, _ = clients
    name = create_function(lambda_client, SUCCEEDS)
    for destination in (
        "arn:aws:s3:::bucket",
        "arn:aws:sqs:eu-west-1:000000000000:elsewhere",
        "arn:aws:sns:us-east-1:111111111111:other-account",
        "arn:aws:sqs:us-east-1:000000000000:a:b",
        "not-an-arn",
    ):
        with pytest.raises(ClientError) as raised:
            lambda_client.put_function_event_invoke_config(
                FunctionName=name, DestinationConfig={"OnFailure": {"Destination": destination}}
            )
        error = raised.value.response["Error"]
        assert error["Code"] == "InvalidParameterValueException", destination
        assert destination in error["Message"]
        assert "queues" in error["Message"]
    with pytest.raises(ClientError) as raised:
        lambda_client.update_function_configuration(
            FunctionName=name,
            DeadLetterConfig={
                "TargetArn": f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
            },
        )
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "a queue" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:
        create_function(lambda_client, SUCCEEDS, DeadLetterConfig={"TargetArn": "arn:aws:sqs:x"})
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_missing_target_is_logged_and_the_dispatcher_goes_on(
    clients: tuple[Any, Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    lambda_client, sqs, _ = clients
    missing = "arn:aws:sqs:us-east-1:000000000000:" + unique("never-created")
    missing_topic = "arn:aws:sns:us-east-1:000000000000:" + unique("never-created")
    broken = create_function(lambda_client, FAILS, DeadLetterConfig={"TargetArn": missing_topic})
    lambda_client.put_function_event_invoke_config(
        FunctionName=broken,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": missing}},
    )
    url, arn = create_queue(sqs)
    working = create_function(lambda_client, SUCCEEDS)
    lambda_client.put_function_event_invoke_config(
        FunctionName=working, DestinationConfig={"OnSuccess": {"Destination": arn}}
    )
    with caplog.at_level(logging.WARNING, logger="lambdalet.node"):
        broken_request = invoke_async(lambda_client, broken, {"n": 0})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logged = [r.getMessage() for r in caplog.records if broken_request in r.getMessage()]
            if len(logged) >= 2:
                break
            time.sleep(0.02)
        assert any(missing in line and "does not exist" in line for line in logged), logged
        assert any(missing_topic in line and "Topic does not exist" in line for line in logged)
    invoke_async(lambda_client, working, {"n": 5})
    assert json.loads(receive_one(sqs, url)["Body"])["responsePayload"] == {"doubled": 10}
