"""Function URLs: the config API through boto3, and requests served on a real loopback port."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent
from botocore.exceptions import ClientError

from lambdalet.frontdoor.payload import MAX_REQUEST_BYTES, http_response
from lambdalet.testing import Deploy, ServerThread

HANDLER = """
import base64
import json


def handler(event, context):
    path = event["rawPath"]
    if path == "/string":
        return "hello world"
    if path == "/value":
        return [1, 2, 3]
    if path == "/dict":
        return {"a": 1}
    if path == "/cookies":
        return {
            "statusCode": 201,
            "cookies": ["a=1; Path=/", "b=2"],
            "headers": {"x-custom": "yes", "access-control-allow-origin": "https://evil.example"},
            "multiValueHeaders": {"x-multi": ["1", "2"]},
            "body": "made",
        }
    if path == "/binary":
        body = event.get("body", "")
        if not event["isBase64Encoded"]:
            body = base64.b64encode(body.encode()).decode()
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "isBase64Encoded": True,
            "body": body,
        }
    if path == "/error":
        raise RuntimeError("boom")
    if path == "/huge":
        return "x" * (7 * 1024 * 1024)
    if path == "/bad-status":
        return {"statusCode": "200", "body": "x"}
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(event),
    }
"""

URL_PATTERN = re.compile(r"^http://([a-z0-9]{32})\.lambda-url\.us-east-1\.localhost:(\d+)/$")


class UrlClient:
    """Sends requests to function URLs over loopback, with the URL's Host header."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=60)

    def request(
        self, method: str, function_url: str, path: str = "/", **kwargs: Any
    ) -> httpx.Response:
        given = kwargs.pop("headers", None) or {}
        headers = list(given.items()) if isinstance(given, dict) else list(given)
        headers.append(("host", urlsplit(function_url).netloc))
        return self.http.request(method, path, headers=headers, **kwargs)

    def by_path(self, method: str, url_id: str, path: str = "/", **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"/_lambdalet/urls/{url_id}{path}", **kwargs)


@pytest.fixture(scope="module")
def urls(server: ServerThread) -> Iterator[UrlClient]:
    client = UrlClient(server)
    yield client
    client.http.close()


@pytest.fixture
def echo(deploy: Deploy, lambda_client: Any) -> Callable[..., dict[str, Any]]:
    """Deploy the test handler and give it a function URL with the given settings."""

    def make(**url_settings: Any) -> dict[str, Any]:
        name = deploy(HANDLER)["FunctionName"]
        url_settings.setdefault("AuthType", "NONE")
        config: dict[str, Any] = lambda_client.create_function_url_config(
            FunctionName=name, **url_settings
        )
        config["Name"] = name
        return config

    return make


def url_id(config: dict[str, Any]) -> str:
    match = URL_PATTERN.match(config["FunctionUrl"])
    assert match, config["FunctionUrl"]
    return match.group(1)


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


# --- the config API ------------------------------------------------------------------------


def test_create_get_update_list_delete(
    deploy: Deploy, lambda_client: Any, server: ServerThread
) -> None:
    name = deploy(HANDLER)["FunctionName"]
    created = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    match = URL_PATTERN.match(created["FunctionUrl"])
    assert match is not None and match.group(2) == str(server.settings.port)
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert created["AuthType"] == "NONE"
    assert created["InvokeMode"] == "BUFFERED"
    assert created["CreationTime"]

    got = lambda_client.get_function_url_config(FunctionName=name)
    assert got["FunctionUrl"] == created["FunctionUrl"]
    assert got["LastModifiedTime"]

    cors = {"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET"], "MaxAge": 60}
    updated = lambda_client.update_function_url_config(
        FunctionName=name, AuthType="AWS_IAM", Cors=cors, InvokeMode="RESPONSE_STREAM"
    )
    assert updated["AuthType"] == "AWS_IAM"
    assert updated["Cors"] == cors
    assert updated["InvokeMode"] == "RESPONSE_STREAM"
    assert updated["FunctionUrl"] == created["FunctionUrl"]  # a URL never changes

    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="$LATEST")
    aliased = lambda_client.create_function_url_config(
        FunctionName=name, Qualifier="live", AuthType="NONE"
    )
    assert aliased["FunctionArn"].endswith(f":function:{name}:live")
    assert aliased["FunctionUrl"] != created["FunctionUrl"]

    listed = lambda_client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert sorted(c["FunctionUrl"] for c in listed) == sorted(
        [created["FunctionUrl"], aliased["FunctionUrl"]]
    )
    page = lambda_client.list_function_url_configs(FunctionName=name, MaxItems=1)
    assert len(page["FunctionUrlConfigs"]) == 1
    rest = lambda_client.list_function_url_configs(FunctionName=name, Marker=page["NextMarker"])
    assert len(rest["FunctionUrlConfigs"]) == 1 and "NextMarker" not in rest

    lambda_client.delete_function_url_config(FunctionName=name)
    with pytest.raises(ClientError) as error:
        lambda_client.get_function_url_config(FunctionName=name)
    assert error_code(error) == "ResourceNotFoundException"
    assert "does not exist" in str(error.value)
    assert lambda_client.get_function_url_config(FunctionName=name, Qualifier="live")


def test_config_errors(deploy: Deploy, lambda_client: Any, raw_client: Any) -> None:
    name = deploy(HANDLER)["FunctionName"]
    lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    with pytest.raises(ClientError) as error:
        lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert error_code(error) == "ResourceConflictException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert "exists" in str(error.value)

    lambda_client.publish_version(FunctionName=name)
    with pytest.raises(ClientError) as error:
        lambda_client.create_function_url_config(FunctionName=name, Qualifier="1", AuthType="NONE")
    assert error_code(error) == "ValidationException"
    assert "qualifier" in str(error.value)

    with pytest.raises(ClientError) as error:
        lambda_client.create_function_url_config(
            FunctionName=name, Qualifier="nope", AuthType="NONE"
        )
    assert error_code(error) == "ResourceNotFoundException"

    with pytest.raises(ClientError) as error:
        lambda_client.get_function_url_config(FunctionName="fn-that-does-not-exist")
    assert error_code(error) == "ResourceNotFoundException"
    assert "Function not found" in str(error.value)

    with pytest.raises(ClientError) as error:
        raw_client.update_function_url_config(FunctionName=name, AuthType="SOMETIMES")
    assert error_code(error) == "ValidationException"
    assert "NONE, AWS_IAM" in str(error.value)

    with pytest.raises(ClientError) as error:
        lambda_client.update_function_url_config(
            FunctionName=name, Cors={"AllowMethods": ["FETCH"]}
        )
    assert error_code(error) == "InvalidParameterValueException"
    assert "FETCH" in str(error.value)

    with pytest.raises(ClientError) as error:
        raw_client.update_function_url_config(FunctionName=name, Cors={"MaxAge": 86401})
    assert error_code(error) == "ValidationException"
    assert "86400" in str(error.value)

    with pytest.raises(ClientError) as error:
        raw_client.update_function_url_config(FunctionName=name, Cors={"AllowCredentials": "yes"})
    assert error_code(error) == "InvalidParameterValueException"

    other = deploy(HANDLER)["FunctionName"]
    with pytest.raises(ClientError) as error:
        lambda_client.delete_function_url_config(FunctionName=other)
    assert error_code(error) == "ResourceNotFoundException"


def test_deleting_the_function_deletes_its_urls(
    deploy: Deploy, lambda_client: Any, urls: UrlClient
) -> None:
    name = deploy(HANDLER)["FunctionName"]
    config = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert urls.request("GET", config["FunctionUrl"], "/dict").status_code == 200
    lambda_client.delete_function(FunctionName=name)
    gone = urls.request("GET", config["FunctionUrl"], "/dict")
    assert gone.status_code == 403
    assert gone.json() == {"Message": "Forbidden"}
    # A new function of the same name starts without a URL.
    deploy(HANDLER, name=name)
    with pytest.raises(ClientError) as error:
        lambda_client.get_function_url_config(FunctionName=name)
    assert error_code(error) == "ResourceNotFoundException"


# --- routing -----------------------------------------------------------------------------------


def test_host_header_and_path_form_reach_the_function(
    echo: Callable[..., dict[str, Any]], urls: UrlClient, server: ServerThread
) -> None:
    config = echo()
    by_host = urls.request("GET", config["FunctionUrl"], "/dict")
    assert by_host.status_code == 200
    assert by_host.json() == {"a": 1}
    by_path = urls.by_path("GET", url_id(config), "/dict")
    assert by_path.status_code == 200
    assert by_path.json() == {"a": 1}
    event = urls.by_path("GET", url_id(config), "/echo/a%20b?x=1").json()
    assert event["rawPath"] == "/echo/a%20b"
    assert event["rawQueryString"] == "x=1"
    assert event["requestContext"]["domainName"] == (
        f"{url_id(config)}.lambda-url.us-east-1.localhost"
    )
    # Anything else still reaches the Lambda API.
    health = httpx.get(f"{server.url}/_lambdalet/health")
    assert health.json() == {"status": "ok"}


def test_unknown_url_id_is_forbidden(urls: UrlClient, server: ServerThread) -> None:
    fake = f"http://{'a' * 32}.lambda-url.us-east-1.localhost:{server.settings.port}/"
    for response in (urls.request("GET", fake), urls.by_path("GET", "a" * 32, "/")):
        assert response.status_code == 403
        assert response.json() == {"Message": "Forbidden"}


# --- payload format 2.0 ---------------------------------------------------------------------


def test_event_has_the_payload_2_0_fields(
    echo: Callable[..., dict[str, Any]], urls: UrlClient
) -> None:
    config = echo()
    response = urls.request(
        "POST",
        config["FunctionUrl"],
        "/echo/items?color=red&color=blue&empty=&q=a%20b",
        headers=[
            ("x-repeat", "one"),
            ("x-repeat", "two"),
            ("cookie", "session=abc; theme=dark"),
            ("user-agent", "lambdalet-test"),
            ("content-type", "application/json"),
        ],
        content=b'{"hello": "world"}',
    )
    assert response.status_code == 200, response.text
    raw = response.json()
    event = LambdaFunctionUrlEvent(raw)
    assert raw["version"] == "2.0"
    assert event.route_key == "$default"
    assert event.raw_path == "/echo/items"
    assert event.raw_query_string == "color=red&color=blue&empty=&q=a%20b"
    assert event.query_string_parameters == {"color": "red,blue", "empty": "", "q": "a b"}
    assert event.headers["x-repeat"] == "one,two"
    assert "cookie" not in event.headers
    assert event.cookies == ["session=abc", "theme=dark"]
    assert event.body == '{"hello": "world"}'
    assert event.is_base64_encoded is False
    assert event.json_body == {"hello": "world"}
    context = event.request_context
    assert context.http.method == "POST"
    assert context.http.path == "/echo/items"
    assert context.http.user_agent == "lambdalet-test"
    assert context.http.source_ip == "127.0.0.1"
    assert context.http.protocol == "HTTP/1.1"
    assert context.domain_prefix == url_id(config)
    assert context.api_id == url_id(config)
    assert context.stage == "$default"
    assert context.account_id == "anonymous"
    assert context.request_id == response.headers["x-amzn-requestid"]
    assert re.match(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$", context.time)
    assert isinstance(context.time_epoch, int)
    assert "authorizer" not in raw["requestContext"]

    bare = urls.request("GET", config["FunctionUrl"], "/echo").json()
    assert "body" not in bare and bare["isBase64Encoded"] is False
    assert "queryStringParameters" not in bare and "cookies" not in bare


def test_binary_body_round_trip(echo: Callable[..., dict[str, Any]], urls: UrlClient) -> None:
    config = echo()
    data = bytes(range(256)) * 4
    echoed = urls.request(
        "POST",
        config["FunctionUrl"],
        "/echo",
        content=data,
        headers={"content-type": "application/octet-stream"},
    ).json()
    assert echoed["isBase64Encoded"] is True
    assert base64.b64decode(echoed["body"]) == data
    back = urls.request(
        "POST",
        config["FunctionUrl"],
        "/binary",
        content=data,
        headers={"content-type": "image/png"},
    )
    assert back.status_code == 200
    assert back.headers["content-type"] == "application/octet-stream"
    assert back.content == data


# --- response mapping ---------------------------------------------------------------------


def test_response_mapping(echo: Callable[..., dict[str, Any]], urls: UrlClient) -> None:
    config = echo()
    text = urls.request("GET", config["FunctionUrl"], "/string")
    assert (text.status_code, text.text) == (200, "hello world")
    assert text.headers["content-type"] == "application/json"
    value = urls.request("GET", config["FunctionUrl"], "/value")
    assert (value.status_code, value.json()) == (200, [1, 2, 3])
    plain = urls.request("GET", config["FunctionUrl"], "/dict")
    assert (plain.status_code, plain.json()) == (200, {"a": 1})
    assert plain.headers["content-type"] == "application/json"

    made = urls.request("GET", config["FunctionUrl"], "/cookies")
    assert made.status_code == 201
    assert made.text == "made"
    assert made.headers["x-custom"] == "yes"
    assert made.headers.get_list("x-multi") == ["1", "2"]
    assert made.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
    assert made.headers["content-type"] == "application/json"
    # Without a Cors config the function's own CORS headers pass through.
    assert made.headers["access-control-allow-origin"] == "https://evil.example"

    failed = urls.request("GET", config["FunctionUrl"], "/error")
    assert failed.status_code == 502
    assert failed.json() == {"Message": "Internal Server Error"}
    malformed = urls.request("GET", config["FunctionUrl"], "/bad-status")
    assert malformed.status_code == 502
    assert malformed.json() == {"Message": "Internal Server Error"}
    huge = urls.request("GET", config["FunctionUrl"], "/huge")
    assert huge.status_code == 502
    assert huge.json() == {"Message": "Internal Server Error"}


def test_http_response_edge_cases() -> None:
    assert http_response(b'{"statusCode": 204}', None).status_code == 204
    assert http_response(b'{"statusCode": true}', None).status_code == 502
    assert http_response(b'{"statusCode": 700}', None).status_code == 502
    assert http_response(b'{"statusCode": 200, "body": {"a": 1}}', None).status_code == 502
    bad_base64 = b'{"statusCode": 200, "isBase64Encoded": true, "body": "***"}'
    assert http_response(bad_base64, None).status_code == 502
    assert http_response(b'{"statusCode": 200, "headers": {"x": [1]}}', None).status_code == 502
    assert http_response(b"not json", None).status_code == 502
    assert http_response(b'{"statusCode": 200}', "Unhandled").status_code == 502
    numbers = http_response(b'{"statusCode": 200, "headers": {"x-n": 5}}', None)
    assert numbers.headers["x-n"] == "5"
    null = http_response(b"null", None)
    assert (null.status_code, null.body) == (200, b"null")


# --- limits ------------------------------------------------------------------------------------


def test_body_over_6_mb_is_refused(echo: Callable[..., dict[str, Any]], urls: UrlClient) -> None:
    config = echo()
    response = urls.request(
        "POST",
        config["FunctionUrl"],
        "/echo",
        content=b"x" * (MAX_REQUEST_BYTES + 1),
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 413
    assert response.json() == {"Message": "Request Entity Too Large"}


def test_throttled_function_answers_429(
    echo: Callable[..., dict[str, Any]], urls: UrlClient, lambda_client: Any
) -> None:
    config = echo()
    lambda_client.put_function_concurrency(
        FunctionName=config["Name"], ReservedConcurrentExecutions=0
    )
    response = urls.request("GET", config["FunctionUrl"], "/dict")
    assert response.status_code == 429
    assert response.json() == {"Message": "Rate Exceeded."}
    lambda_client.delete_function_concurrency(FunctionName=config["Name"])
    assert urls.request("GET", config["FunctionUrl"], "/dict").status_code == 200


# --- CORS ---------------------------------------------------------------------------------------


def test_cors_preflight_is_answered_without_the_function(
    echo: Callable[..., dict[str, Any]], urls: UrlClient
) -> None:
    config = echo(
        Cors={
            "AllowOrigins": ["https://app.example"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["x-api-key", "content-type"],
            "ExposeHeaders": ["x-custom"],
            "MaxAge": 300,
            "AllowCredentials": True,
        }
    )
    preflight = urls.request(
        "OPTIONS",
        config["FunctionUrl"],
        "/error",  # the function would fail: it is never invoked
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "X-Api-Key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-methods"] == "GET, POST"
    assert preflight.headers["access-control-allow-headers"] == "x-api-key, content-type"
    assert preflight.headers["access-control-max-age"] == "300"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["vary"] == "Origin"

    for headers in (
        {"origin": "https://other.example", "access-control-request-method": "GET"},
        {"origin": "https://app.example", "access-control-request-method": "DELETE"},
        {
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "x-secret",
        },
    ):
        refused = urls.request("OPTIONS", config["FunctionUrl"], "/error", headers=headers)
        assert refused.status_code == 200
        assert "access-control-allow-origin" not in refused.headers

    simple = urls.request(
        "GET", config["FunctionUrl"], "/cookies", headers={"origin": "https://app.example"}
    )
    assert simple.status_code == 201
    # The config's CORS headers replace the function's own.
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert simple.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["access-control-expose-headers"] == "x-custom"
    other = urls.request(
        "GET", config["FunctionUrl"], "/cookies", headers={"origin": "https://other.example"}
    )
    assert other.status_code == 201
    assert "access-control-allow-origin" not in other.headers


def test_cors_wildcards(echo: Callable[..., dict[str, Any]], urls: UrlClient) -> None:
    config = echo(Cors={"AllowOrigins": ["*"], "AllowMethods": ["*"], "AllowHeaders": ["*"]})
    preflight = urls.request(
        "OPTIONS",
        config["FunctionUrl"],
        "/",
        headers={
            "origin": "https://any.example",
            "access-control-request-method": "PATCH",
            "access-control-request-headers": "x-one, x-two",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-methods"] == "PATCH"
    assert preflight.headers["access-control-allow-headers"] == "x-one, x-two"
    assert "access-control-max-age" not in preflight.headers
    assert "access-control-allow-credentials" not in preflight.headers
    simple = urls.request(
        "GET", config["FunctionUrl"], "/dict", headers={"origin": "https://any.example"}
    )
    assert simple.headers["access-control-allow-origin"] == "*"
    # Without a Cors config, OPTIONS reaches the function like any method.
    plain = echo()
    event = urls.request(
        "OPTIONS",
        plain["FunctionUrl"],
        "/echo",
        headers={"origin": "https://any.example", "access-control-request-method": "GET"},
    ).json()
    assert event["requestContext"]["http"]["method"] == "OPTIONS"


def test_deleting_an_alias_deletes_its_url_and_policy(
    echo: Callable[..., dict[str, Any]], lambda_client: Any, raw_client: Any, urls: UrlClient
) -> None:
    plain = echo()
    name = plain["Name"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="$LATEST")
    config = lambda_client.create_function_url_config(
        FunctionName=name, Qualifier="live", AuthType="NONE"
    )
    lambda_client.add_permission(
        FunctionName=name,
        Qualifier="live",
        StatementId="public-url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    assert urls.request("GET", config["FunctionUrl"], "/dict").status_code == 200

    lambda_client.delete_alias(FunctionName=name, Name="live")
    with pytest.raises(ClientError) as error:
        lambda_client.get_function_url_config(FunctionName=name, Qualifier="live")
    assert error_code(error) == "ResourceNotFoundException"
    for response in (
        urls.request("GET", config["FunctionUrl"], "/dict"),
        urls.by_path("GET", url_id(config), "/dict"),
    ):
        assert response.status_code == 403
        assert response.json() == {"Message": "Forbidden"}
    listed = lambda_client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert [c["FunctionUrl"] for c in listed] == [plain["FunctionUrl"]]

    # A new alias of the same name starts without the old URL or policy.
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="$LATEST")
    with pytest.raises(ClientError) as error:
        lambda_client.get_function_url_config(FunctionName=name, Qualifier="live")
    assert error_code(error) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as error:
        lambda_client.get_policy(FunctionName=name, Qualifier="live")
    assert error_code(error) == "ResourceNotFoundException"
    assert urls.request("GET", config["FunctionUrl"], "/dict").status_code == 403
    # The function's own URL is untouched, even by a DeleteAlias naming $LATEST.
    assert urls.request("GET", plain["FunctionUrl"], "/dict").status_code == 200
    raw_client.delete_alias(FunctionName=name, Name="$LATEST")
    assert urls.request("GET", plain["FunctionUrl"], "/dict").status_code == 200
