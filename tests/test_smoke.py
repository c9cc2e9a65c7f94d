"""The first thing a user does: create a function and invoke it with boto3."""

from __future__ import annotations

import json
from typing import Any

from lambdalet.testing import Deploy

HELLO = """
def handler(event, context):
    print("hello from the handler")
    return {"greeting": "hello " + event["name"]}
"""


def test_create_and_invoke(deploy: Deploy, lambda_client: Any) -> None:
    created = deploy(HELLO)
    assert created["State"] == "Active"
    response = lambda_client.invoke(
        FunctionName=created["FunctionName"], Payload=json.dumps({"name": "Ada"}), LogType="Tail"
    )
    assert response["StatusCode"] == 200
    assert json.loads(response["Payload"].read()) == {"greeting": "hello Ada"}
