"""Versions and aliases through boto3: publishing, qualified invokes, weighted routing."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdalet.testing import Deploy, make_zip

SOURCE = """
def handler(event, context):
    return {"code": "%s", "arn": context.invoked_function_arn,
            "version": context.function_version}
"""


def code(label: str) -> bytes:
    return make_zip({"app.py": SOURCE % label})


def call(client: Any, name: str, qualifier: str | None = None) -> tuple[Any, Any]:
    extra = {"Qualifier": qualifier} if qualifier else {}
    response = client.invoke(FunctionName=name, Payload=b"{}", **extra)
    return json.loads(response["Payload"].read()), response


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_publish_and_invoke_versions(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(SOURCE % "one")["FunctionName"]
    v1 = lambda_client.publish_version(FunctionName=name, Description="first")
    assert v1["Version"] == "1"
    assert v1["FunctionArn"].endswith(f":function:{name}:1")
    assert v1["Description"] == "first"
    # Nothing changed: the same version comes back.
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"
    lambda_client.update_function_code(FunctionName=name, ZipFile=code("two"))
    latest = lambda_client.get_function(FunctionName=name)["Configuration"]
    with pytest.raises(ClientError) as caught:
        lambda_client.publish_version(FunctionName=name, CodeSha256="bm90IHRoaXM=")
    code_, status, message = error_of(caught)
    assert (code_, status) == ("InvalidParameterValueException", 400)
    assert "CodeSHA256" in message
    with pytest.raises(ClientError) as caught:
        lambda_client.publish_version(FunctionName=name, RevisionId="stale")
    assert error_of(caught)[:2] == ("PreconditionFailedException", 412)
    v2 = lambda_client.publish_version(FunctionName=name, CodeSha256=latest["CodeSha256"])
    assert v2["Version"] == "2"
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    lambda_client.update_function_code(FunctionName=name, ZipFile=code("three"))
    one, response = call(lambda_client, name, "1")
    assert one["code"] == "one" and one["version"] == "1"
    assert one["arn"].endswith(f":function:{name}:1")
    assert response["ExecutedVersion"] == "1"
    assert call(lambda_client, f"{name}:2")[0]["code"] == "two"
    assert call(lambda_client, name)[0]["code"] == "three"
    got = lambda_client.get_function(FunctionName=name, Qualifier="1")["Configuration"]
    assert got["Version"] == "1"
    assert got["CodeSha256"] == v1["CodeSha256"]
    everything = lambda_client.list_functions(FunctionVersion="ALL")["Functions"]
    assert {f["Version"] for f in everything if f["FunctionName"] == name} == {"$LATEST", "1", "2"}
    with pytest.raises(ClientError) as caught:
        call(lambda_client, name, "9")
    assert error_of(caught)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        lambda_client.update_function_code(FunctionName=f"{name}:1", ZipFile=code("x"))
    assert error_of(caught)[:2] == ("InvalidParameterValueException", 400)
    lambda_client.delete_function(FunctionName=name, Qualifier="1")
    with pytest.raises(ClientError) as caught:
        call(lambda_client, name, "1")
    assert error_of(caught)[:2] == ("ResourceNotFoundException", 404)
    assert call(lambda_client, name, "2")[0]["code"] == "two"


def test_aliases_and_weighted_routing(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(SOURCE % "blue")["FunctionName"]
    lambda_client.publish_version(FunctionName=name)
    lambda_client.update_function_code(FunctionName=name, ZipFile=code("green"))
    lambda_client.publish_version(FunctionName=name)
    alias = lambda_client.create_alias(
        FunctionName=name, Name="live", FunctionVersion="1", Description="prod"
    )
    assert alias["AliasArn"].endswith(f":function:{name}:live")
    with pytest.raises(ClientError) as caught:
        lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    assert error_of(caught)[:2] == ("ResourceConflictException", 409)
    result, response = call(lambda_client, name, "live")
    assert result["code"] == "blue"
    assert result["arn"].endswith(":live")
    assert response["ExecutedVersion"] == "1"
    updated = lambda_client.update_alias(
        FunctionName=name,
        Name="live",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
        RevisionId=alias["RevisionId"],
    )
    assert updated["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.3}
    with pytest.raises(ClientError) as caught:
        lambda_client.update_alias(FunctionName=name, Name="live", RevisionId="stale")
    assert error_of(caught)[:2] == ("PreconditionFailedException", 412)
    executed = Counter(call(lambda_client, name, "live")[1]["ExecutedVersion"] for _ in range(1000))
    assert set(executed) == {"1", "2"}
    assert abs(executed["2"] / 1000 - 0.3) <= 0.05
    listed = lambda_client.list_aliases(FunctionName=name)["Aliases"]
    assert [a["Name"] for a in listed] == ["live"]
    with pytest.raises(ClientError) as caught:
        lambda_client.delete_function(FunctionName=name, Qualifier="2")
    code_, status, message = error_of(caught)
    assert (code_, status) == ("ResourceConflictException", 409)
    assert "live" in message
    lambda_client.delete_alias(FunctionName=name, Name="live")
    with pytest.raises(ClientError) as caught:
        lambda_client.get_alias(FunctionName=name, Name="live")
    assert error_of(caught)[:2] == ("ResourceNotFoundException", 404)


def test_alias_mistakes(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(SOURCE % "x")["FunctionName"]
    lambda_client.publish_version(FunctionName=name)
    cases: list[tuple[dict[str, Any], str, int]] = [
        ({"Name": "42", "FunctionVersion": "1"}, "ValidationException", 400),
        ({"Name": "a", "FunctionVersion": "7"}, "ResourceNotFoundException", 404),
        (
            {
                "Name": "b",
                "FunctionVersion": "1",
                "RoutingConfig": {"AdditionalVersionWeights": {"1": 0.5}},
            },
            "InvalidParameterValueException",
            400,
        ),
    ]
    for arguments, expected_code, status in cases:
        with pytest.raises(ClientError) as caught:
            lambda_client.create_alias(FunctionName=name, **arguments)
        assert error_of(caught)[:2] == (expected_code, status), arguments


def test_async_invoke_of_a_version(deploy: Deploy, lambda_client: Any, tmp_path: Any) -> None:
    source = """
import pathlib
def handler(event, context):
    pathlib.Path(event["marker"]).write_text(context.function_version)
"""
    name = deploy(source)["FunctionName"]
    lambda_client.publish_version(FunctionName=name)
    marker = tmp_path / "ran"
    lambda_client.invoke(
        FunctionName=name,
        Qualifier="1",
        InvocationType="Event",
        Payload=json.dumps({"marker": str(marker)}),
    )
    import time

    deadline = time.monotonic() + 30
    # The file exists as soon as the handler opens it: wait for what it writes.
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "1"
