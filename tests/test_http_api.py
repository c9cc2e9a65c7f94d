"""HTTP APIs: the apigatewayv2 management API through boto3, and serving routes on a real node."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from conftest import boto_client

from lambdalet.frontdoor.routes import RouteKeyError, parse_route_key, select_route
from lambdalet.frontdoor.throttle import TokenBucket, limits_for
from lambdalet.testing import Deploy, ServerThread

ECHO = """
import json

def handler(event, context):
    if event.get("rawPath", "").endswith("/fail"):
        raise RuntimeError("told to fail")
    if event.get("rawPath", "").endswith("/malformed"):
        return {"statusCode": "not a status"}
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-route": event["routeKey"]},
        "body": json.dumps(event),
    }
"""


@pytest.fixture(scope="module")
def apigw(server: ServerThread) -> Any:
    """boto3's apigatewayv2 client of the session's node."""
    return boto_client(server.url, "apigatewayv2")


@pytest.fixture
def echo(deploy: Deploy) -> str:
    """A function answering with the event it got, as JSON; its ARN."""
    arn: str = deploy(ECHO)["FunctionArn"]
    return arn


MakeApi = Callable[..., str]


@pytest.fixture
def make_api(apigw: Any) -> Iterator[MakeApi]:
    """Create an HTTP API with routes to a function and stages; deleted after the test."""
    created: list[str] = []

    def make(
        function_arn: str,
        route_keys: list[str],
        stages: tuple[str, ...] = ("$default",),
        **stage: Any,
    ) -> str:
        api_id: str = apigw.create_api(Name="test-api", ProtocolType="HTTP")["ApiId"]
        created.append(api_id)
        integration_id = apigw.create_integration(
            ApiId=api_id,
            IntegrationType="AWS_PROXY",
            IntegrationUri=function_arn,
            PayloadFormatVersion="2.0",
        )["IntegrationId"]
        for route_key in route_keys:
            apigw.create_route(
                ApiId=api_id, RouteKey=route_key, Target=f"integrations/{integration_id}"
            )
        for name in stages:
            apigw.create_stage(ApiId=api_id, StageName=name, AutoDeploy=True, **stage)
        return api_id

    yield make
    for api_id in created:
        with contextlib.suppress(apigw.exceptions.NotFoundException):
            apigw.delete_api(ApiId=api_id)


def host_get(
    server: ServerThread, api_id: str, path: str, method: str = "GET", **kwargs: Any
) -> httpx.Response:
    """A request to an API by its host name (sent to the node's loopback address)."""
    host = f"{api_id}.execute-api.us-east-1.localhost:{server.settings.port}"
    return httpx.request(method, server.url + path, headers={"Host": host}, timeout=60, **kwargs)


# --- management API -------------------------------------------------------------------------


def test_api_crud_through_boto3(apigw: Any, echo: str) -> None:
    created = apigw.create_api(Name="crud", ProtocolType="HTTP", Description="d")
    api_id = created["ApiId"]
    assert len(api_id) == 10 and api_id.isalnum() and api_id == api_id.lower()
    assert created["ApiEndpoint"].startswith(f"http://{api_id}.execute-api.us-east-1.localhost:")
    assert created["ProtocolType"] == "HTTP" and created["Description"] == "d"
    assert apigw.get_api(ApiId=api_id)["Name"] == "crud"
    assert api_id in [item["ApiId"] for item in apigw.get_apis()["Items"]]
    assert apigw.update_api(ApiId=api_id, Name="renamed")["Name"] == "renamed"
    assert apigw.get_api(ApiId=api_id)["Name"] == "renamed"

    integration = apigw.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=echo, PayloadFormatVersion="2.0"
    )
    assert integration["PayloadFormatVersion"] == "2.0"
    target = f"integrations/{integration['IntegrationId']}"
    route = apigw.create_route(ApiId=api_id, RouteKey="GET /items/{id}", Target=target)
    assert route["AuthorizationType"] == "NONE" and route["Target"] == target
    assert apigw.get_route(ApiId=api_id, RouteId=route["RouteId"])["RouteKey"] == "GET /items/{id}"
    assert [r["RouteKey"] for r in apigw.get_routes(ApiId=api_id)["Items"]] == ["GET /items/{id}"]
    stage = apigw.create_stage(
        ApiId=api_id,
        StageName="prod",
        DefaultRouteSettings={"ThrottlingBurstLimit": 5, "ThrottlingRateLimit": 2.5},
    )
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 5
    assert apigw.get_stage(ApiId=api_id, StageName="prod")["StageName"] == "prod"
    assert [s["StageName"] for s in apigw.get_stages(ApiId=api_id)["Items"]] == ["prod"]
    updated = apigw.update_stage(
        ApiId=api_id,
        StageName="prod",
        RouteSettings={"GET /items/{id}": {"ThrottlingBurstLimit": 1}},
    )
    assert updated["RouteSettings"]["GET /items/{id}"]["ThrottlingBurstLimit"] == 1
    assert [i["IntegrationId"] for i in apigw.get_integrations(ApiId=api_id)["Items"]] == [
        integration["IntegrationId"]
    ]
    with pytest.raises(apigw.exceptions.ConflictException):
        apigw.delete_integration(ApiId=api_id, IntegrationId=integration["IntegrationId"])
    apigw.delete_route(ApiId=api_id, RouteId=route["RouteId"])
    apigw.delete_integration(ApiId=api_id, IntegrationId=integration["IntegrationId"])
    apigw.delete_stage(ApiId=api_id, StageName="prod")
    assert apigw.get_routes(ApiId=api_id)["Items"] == []
    apigw.delete_api(ApiId=api_id)
    with pytest.raises(apigw.exceptions.NotFoundException):
        apigw.get_api(ApiId=api_id)


def test_unknown_api_is_404_not_found(apigw: Any) -> None:
    with pytest.raises(apigw.exceptions.NotFoundException) as raised:
        apigw.get_routes(ApiId="nosuchapi0")
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Error"]["Code"] == "NotFoundException"
    assert "nosuchapi0" in error["Error"]["Message"]


def test_unknown_route_stage_and_integration_are_404(
    apigw: Any, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(echo, [])
    with pytest.raises(apigw.exceptions.NotFoundException):
        apigw.get_route(ApiId=api_id, RouteId="abcdefghij")
    with pytest.raises(apigw.exceptions.NotFoundException):
        apigw.get_stage(ApiId=api_id, StageName="nope")
    with pytest.raises(apigw.exceptions.NotFoundException):
        apigw.delete_integration(ApiId=api_id, IntegrationId="abcdefghij")


@pytest.mark.parametrize(
    "route_key",
    ["FETCH /items", "GET items", "GET /{proxy+}/more", "GET /a//b", "GET /{id}/{id}", "get /x"],
)
def test_bad_route_key_is_400(apigw: Any, make_api: MakeApi, echo: str, route_key: str) -> None:
    api_id = make_api(echo, [])
    with pytest.raises(apigw.exceptions.BadRequestException) as raised:
        apigw.create_route(ApiId=api_id, RouteKey=route_key)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Invalid route key" in raised.value.response["Error"]["Message"]


def test_duplicate_route_key_is_409(apigw: Any, make_api: MakeApi, echo: str) -> None:
    api_id = make_api(echo, ["GET /items"])
    with pytest.raises(apigw.exceptions.ConflictException) as raised:
        apigw.create_route(ApiId=api_id, RouteKey="GET /items")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert "GET /items" in raised.value.response["Error"]["Message"]


def test_bad_requests_are_400_with_a_reason(apigw: Any, make_api: MakeApi, echo: str) -> None:
    with pytest.raises(apigw.exceptions.BadRequestException, match="HTTP"):
        apigw.create_api(Name="ws", ProtocolType="WEBSOCKET")
    api_id = make_api(echo, [])
    with pytest.raises(apigw.exceptions.BadRequestException, match="AWS_PROXY"):
        apigw.create_integration(ApiId=api_id, IntegrationType="HTTP_PROXY", IntegrationUri=echo)
    with pytest.raises(apigw.exceptions.BadRequestException, match="2.0"):
        apigw.create_integration(
            ApiId=api_id,
            IntegrationType="AWS_PROXY",
            IntegrationUri=echo,
            PayloadFormatVersion="1.0",
        )
    with pytest.raises(apigw.exceptions.BadRequestException, match="function ARN"):
        apigw.create_integration(
            ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri="arn:aws:s3:::bucket"
        )
    with pytest.raises(apigw.exceptions.BadRequestException, match="integrations/"):
        apigw.create_route(ApiId=api_id, RouteKey="GET /x", Target="integrations/nosuchintg")
    with pytest.raises(apigw.exceptions.BadRequestException, match="authorizerId"):
        apigw.create_route(ApiId=api_id, RouteKey="GET /y", AuthorizationType="JWT")
    with pytest.raises(apigw.exceptions.ConflictException):
        apigw.create_stage(ApiId=api_id, StageName="$default")
    with pytest.raises(apigw.exceptions.BadRequestException, match="stageName"):
        apigw.create_stage(ApiId=api_id, StageName="bad name")


def test_deleting_an_api_deletes_its_children(
    server: ServerThread, apigw: Any, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(echo, ["GET /a", "GET /b"], stages=("$default", "prod"))
    apigw.delete_api(ApiId=api_id)
    store = server.node.store
    for kind in ("api_route", "api_integration", "api_stage", "api_authorizer"):
        assert server.call(store.list_resources(kind, f"{api_id}/")) == []
    assert host_get(server, api_id, "/a").status_code == 404


def test_quick_create_serves_the_function(server: ServerThread, apigw: Any, echo: str) -> None:
    api_id = apigw.create_api(Name="quick", ProtocolType="HTTP", Target=echo)["ApiId"]
    try:
        assert [r["RouteKey"] for r in apigw.get_routes(ApiId=api_id)["Items"]] == ["$default"]
        response = host_get(server, api_id, "/anything/here")
        assert response.status_code == 200
        assert response.json()["routeKey"] == "$default"
    finally:
        apigw.delete_api(ApiId=api_id)


# --- route selection ------------------------------------------------------------------------


def test_route_selection_prefers_the_most_specific_route() -> None:
    patterns = [
        parse_route_key(k)
        for k in (
            "GET /pets/dog/1",
            "GET /pets/dog/{id}",
            "ANY /pets/{proxy+}",
            "GET /pets/{proxy+}",
            "$default",
            "GET /",
        )
    ]

    def pick(method: str, path: str) -> tuple[str, dict[str, str]]:
        selected = select_route(patterns, method, path)
        assert selected is not None
        return selected[0].route_key, selected[1]

    assert pick("GET", "/pets/dog/1") == ("GET /pets/dog/1", {})
    assert pick("GET", "/pets/dog/2") == ("GET /pets/dog/{id}", {"id": "2"})
    assert pick("GET", "/pets/cat/1") == ("GET /pets/{proxy+}", {"proxy": "cat/1"})
    assert pick("POST", "/pets/dog/1") == ("ANY /pets/{proxy+}", {"proxy": "dog/1"})
    assert pick("GET", "/pets") == ("$default", {})
    assert pick("GET", "/") == ("GET /", {})
    assert pick("DELETE", "/other") == ("$default", {})
    assert select_route(patterns[:-2], "GET", "/nothing") is None


def test_route_keys_are_checked() -> None:
    assert parse_route_key("ANY /{proxy+}").segments == ((2, "proxy"),)
    for bad in ("GET", "GET /x/{a+}/y", "PUT /a b", "TRACE /x"):
        with pytest.raises(RouteKeyError):
            parse_route_key(bad)


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=2)
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(100.4) is False
    assert bucket.take(100.5) is True  # 0.5 s at 2/s: one token back
    assert limits_for({"defaultRouteSettings": {"throttlingBurstLimit": 3}}, "GET /") == (3.0, 3)
    assert limits_for({"defaultRouteSettings": {"detailedMetricsEnabled": False}}, "x") is None


# --- serving --------------------------------------------------------------------------------


def test_routes_path_parameters_greedy_any_and_default(
    server: ServerThread, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(
        echo,
        ["GET /items/{id}", "GET /items/special", "ANY /files/{proxy+}", "POST /items", "$default"],
    )
    response = host_get(server, api_id, "/items/42?color=red&color=blue")
    assert response.status_code == 200
    assert response.headers["x-route"] == "GET /items/{id}"
    assert response.headers["apigw-requestid"]
    event = APIGatewayProxyEventV2(response.json())
    assert event.route_key == "GET /items/{id}"
    assert event.path_parameters == {"id": "42"}
    assert event.raw_path == "/items/42"
    assert event.request_context.stage == "$default"
    assert event.request_context.api_id == api_id
    assert event.request_context.http.method == "GET"
    assert event.request_context.domain_name == f"{api_id}.execute-api.us-east-1.localhost"
    assert event.query_string_parameters == {"color": "red,blue"}

    assert host_get(server, api_id, "/items/special").json()["routeKey"] == "GET /items/special"
    encoded = host_get(server, api_id, "/items/a%2Fb%20c").json()
    assert encoded["pathParameters"] == {"id": "a/b c"} and encoded["rawPath"] == "/items/a%2Fb%20c"
    greedy = APIGatewayProxyEventV2(host_get(server, api_id, "/files/a/b/c.txt", "PUT").json())
    assert greedy.route_key == "ANY /files/{proxy+}"
    assert greedy.path_parameters == {"proxy": "a/b/c.txt"}
    posted = host_get(server, api_id, "/items", "POST", json={"name": "x"}).json()
    assert posted["routeKey"] == "POST /items" and json.loads(posted["body"]) == {"name": "x"}
    fallback = APIGatewayProxyEventV2(host_get(server, api_id, "/items", "DELETE").json())
    assert fallback.route_key == "$default" and fallback.raw_path == "/items"


def test_no_matching_route_is_404_not_found(
    server: ServerThread, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(echo, ["GET /items/{id}"])
    for path, method in (("/items", "GET"), ("/items/1", "POST"), ("/items/1/more", "GET")):
        response = host_get(server, api_id, path, method)
        assert response.status_code == 404
        assert response.json() == {"message": "Not Found"}
    assert host_get(server, "unknownapi", "/items/1").json() == {"message": "Not Found"}


def test_named_stage_prefix_and_path_form(
    server: ServerThread, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(
        echo, ["GET /items/{id}"], stages=("prod",), StageVariables={"table": "prod-items"}
    )
    event = APIGatewayProxyEventV2(host_get(server, api_id, "/prod/items/7").json())
    assert event.request_context.stage == "prod"
    assert event.raw_path == "/prod/items/7"  # AWS keeps a named stage in rawPath
    assert event.request_context.http.path == "/prod/items/7"
    assert event.path_parameters == {"id": "7"}
    assert event.stage_variables == {"table": "prod-items"}
    # Without a $default stage a path without a stage prefix is not served.
    assert host_get(server, api_id, "/items/7").status_code == 404

    by_path = httpx.get(f"{server.url}/_lambdalet/apis/{api_id}/prod/items/8", timeout=60)
    assert by_path.status_code == 200
    assert by_path.json()["rawPath"] == "/prod/items/8"
    assert by_path.json()["pathParameters"] == {"id": "8"}


def test_default_stage_through_the_path_form(
    server: ServerThread, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(echo, ["GET /items/{id}"])
    response = httpx.get(f"{server.url}/_lambdalet/apis/{api_id}/$default/items/9", timeout=60)
    assert response.status_code == 200
    event = APIGatewayProxyEventV2(response.json())
    assert event.raw_path == "/items/9" and event.request_context.stage == "$default"
    assert event.request_context.domain_name == f"{api_id}.execute-api.us-east-1.localhost"


def test_alias_integration_runs_the_alias(
    server: ServerThread, apigw: Any, lambda_client: Any, make_api: MakeApi, deploy: Deploy
) -> None:
    source = 'def handler(event, context):\n    return {"statusCode": 200, "body": "%s"}\n'
    name = deploy(source % "one")["FunctionName"]
    lambda_client.publish_version(FunctionName=name)
    alias = lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lambda_client.update_function_code(FunctionName=name, ZipFile=_zip({"app.py": source % "two"}))
    api_id = make_api(alias["AliasArn"], ["GET /v"])
    assert host_get(server, api_id, "/v").text == "one"


def _zip(files: dict[str, str | bytes]) -> bytes:
    from lambdalet.testing import make_zip

    return make_zip(files)


def test_function_error_is_500_internal_server_error(
    server: ServerThread, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(echo, ["ANY /{proxy+}"])
    for path in ("/fail", "/malformed"):
        response = host_get(server, api_id, path)
        assert response.status_code == 500
        assert response.json() == {"message": "Internal Server Error"}


def test_throttling_per_route_is_429(
    server: ServerThread, apigw: Any, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(
        echo,
        ["GET /limited", "GET /free", "GET /closed"],
        RouteSettings={
            "GET /limited": {"ThrottlingBurstLimit": 2, "ThrottlingRateLimit": 0.001},
            "GET /closed": {"ThrottlingBurstLimit": 0, "ThrottlingRateLimit": 0},
        },
    )
    statuses = [host_get(server, api_id, "/limited").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = host_get(server, api_id, "/limited")
    assert refused.json() == {"message": "Too Many Requests"}
    assert [host_get(server, api_id, "/free").status_code for _ in range(4)] == [200] * 4
    assert host_get(server, api_id, "/closed").status_code == 429
    # New limits take effect at once (a fresh bucket).
    apigw.update_stage(
        ApiId=api_id,
        StageName="$default",
        RouteSettings={"GET /limited": {"ThrottlingBurstLimit": 5, "ThrottlingRateLimit": 1}},
    )
    assert host_get(server, api_id, "/limited").status_code == 200


def test_cli_route_add_creates_a_working_route(
    server: ServerThread, apigw: Any, deploy: Deploy, tmp_path: Path
) -> None:
    name = deploy(ECHO)["FunctionName"]
    api_name = f"cli-{name}"
    lambdalet = Path(sys.executable).parent / "lambdalet"
    run = subprocess.run(
        [
            str(lambdalet),
            "route",
            "add",
            name,
            "GET /hello/{who}",
            "--api",
            api_name,
            "--endpoint-url",
            server.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)},
    )
    assert run.returncode == 0, run.stderr
    api_ids = [a["ApiId"] for a in apigw.get_apis()["Items"] if a["Name"] == api_name]
    assert len(api_ids) == 1
    try:
        assert api_ids[0] in run.stdout
        event = APIGatewayProxyEventV2(host_get(server, api_ids[0], "/hello/ada").json())
        assert event.path_parameters == {"who": "ada"}
        listed = subprocess.run(
            [str(lambdalet), "route", "ls", "--api", api_name, "--endpoint-url", server.url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)},
        )
        assert listed.returncode == 0 and "GET /hello/{who}" in listed.stdout
        removed = subprocess.run(
            [
                str(lambdalet),
                "route",
                "rm",
                "GET /hello/{who}",
                "--api",
                api_name,
                "--endpoint-url",
                server.url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)},
        )
        assert removed.returncode == 0, removed.stderr
        assert host_get(server, api_ids[0], "/hello/ada").json() == {"message": "Not Found"}
        assert apigw.get_integrations(ApiId=api_ids[0])["Items"] == []
    finally:
        apigw.delete_api(ApiId=api_ids[0])


def test_aws_cli_quick_create_serves_a_function(
    server: ServerThread, apigw: Any, echo: str, tmp_path: Path
) -> None:
    aws = Path(sys.executable).parent / "aws"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    run = subprocess.run(
        [
            str(aws),
            "--endpoint-url",
            server.url,
            "--output",
            "json",
            "apigatewayv2",
            "create-api",
            "--name",
            "from-aws-cli",
            "--protocol-type",
            "HTTP",
            "--target",
            echo,
            "--route-key",
            "GET /cli/{x}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    api_id = json.loads(run.stdout)["ApiId"]
    try:
        event = APIGatewayProxyEventV2(host_get(server, api_id, "/cli/yes").json())
        assert event.route_key == "GET /cli/{x}" and event.path_parameters == {"x": "yes"}
        missing = subprocess.run(
            [
                str(aws),
                "--endpoint-url",
                server.url,
                "apigatewayv2",
                "get-api",
                "--api-id",
                "nosuchapi0",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert missing.returncode != 0 and "NotFoundException" in missing.stderr
    finally:
        apigw.delete_api(ApiId=api_id)


def test_disabled_execute_api_endpoint_is_403(
    server: ServerThread, apigw: Any, make_api: MakeApi, echo: str
) -> None:
    api_id = make_api(echo, ["GET /x"])
    assert host_get(server, api_id, "/x").status_code == 200
    apigw.update_api(ApiId=api_id, DisableExecuteApiEndpoint=True)
    refused = host_get(server, api_id, "/x")
    assert refused.status_code == 403 and refused.json() == {"message": "Forbidden"}
