"""Layers through boto3: publishing, listing, permissions, and functions that use them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdalet.testing import Deploy, make_zip

EXECUTABLE = 0o100755


def fresh_layer_name(lambda_client: Any) -> Iterator[str]:
    """A fresh layer name; its versions are deleted after the test."""
    name = f"layer-{uuid.uuid4().hex[:10]}"
    yield name
    for version in lambda_client.list_layer_versions(LayerName=name)["LayerVersions"]:
        lambda_client.delete_layer_version(LayerName=name, VersionNumber=version["Version"])


layer_name = pytest.fixture(fresh_layer_name, name="layer_name")
other_layer_name = pytest.fixture(fresh_layer_name, name="other_layer_name")


def publish(client: Any, name: str, files: dict[str, str | bytes], **kwargs: Any) -> Any:
    modes = {path: EXECUTABLE for path in files if path.startswith("bin/")}
    return client.publish_layer_version(
        LayerName=name, Content={"ZipFile": make_zip(files, modes=modes)}, **kwargs
    )


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_publish_get_list_delete(lambda_client: Any, layer_name: str) -> None:
    first = publish(
        lambda_client,
        layer_name,
        {"python/util.py": "X = 1\n"},
        Description="helpers",
        CompatibleRuntimes=["python3.11"],
        LicenseInfo="MIT",
    )
    assert first["Version"] == 1
    assert first["LayerArn"] == f"arn:aws:lambda:us-east-1:000000000000:layer:{layer_name}"
    assert first["LayerVersionArn"] == first["LayerArn"] + ":1"
    assert first["Content"]["CodeSize"] > 0
    assert first["CompatibleRuntimes"] == ["python3.11"]
    second = publish(lambda_client, layer_name, {"python/util.py": "X = 2\n"})
    assert second["Version"] == 2
    got = lambda_client.get_layer_version(LayerName=layer_name, VersionNumber=1)
    assert got["Description"] == "helpers"
    assert got["LicenseInfo"] == "MIT"
    assert got["Content"]["CodeSha256"] == first["Content"]["CodeSha256"]
    by_arn = lambda_client.get_layer_version_by_arn(Arn=second["LayerVersionArn"])
    assert by_arn["Version"] == 2
    versions = lambda_client.list_layer_versions(LayerName=layer_name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    layers = lambda_client.list_layers()["Layers"]
    mine = [layer for layer in layers if layer["LayerName"] == layer_name]
    assert mine[0]["LatestMatchingVersion"]["Version"] == 2
    python_layers = lambda_client.list_layers(CompatibleRuntime="python3.11")["Layers"]
    assert layer_name not in {layer["LayerName"] for layer in python_layers}  # v2 has none
    lambda_client.delete_layer_version(LayerName=layer_name, VersionNumber=2)
    with pytest.raises(ClientError) as caught:
        lambda_client.get_layer_version(LayerName=layer_name, VersionNumber=2)
    assert error_of(caught)[:2] == ("ResourceNotFoundException", 404)
    third = publish(lambda_client, layer_name, {"a.txt": "3"})
    assert third["Version"] == 3  # numbers are never reused


def test_layer_permissions(lambda_client: Any, layer_name: str) -> None:
    publish(lambda_client, layer_name, {"a.txt": "a"})
    with pytest.raises(ClientError) as caught:
        lambda_client.get_layer_version_policy(LayerName=layer_name, VersionNumber=1)
    assert error_of(caught)[:2] == ("ResourceNotFoundException", 404)
    added = lambda_client.add_layer_version_permission(
        LayerName=layer_name,
        VersionNumber=1,
        StatementId="everyone",
        Action="lambda:GetLayerVersion",
        Principal="*",
    )
    assert json.loads(added["Statement"])["Sid"] == "everyone"
    with pytest.raises(ClientError) as caught:
        lambda_client.add_layer_version_permission(
            LayerName=layer_name,
            VersionNumber=1,
            StatementId="everyone",
            Action="lambda:GetLayerVersion",
            Principal="*",
        )
    code, status, message = error_of(caught)
    assert (code, status) == ("ResourceConflictException", 409)
    assert "already exists" in message
    policy = lambda_client.get_layer_version_policy(LayerName=layer_name, VersionNumber=1)
    assert json.loads(policy["Policy"])["Statement"][0]["Action"] == "lambda:GetLayerVersion"
    assert policy["RevisionId"] == added["RevisionId"]
    lambda_client.remove_layer_version_permission(
        LayerName=layer_name, VersionNumber=1, StatementId="everyone"
    )
    with pytest.raises(ClientError) as caught:
        lambda_client.remove_layer_version_permission(
            LayerName=layer_name, VersionNumber=1, StatementId="everyone"
        )
    assert error_of(caught)[:2] == ("ResourceNotFoundException", 404)


PROBE = """
import subprocess
import util, vendored

def handler(event, context):
    tool = subprocess.run(["layer-tool"], capture_output=True, text=True).stdout.strip()
    return {"util": util.X, "vendored": vendored.NAME, "tool": tool,
            "shared": open(util.SHARED).read()}
"""


def test_function_sees_layers_in_order(
    deploy: Deploy, lambda_client: Any, layer_name: str, other_layer_name: str
) -> None:
    base = publish(
        lambda_client,
        layer_name,
        {
            "python/util.py": (
                "import os\nX = 'base'\n"
                "SHARED = os.path.join(os.path.dirname(__file__), '..', 'shared.txt')\n"
            ),
            "python/lib/python3.11/site-packages/vendored.py": "NAME = 'site-packages'\n",
            "shared.txt": "from base",
            "bin/layer-tool": "#!/bin/sh\necho tool from base\n",
        },
    )
    over = publish(
        lambda_client,
        other_layer_name,
        {"shared.txt": "from override", "bin/layer-tool": "#!/bin/sh\necho tool from override\n"},
    )
    name = deploy(PROBE, Layers=[base["LayerVersionArn"], over["LayerVersionArn"]])["FunctionName"]
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert [layer["Arn"] for layer in config["Layers"]] == [
        base["LayerVersionArn"],
        over["LayerVersionArn"],
    ]
    result = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())
    assert result == {
        "util": "base",
        "vendored": "site-packages",
        "tool": "tool from override",
        "shared": "from override",
    }
    # Deleting a layer version does not break a function that uses it.
    lambda_client.delete_layer_version(LayerName=layer_name, VersionNumber=1)
    lambda_client.update_function_configuration(FunctionName=name, Description="restart")
    again = json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())
    assert again["util"] == "base"


def test_layer_mistakes_are_refused(
    deploy: Deploy, lambda_client: Any, raw_client: Any, layer_name: str
) -> None:
    arn = publish(lambda_client, layer_name, {"a.txt": "a"})["LayerVersionArn"]
    second = publish(lambda_client, layer_name, {"b.txt": "b"})["LayerVersionArn"]
    source = "def handler(e, c):\n    return 1\n"
    cases = [
        ([arn.rsplit(":", 1)[0] + ":99"], "InvalidParameterValueException", "does not exist"),
        ([arn, second], "InvalidParameterValueException", "same layer"),
        ([arn] * 6, "InvalidParameterValueException", "more than 5 layers"),
        (["not-an-arn"], "ValidationException", "layer version ARN"),
    ]
    for layers, code, fragment in cases:
        with pytest.raises(ClientError) as caught:
            deploy(source, Layers=layers)
        found_code, status, message = error_of(caught)
        assert (found_code, status) == (code, 400), layers
        assert fragment in message
    with pytest.raises(ClientError) as caught:
        raw_client.publish_layer_version(LayerName=layer_name, Content={"ZipFile": b"nope"})
    assert error_of(caught)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as caught:
        raw_client.publish_layer_version(LayerName="bad name!", Content={"ZipFile": b"x"})
    assert error_of(caught)[:2] == ("ValidationException", 400)


def test_code_and_layers_together_must_fit_the_unzipped_limit(
    deploy: Deploy, lambda_client: Any, layer_name: str
) -> None:
    # Zeros compress to almost nothing: 150 MB + 120 MB unzipped are small zips.
    big_layer = publish(lambda_client, layer_name, {"data/zeros.bin": bytes(150 * 1024 * 1024)})
    with pytest.raises(ClientError) as caught:
        deploy(
            "def handler(e, c):\n    return 1\n",
            files={"zeros.bin": bytes(120 * 1024 * 1024)},
            Layers=[big_layer["LayerVersionArn"]],
        )
    code, status, message = error_of(caught)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "Function code combined with layers exceeds the maximum allowed size" in message
