"""With LAMBDALET_VERIFY_SIGNATURES, every AWS API request must be SigV4-signed with a key the
node has: boto3 and lambdalet's own client sign, anything else gets AWS's 403 errors in the
protocol of the service it called."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import ROLE

from lambdalet.client import Client
from lambdalet.sigv4 import SignedRequest, sign
from lambdalet.testing import ServerThread, make_zip

ACCOUNT = "123456789012"
KEY, SECRET = "AKIDLAMBDALET", "lambdalet-secret"
ECHO = "def handler(event, context):\n    return event\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node that checks signatures, with one key of its own."""
    data_dir = tmp_path_factory.mktemp("signatures")
    with ServerThread(
        data_dir=data_dir,
        verify_signatures=True,
        credentials=f"{KEY}:{SECRET}:{ACCOUNT}",
    ) as running:
        yield running


def client(server: ServerThread, service: str, key: str = KEY, secret: str = SECRET) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def error_of(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_signed_requests_work_through_every_path(server: ServerThread) -> None:
    lambda_client = client(server, "lambda")
    created = lambda_client.create_function(
        FunctionName="echo",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": ECHO})},
    )
    # Invoke (its own fast path), by name and by ARN (a path that is percent-encoded).
    for name in ("echo", created["FunctionArn"]):
        answer = lambda_client.invoke(FunctionName=name, Payload=b'{"n": 1}')
        assert json.loads(answer["Payload"].read()) == {"n": 1}
    assert client(server, "sqs").create_queue(QueueName="signed")["QueueUrl"]
    assert client(server, "sns").create_topic(Name="signed")["TopicArn"]
    assert client(server, "scheduler").list_schedules()["Schedules"] == []
    assert client(server, "apigatewayv2").get_apis()["Items"] == []


def test_a_wrong_secret_or_an_unknown_key_is_refused_in_each_protocol(
    server: ServerThread,
) -> None:
    wrong = client(server, "lambda", secret="not-the-secret")
    assert error_of(wrong.list_functions) == ("InvalidSignatureException", 403)
    assert error_of(wrong.invoke, FunctionName="echo") == ("InvalidSignatureException", 403)
    unknown = client(server, "lambda", key="AKIDNOBODY")
    assert error_of(unknown.list_functions) == ("UnrecognizedClientException", 403)
    sqs = client(server, "sqs", secret="not-the-secret")
    assert error_of(sqs.list_queues) == ("SignatureDoesNotMatch", 403)
    sqs_unknown = client(server, "sqs", key="AKIDNOBODY")
    assert error_of(sqs_unknown.list_queues) == ("InvalidClientTokenId", 403)
    sns = client(server, "sns", secret="not-the-secret")
    assert error_of(sns.list_topics) == ("SignatureDoesNotMatch", 403)
    sns_unknown = client(server, "sns", key="AKIDNOBODY")
    assert error_of(sns_unknown.list_topics) == ("InvalidClientTokenId", 403)
    # A signature for another service's scope does not open this one.
    url = f"{server.url}/2015-03-31/functions/"
    host = httpx.URL(server.url).netloc.decode()
    request = SignedRequest("GET", "/2015-03-31/functions/", "", [("host", host)], b"")
    headers = sign(request, KEY, SECRET, region="us-east-1", service="sqs")
    answer = httpx.get(url, headers=headers)
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "credential scope" in answer.json()["message"]


def test_unsigned_stale_or_tampered_requests_are_refused(server: ServerThread) -> None:
    client(server, "lambda").create_function(
        FunctionName="echo-raw",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": ECHO})},
    )
    url = f"{server.url}/2015-03-31/functions/"
    unsigned = httpx.get(url)
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert unsigned.json()["message"].startswith("Missing Authentication Token")
    host = httpx.URL(server.url).netloc.decode()
    path = "/2015-03-31/functions/echo-raw/invocations"
    request = SignedRequest("POST", path, "", [("host", host)], b'{"n": 1}')
    stale = sign(
        request, KEY, SECRET, region="us-east-1", service="lambda", now_s=time.time() - 900
    )
    answer = httpx.post(server.url + path, content=b'{"n": 1}', headers=stale)
    assert answer.status_code == 403
    assert "5 minutes" in answer.json()["message"]
    fresh = sign(request, KEY, SECRET, region="us-east-1", service="lambda")
    tampered = httpx.post(server.url + path, content=b'{"n": 2}', headers=fresh)
    assert tampered.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    signed = httpx.post(server.url + path, content=b'{"n": 1}', headers=fresh)
    assert signed.status_code == 200 and signed.json() == {"n": 1}


def test_lambdalets_own_endpoints_need_no_signature(server: ServerThread) -> None:
    assert httpx.get(f"{server.url}/_lambdalet/health").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 200
    assert httpx.get(f"{server.url}/", follow_redirects=True).status_code == 200  # the page
    # What the page reads is account data: checked like the Lambda API.
    assert httpx.get(f"{server.url}/_lambdalet/usage").status_code == 403
    assert httpx.get(f"{server.url}/_lambdalet/functions/echo/logs").status_code == 403


def test_lambdalets_client_signs(server: ServerThread, tmp_path: Path) -> None:
    function_dir = tmp_path / "fn"
    function_dir.mkdir()
    (function_dir / "app.py").write_text(ECHO)
    manifest = {"name": "from-cli", "handler": "app.handler", "runtime": "python3.11"}
    (function_dir / "lambdalet.json").write_text(json.dumps(manifest))
    ours = Client(server.url, credentials=(KEY, SECRET, "us-east-1"))
    try:
        ours.deploy(function_dir)
        assert json.loads(ours.invoke("from-cli", b'{"n": 3}').payload) == {"n": 3}
        # Each signed for the service its path belongs to: the Scheduler, API Gateway v2.
        assert isinstance(ours.list_schedules(), list)
        assert ours.http_api("signed-api", create=True) is not None
        assert ours.usage()["Month"]
    finally:
        ours.close()


def test_serve_deploys_with_its_own_key_when_signatures_are_checked(tmp_path: Path) -> None:
    from test_serve import HELLO_DIR, free_port, serving, wait_for_function, wait_until_healthy

    port, log_path = free_port(), tmp_path / "serve.log"
    settings = {
        "LAMBDALET_VERIFY_SIGNATURES": "true",
        "LAMBDALET_CREDENTIALS": f"{KEY}:{SECRET}:{ACCOUNT}",
    }
    with serving(
        port, tmp_path / "data", log_path, "--deploy", str(HELLO_DIR), settings=settings
    ) as node:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(node, url, log_path)
        signed = boto3.client(
            "lambda",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )
        wait_for_function(signed, "hello", log_path)
        assert "could not deploy" not in log_path.read_text()
