"""TagResource, UntagResource and ListTags through boto3, on a function's ARN."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdalet.testing import Deploy

ECHO = "import os\ndef handler(event, context):\n    return event\n"


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_tags_are_added_listed_and_removed(deploy: Deploy, lambda_client: Any) -> None:
    created = deploy(ECHO, Tags={"team": "data"})
    arn, revision = created["FunctionArn"], created["RevisionId"]
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "data"}
    lambda_client.tag_resource(Resource=arn, Tags={"stage": "prod", "team": "web"})
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "web", "stage": "prod"}
    got = lambda_client.get_function(FunctionName=arn)
    assert got["Tags"] == {"team": "web", "stage": "prod"}
    assert got["Configuration"]["RevisionId"] == revision  # tags are not configuration
    lambda_client.untag_resource(Resource=arn, TagKeys=["team", "absent"])
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"stage": "prod"}
    answer = lambda_client.invoke(FunctionName=arn, Payload=b'{"still": "runs"}')
    assert json.loads(answer["Payload"].read()) == {"still": "runs"}


def test_bad_tags_and_resources_are_refused(deploy: Deploy, lambda_client: Any) -> None:
    arn = deploy(ECHO)["FunctionArn"]
    code, message = error_of(lambda_client.tag_resource, Resource=arn, Tags={"aws:x": "1"})
    assert code == "InvalidParameterValueException" and "aws:" in message
    too_many = {f"k{i}": "v" for i in range(51)}
    code, message = error_of(lambda_client.tag_resource, Resource=arn, Tags=too_many)
    assert code == "InvalidParameterValueException" and "50" in message
    lambda_client.tag_resource(Resource=arn, Tags={f"k{i}": "v" for i in range(50)})
    code, _ = error_of(lambda_client.tag_resource, Resource=arn, Tags={"one": "more"})
    assert code == "InvalidParameterValueException"  # 51 in all
    code, _ = error_of(lambda_client.tag_resource, Resource=arn, Tags={"k": "v" * 257})
    assert code == "ValidationException"
    code, message = error_of(lambda_client.list_tags, Resource=arn + ":1")
    assert code == "InvalidParameterValueException" and "versions" in message
    code, _ = error_of(lambda_client.list_tags, Resource=arn.rsplit(":", 1)[0] + ":ghost")
    assert code == "ResourceNotFoundException"
    code, _ = error_of(lambda_client.list_tags, Resource="arn:aws:sqs:us-east-1:1:q")
    assert code == "ValidationException"
    code, _ = error_of(
        lambda_client.create_function,
        FunctionName="tagged-badly",
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/x",
        Handler="app.handler",
        Code={"ZipFile": b"PK"},
        Tags={"aws:reserved": "no"},
    )
    assert code == "InvalidParameterValueException"
    # Nothing of the refused calls was kept.
    assert len(lambda_client.list_tags(Resource=arn)["Tags"]) == 50
