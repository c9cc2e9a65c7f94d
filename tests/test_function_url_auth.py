"""AWS_IAM function URLs (real SigV4 signatures) and the resource policy that opens them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from conftest import ROLE, boto_client

from lambdalet.config import Settings
from lambdalet.sigv4 import SignatureError, SignedRequest, verify
from lambdalet.testing import ServerThread, make_zip

OWN = Credentials("test", "test")
OTHER = Credentials("AKIAOTHER", "other-secret")
OTHER_ACCOUNT = "111122223333"
HANDLER = """
import json


def handler(event, context):
    return {"statusCode": 200, "body": json.dumps(event)}
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node that knows two accounts' keys."""
    data_dir: Path = tmp_path_factory.mktemp("lambdalet-auth")
    credentials = f"test:test:000000000000,AKIAOTHER:other-secret:{OTHER_ACCOUNT}"
    with ServerThread(data_dir=data_dir, sandbox_backend="process", credentials=credentials) as s:
        yield s


@pytest.fixture(scope="module")
def client(node: ServerThread) -> Any:
    return boto_client(node.url)


@pytest.fixture(scope="module")
def function(client: Any) -> Iterator[dict[str, Any]]:
    """A function with an AWS_IAM URL."""
    name = "iam-echo"
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})},
    )
    config: dict[str, Any] = client.create_function_url_config(
        FunctionName=name, AuthType="AWS_IAM"
    )
    config["Name"] = name
    yield config
    client.delete_function(FunctionName=name)


def send(
    node: ServerThread,
    function_url: str,
    path: str = "/",
    *,
    credentials: Credentials | None = None,
    method: str = "POST",
    body: bytes = b'{"x": 1}',
    presign: bool = False,
) -> httpx.Response:
    """Sign a request to the function URL as botocore does, send it over loopback."""
    url = function_url.rstrip("/") + path
    request = AWSRequest(method=method, url=url, data=body)
    if credentials is not None:
        if presign:
            SigV4QueryAuth(credentials, "lambda", "us-east-1", expires=60).add_auth(request)
        else:
            SigV4Auth(credentials, "lambda", "us-east-1").add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    target = f"{node.url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    headers = dict(prepared.headers.items())
    headers["host"] = parts.netloc
    return httpx.request(method, target, headers=headers, content=body, timeout=60)


def test_signed_request_runs_with_the_caller_in_the_event(
    node: ServerThread, function: dict[str, Any]
) -> None:
    response = send(node, function["FunctionUrl"], "/signed?a=1&b=x%2Fy", credentials=OWN)
    assert response.status_code == 200, response.text
    event = LambdaFunctionUrlEvent(json.loads(response.text))
    iam = event.request_context.authorizer.iam
    assert iam.access_key == "test"
    assert iam.account_id == "000000000000"
    assert iam.caller_id == "test"
    assert iam.user_arn == "arn:aws:iam::000000000000:root"
    assert event.request_context.account_id == "000000000000"
    assert event.query_string_parameters == {"a": "1", "b": "x/y"}


def test_presigned_url_runs(node: ServerThread, function: dict[str, Any]) -> None:
    response = send(
        node,
        function["FunctionUrl"],
        "/p?q=1",
        credentials=OWN,
        method="GET",
        presign=True,
        body=b"",
    )
    assert response.status_code == 200, response.text


def test_unsigned_and_badly_signed_requests_are_forbidden(
    node: ServerThread, function: dict[str, Any]
) -> None:
    unsigned = send(node, function["FunctionUrl"])
    assert (unsigned.status_code, unsigned.json()) == (403, {"Message": "Forbidden"})
    wrong_secret = send(node, function["FunctionUrl"], credentials=Credentials("test", "nope"))
    assert (wrong_secret.status_code, wrong_secret.json()) == (403, {"Message": "Forbidden"})
    unknown_key = send(node, function["FunctionUrl"], credentials=Credentials("AKIANOBODY", "x"))
    assert unknown_key.status_code == 403
    # A valid signature over a different body.
    url = function["FunctionUrl"]
    request = AWSRequest(method="POST", url=url, data=b"signed body")
    SigV4Auth(OWN, "lambda", "us-east-1").add_auth(request)
    headers = dict(request.prepare().headers.items())
    headers["host"] = urlsplit(url).netloc
    tampered = httpx.post(f"{node.url}/", headers=headers, content=b"forged body")
    assert tampered.status_code == 403


def test_other_account_needs_a_permission(
    node: ServerThread, client: Any, function: dict[str, Any]
) -> None:
    name = function["Name"]
    assert send(node, function["FunctionUrl"], credentials=OTHER).status_code == 403
    added = client.add_permission(
        FunctionName=name,
        StatementId="other-account",
        Action="lambda:InvokeFunctionUrl",
        Principal=OTHER_ACCOUNT,
        FunctionUrlAuthType="AWS_IAM",
    )
    statement = json.loads(added["Statement"])
    assert statement == {
        "Sid": "other-account",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
        "Action": "lambda:InvokeFunctionUrl",
        "Resource": f"arn:aws:lambda:us-east-1:000000000000:function:{name}",
        "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
    }
    allowed = send(node, function["FunctionUrl"], credentials=OTHER)
    assert allowed.status_code == 200, allowed.text
    iam = json.loads(allowed.text)["requestContext"]["authorizer"]["iam"]
    assert iam["accountId"] == OTHER_ACCOUNT
    client.remove_permission(FunctionName=name, StatementId="other-account")
    assert send(node, function["FunctionUrl"], credentials=OTHER).status_code == 403


def test_a_statement_for_auth_type_none_does_not_open_an_iam_url(
    node: ServerThread, client: Any, function: dict[str, Any]
) -> None:
    client.add_permission(
        FunctionName=function["Name"],
        StatementId="public",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    try:
        assert send(node, function["FunctionUrl"], credentials=OTHER).status_code == 403
    finally:
        client.remove_permission(FunctionName=function["Name"], StatementId="public")


def test_policy_api(client: Any, function: dict[str, Any]) -> None:
    name = function["Name"]
    with pytest.raises(ClientError) as error:
        client.get_policy(FunctionName=name)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    client.add_permission(
        FunctionName=name,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::bucket",
        SourceAccount="000000000000",
    )
    policy = client.get_policy(FunctionName=name)
    document = json.loads(policy["Policy"])
    assert document["Version"] == "2012-10-17"
    [statement] = document["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"AWS:SourceAccount": "000000000000"},
        "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"},
    }
    assert policy["RevisionId"]

    with pytest.raises(ClientError) as error:
        client.add_permission(
            FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction", Principal="*"
        )
    assert error.value.response["Error"]["Code"] == "ResourceConflictException"
    with pytest.raises(ClientError) as error:
        client.add_permission(
            FunctionName=name,
            StatementId="x",
            Action="lambda:InvokeFunction",
            Principal="*",
            RevisionId="stale",
        )
    assert error.value.response["Error"]["Code"] == "PreconditionFailedException"
    with pytest.raises(ClientError) as error:
        client.add_permission(
            FunctionName=name, StatementId="bad", Action="s3:GetObject", Principal="*"
        )
    assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as error:
        client.remove_permission(FunctionName=name, StatementId="nope")
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "nope" in str(error.value)
    with pytest.raises(ClientError) as error:
        client.get_policy(FunctionName=name, Qualifier="missing")
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"

    client.remove_permission(FunctionName=name, StatementId="s3")
    with pytest.raises(ClientError) as error:
        client.get_policy(FunctionName=name)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_public_url_setting_names_the_public_host(tmp_path: Path) -> None:
    settings = Settings(public_url="https://lambda.example.com", data_dir=tmp_path)
    from lambdalet.api.function_urls import function_url
    from lambdalet.frontdoor.hosts import HostDispatch

    assert function_url(settings, "a" * 32) == (
        f"https://{'a' * 32}.lambda-url.us-east-1.lambda.example.com/"
    )
    dispatch = HostDispatch(
        None,  # type: ignore[arg-type]
        {"lambda-url": None},  # type: ignore[dict-item]
        region="us-east-1",
        public_host="lambda.example.com",
    )
    assert dispatch.match_host(f"{'a' * 32}.lambda-url.us-east-1.lambda.example.com") == (
        "lambda-url",
        "a" * 32,
    )
    assert dispatch.match_host(f"{'a' * 32}.lambda-url.us-east-1.localhost:9000") == (
        "lambda-url",
        "a" * 32,
    )
    assert dispatch.match_host("lambda.example.com") is None
    assert dispatch.match_host(f"{'a' * 32}.execute-api.us-east-1.localhost") is None
    assert dispatch.match_host(f"{'a' * 32}.lambda-url.eu-west-1.localhost") is None
    assert Settings(credentials="", data_dir=tmp_path).signing_keys() == {
        "test": ("test", "000000000000")
    }
    with pytest.raises(ValueError, match="ACCESS_KEY_ID:SECRET_KEY:ACCOUNT_ID"):
        Settings(credentials="just-a-key", data_dir=tmp_path)


def test_verify_refuses_skew_expiry_and_wrong_scope() -> None:
    keys = {"test": ("test", "000000000000")}
    url = "http://abc.lambda-url.us-east-1.localhost:9000/x?a=1"

    def signed(auth: Any, method: str = "GET") -> SignedRequest:
        request = AWSRequest(method=method, url=url, data=b"")
        auth.add_auth(request)
        prepared = request.prepare()
        parts = urlsplit(prepared.url)
        headers = [*prepared.headers.items(), ("host", parts.netloc)]
        return SignedRequest(method, parts.path, parts.query, headers, b"")

    header_form = signed(SigV4Auth(OWN, "lambda", "us-east-1"))
    now = time.time()
    assert verify(header_form, keys, region="us-east-1", now_s=now).account_id == "000000000000"
    with pytest.raises(SignatureError, match="5 minutes"):
        verify(header_form, keys, region="us-east-1", now_s=now + 301)
    with pytest.raises(SignatureError, match="scope"):
        verify(header_form, keys, region="eu-west-1", now_s=now)
    wrong_service = signed(SigV4Auth(OWN, "execute-api", "us-east-1"))
    with pytest.raises(SignatureError, match="scope"):
        verify(wrong_service, keys, region="us-east-1", now_s=now)
    presigned = signed(SigV4QueryAuth(OWN, "lambda", "us-east-1", expires=60))
    assert verify(presigned, keys, region="us-east-1", now_s=now + 30)
    with pytest.raises(SignatureError, match="expired"):
        verify(presigned, keys, region="us-east-1", now_s=now + 120)
