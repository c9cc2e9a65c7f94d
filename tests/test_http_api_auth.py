"""HTTP API authorizers on a real node: JWT against a real OIDC-style issuer on loopback, and
Lambda (REQUEST) authorizers with their result cache."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from conftest import ROLE, boto_client
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lambdalet.frontdoor.authorizers import LambdaAuthorizers
from lambdalet.frontdoor.jwt import JwksCache
from lambdalet.testing import ServerThread, make_zip

AUDIENCE = "lambdalet-tests"
JWKS_MIN_REFETCH_MS = 1000

ECHO = """
import json

def handler(event, context):
    return {"statusCode": 200, "body": json.dumps(event)}
"""

AUTHORIZER = """
def handler(event, context):
    token = event["headers"].get("authorization", "")
    if token == "boom":
        raise RuntimeError("the authorizer broke")
    return {
        "isAuthorized": token.startswith("allow"),
        "context": {"authorizerRequestId": context.aws_request_id, "token": token,
                    "routeArn": event["routeArn"], "type": event["type"],
                    "identitySource": event["identitySource"]},
    }
"""

POLICY_AUTHORIZER = """
def handler(event, context):
    effect = "Allow" if event["headers"].get("x-key") == "open" else "Deny"
    return {
        "principalId": "someone",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["routeArn"]}]},
        "context": {"principal": "someone"},
    }
"""


class Issuer:
    """An OpenID-style issuer on loopback: discovery document and a JWKS whose keys can rotate."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key (published: its public part)
        self.jwks_requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body: dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/keys"}
                elif self.path == "/keys":
                    issuer.jwks_requests += 1
                    body = {"keys": [issuer.public_jwk(k) for k in list(issuer.keys)]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_key(self, kind: str) -> str:
        """Publish a new key (``RS256`` or ``ES256``); its kid."""
        kid = f"{kind}-{uuid.uuid4().hex[:8]}"
        if kind == "RS256":
            self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        return kid

    def public_jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        algorithm = (
            jwt.algorithms.RSAAlgorithm if kid.startswith("RS") else jwt.algorithms.ECAlgorithm
        )
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
        jwk.update(kid=kid, use="sig", alg=kid.split("-")[0])
        return jwk

    def token(self, kid: str, *, key: Any = None, **claims: Any) -> str:
        """A token signed with key ``kid`` (or ``key`` under that kid) with default claims."""
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(
            body, key or self.keys[kid], algorithm=kid.split("-")[0], headers={"kid": kid}
        )


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node refetching an issuer's keys at most once a second (to see rotation quickly)."""
    data_dir = tmp_path_factory.mktemp("lambdalet-auth")
    with ServerThread(
        data_dir=data_dir, sandbox_backend="process", jwks_min_refetch_ms=JWKS_MIN_REFETCH_MS
    ) as running:
        yield running


@pytest.fixture(scope="module")
def clients(node: ServerThread) -> Iterator[tuple[Any, Any]]:
    """(lambda, apigatewayv2) boto3 clients of the module's node."""
    yield boto_client(node.url), boto_client(node.url, "apigatewayv2")


def create_function(lambda_client: Any, source: str) -> str:
    name = f"fn-{uuid.uuid4().hex[:12]}"
    arn: str = lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
    )["FunctionArn"]
    return arn


@pytest.fixture(scope="module")
def echo_arn(clients: tuple[Any, Any]) -> str:
    return create_function(clients[0], ECHO)


def api_with(apigw: Any, echo_arn: str, authorizer: dict[str, Any], routes: dict[str, Any]) -> str:
    """An API with a $default stage, an authorizer, and routes ({route key: route settings})."""
    api_id: str = apigw.create_api(Name="auth", ProtocolType="HTTP")["ApiId"]
    integration = apigw.create_integration(
        ApiId=api_id,
        IntegrationType="AWS_PROXY",
        IntegrationUri=echo_arn,
        PayloadFormatVersion="2.0",
    )["IntegrationId"]
    authorizer_id = apigw.create_authorizer(ApiId=api_id, **authorizer)["AuthorizerId"]
    for route_key, settings in routes.items():
        if settings.get("AuthorizationType", "NONE") != "NONE":
            settings = {**settings, "AuthorizerId": authorizer_id}
        apigw.create_route(
            ApiId=api_id, RouteKey=route_key, Target=f"integrations/{integration}", **settings
        )
    apigw.create_stage(ApiId=api_id, StageName="$default")
    return api_id


def get(node: ServerThread, api_id: str, path: str, **headers: str) -> httpx.Response:
    host = f"{api_id}.execute-api.us-east-1.localhost:{node.settings.port}"
    return httpx.get(node.url + path, headers={"Host": host, **headers}, timeout=60)


@pytest.fixture
def jwt_api(clients: tuple[Any, Any], echo_arn: str, issuer: Issuer) -> Iterator[str]:
    apigw = clients[1]
    api_id = api_with(
        apigw,
        echo_arn,
        {
            "AuthorizerType": "JWT",
            "Name": "jwt",
            "IdentitySource": ["$request.header.Authorization"],
            "JwtConfiguration": {"Issuer": issuer.url, "Audience": [AUDIENCE, "other"]},
        },
        {
            "GET /open": {},
            "GET /secure": {"AuthorizationType": "JWT"},
            "GET /scoped": {"AuthorizationType": "JWT", "AuthorizationScopes": ["read", "admin"]},
        },
    )
    yield api_id
    apigw.delete_api(ApiId=api_id)


# --- JWT ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
def test_jwt_signed_token_is_accepted_with_its_claims(
    node: ServerThread, jwt_api: str, issuer: Issuer, kind: str
) -> None:
    kid = issuer.add_key(kind)
    token = issuer.token(kid, groups=["a", "b"])
    for value in (f"Bearer {token}", token):
        response = get(node, jwt_api, "/secure", Authorization=value)
        assert response.status_code == 200, response.text
        event = APIGatewayProxyEventV2(response.json())
        claims = event.request_context.authorizer.jwt_claim
        assert claims["sub"] == "user-1" and claims["iss"] == issuer.url
        assert claims["aud"] == AUDIENCE and claims["groups"] == "[a b]"
        assert claims["exp"].isdigit()
        assert event.request_context.authorizer.jwt_scopes is None


def test_jwt_routes_without_authorization_need_no_token(node: ServerThread, jwt_api: str) -> None:
    response = get(node, jwt_api, "/open")
    assert response.status_code == 200
    assert "authorizer" not in response.json()["requestContext"]


def _refused(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"message": "Unauthorized" if status == 401 else "Forbidden"}
    assert reason in response.headers["www-authenticate"]


def test_jwt_bad_tokens_are_401(node: ServerThread, jwt_api: str, issuer: Issuer) -> None:
    kid = issuer.add_key("RS256")
    now = int(time.time())
    _refused(get(node, jwt_api, "/secure"), 401, "missing")
    _refused(get(node, jwt_api, "/secure", Authorization="Bearer not.a.jwt"), 401, "not a valid")
    cases = {
        "expired": issuer.token(kid, exp=now - 60, iat=now - 600),
        "valid audience": issuer.token(kid, aud="someone-else"),
        "valid issuer": issuer.token(kid, iss="https://elsewhere.example.com"),
        "not valid yet": issuer.token(kid, nbf=now + 600),
        "no exp": issuer.token(kid, exp=None),
        "signature": issuer.token(
            kid, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "not a key": _with_kid(issuer, kid, "unknown"),
    }
    for reason, token in cases.items():
        _refused(get(node, jwt_api, "/secure", Authorization=f"Bearer {token}"), 401, reason)


def _with_kid(issuer: Issuer, kid: str, other_kid: str) -> str:
    now = int(time.time())
    body = {"iss": issuer.url, "aud": AUDIENCE, "exp": now + 300}
    return jwt.encode(body, issuer.keys[kid], algorithm="RS256", headers={"kid": other_kid})


def test_jwt_client_id_counts_when_there_is_no_aud(
    node: ServerThread, jwt_api: str, issuer: Issuer
) -> None:
    kid = issuer.add_key("ES256")
    ok = issuer.token(kid, aud=None, client_id="other")
    assert get(node, jwt_api, "/secure", Authorization=ok).status_code == 200
    bad = issuer.token(kid, aud=None, client_id="nobody")
    _refused(get(node, jwt_api, "/secure", Authorization=bad), 401, "audience")


def test_jwt_scopes(node: ServerThread, jwt_api: str, issuer: Issuer) -> None:
    kid = issuer.add_key("RS256")
    granted = get(node, jwt_api, "/scoped", Authorization=issuer.token(kid, scope="write read"))
    assert granted.status_code == 200
    event = APIGatewayProxyEventV2(granted.json())
    assert event.request_context.authorizer.jwt_scopes == ["write", "read"]
    assert get(node, jwt_api, "/scoped", Authorization=issuer.token(kid, scp=["admin"])).is_success
    refused = get(node, jwt_api, "/scoped", Authorization=issuer.token(kid, scope="write"))
    _refused(refused, 403, "insufficient_scope")


def test_jwt_key_rotation_refetches_the_keys_at_most_once_per_interval(
    node: ServerThread, jwt_api: str, issuer: Issuer
) -> None:
    old = issuer.add_key("RS256")
    assert get(node, jwt_api, "/secure", Authorization=issuer.token(old)).status_code == 200
    assert issuer.jwks_requests == 1
    assert get(node, jwt_api, "/secure", Authorization=issuer.token(old)).status_code == 200
    assert issuer.jwks_requests == 1  # cached
    new = issuer.add_key("ES256")
    # Right after a fetch, an unknown kid does not make the node fetch again...
    assert get(node, jwt_api, "/secure", Authorization=issuer.token(new)).status_code == 401
    assert issuer.jwks_requests == 1
    time.sleep(JWKS_MIN_REFETCH_MS / 1000 + 0.1)
    # ...once the interval is over it does, and finds the new key.
    assert get(node, jwt_api, "/secure", Authorization=issuer.token(new)).status_code == 200
    assert issuer.jwks_requests == 2
    del issuer.keys[old]
    assert get(node, jwt_api, "/secure", Authorization=issuer.token(new)).status_code == 200


def test_jwks_cache_refetch_interval_follows_its_clock(issuer: Issuer) -> None:
    now = [1000.0]
    cache = JwksCache(min_refetch_s=30, clock=lambda: now[0])
    first = issuer.add_key("RS256")

    async def scenario() -> list[bool]:
        found = [await cache.key(issuer.url, first) is not None]
        second = issuer.add_key("ES256")
        found.append(await cache.key(issuer.url, second) is not None)
        now[0] += 29
        found.append(await cache.key(issuer.url, second) is not None)
        now[0] += 2
        found.append(await cache.key(issuer.url, second) is not None)
        return found

    assert asyncio.run(scenario()) == [True, False, False, True]
    assert issuer.jwks_requests == 2 and cache.fetches == 2


def test_jwt_authorizer_config_is_checked(clients: tuple[Any, Any], echo_arn: str) -> None:
    apigw = clients[1]
    api_id = apigw.create_api(Name="checks", ProtocolType="HTTP")["ApiId"]
    try:
        with pytest.raises(apigw.exceptions.BadRequestException, match="audience"):
            apigw.create_authorizer(
                ApiId=api_id,
                AuthorizerType="JWT",
                Name="j",
                IdentitySource=["$request.header.Authorization"],
                JwtConfiguration={"Issuer": "https://issuer.example.com"},
            )
        with pytest.raises(apigw.exceptions.BadRequestException, match="identitySource"):
            apigw.create_authorizer(
                ApiId=api_id,
                AuthorizerType="REQUEST",
                Name="r",
                IdentitySource=["header.Authorization"],
                AuthorizerUri=echo_arn,
                AuthorizerPayloadFormatVersion="2.0",
            )
        created = apigw.create_authorizer(
            ApiId=api_id,
            AuthorizerType="REQUEST",
            Name="r",
            IdentitySource=["$request.header.Authorization"],
            AuthorizerUri=echo_arn,
            AuthorizerPayloadFormatVersion="2.0",
            EnableSimpleResponses=True,
        )
        assert created["AuthorizerResultTtlInSeconds"] == 300
        got = apigw.get_authorizer(ApiId=api_id, AuthorizerId=created["AuthorizerId"])
        assert got["AuthorizerType"] == "REQUEST" and got["EnableSimpleResponses"] is True
        assert len(apigw.get_authorizers(ApiId=api_id)["Items"]) == 1
        with pytest.raises(apigw.exceptions.BadRequestException, match="JWT"):
            apigw.create_route(
                ApiId=api_id,
                RouteKey="GET /x",
                AuthorizationType="JWT",
                AuthorizerId=created["AuthorizerId"],
            )
        apigw.create_route(
            ApiId=api_id,
            RouteKey="GET /x",
            AuthorizationType="CUSTOM",
            AuthorizerId=created["AuthorizerId"],
        )
        with pytest.raises(apigw.exceptions.ConflictException):
            apigw.delete_authorizer(ApiId=api_id, AuthorizerId=created["AuthorizerId"])
    finally:
        apigw.delete_api(ApiId=api_id)


# --- Lambda authorizers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def authorizer_arn(clients: tuple[Any, Any]) -> str:
    return create_function(clients[0], AUTHORIZER)


def lambda_api(clients: tuple[Any, Any], echo_arn: str, authorizer_arn: str, ttl_s: int) -> str:
    return api_with(
        clients[1],
        echo_arn,
        {
            "AuthorizerType": "REQUEST",
            "Name": "lambda",
            "AuthorizerUri": authorizer_arn,
            "AuthorizerPayloadFormatVersion": "2.0",
            "EnableSimpleResponses": True,
            "IdentitySource": ["$request.header.Authorization"],
            "AuthorizerResultTtlInSeconds": ttl_s,
        },
        {"GET /items/{id}": {"AuthorizationType": "CUSTOM"}},
    )


def test_lambda_authorizer_allows_with_context_and_denies(
    node: ServerThread, clients: tuple[Any, Any], echo_arn: str, authorizer_arn: str
) -> None:
    api_id = lambda_api(clients, echo_arn, authorizer_arn, ttl_s=0)
    try:
        allowed = get(node, api_id, "/items/3", Authorization="allow-me")
        assert allowed.status_code == 200, allowed.text
        event = APIGatewayProxyEventV2(allowed.json())
        context = event.request_context.authorizer.get_lambda
        assert context["token"] == "allow-me" and context["type"] == "REQUEST"
        assert context["identitySource"] == ["allow-me"]
        assert context["routeArn"] == (
            f"arn:aws:execute-api:us-east-1:000000000000:{api_id}/$default/GET/items/3"
        )
        denied = get(node, api_id, "/items/3", Authorization="deny-me")
        assert denied.status_code == 403 and denied.json() == {"message": "Forbidden"}
        missing = get(node, api_id, "/items/3")
        assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}
        broken = get(node, api_id, "/items/3", Authorization="boom")
        assert broken.status_code == 500
        assert broken.json() == {"message": "Internal Server Error"}
        # TTL 0: every request runs the authorizer.
        again = get(node, api_id, "/items/3", Authorization="allow-me").json()
        assert (
            again["requestContext"]["authorizer"]["lambda"]["authorizerRequestId"]
            != context["authorizerRequestId"]
        )
    finally:
        clients[1].delete_api(ApiId=api_id)


def test_lambda_authorizer_result_is_cached_for_its_ttl(
    node: ServerThread, clients: tuple[Any, Any], echo_arn: str, authorizer_arn: str
) -> None:
    api_id = lambda_api(clients, echo_arn, authorizer_arn, ttl_s=1)

    def authorizer_run() -> str:
        response = get(node, api_id, "/items/1", Authorization="allow-cached")
        assert response.status_code == 200, response.text
        run: str = response.json()["requestContext"]["authorizer"]["lambda"]["authorizerRequestId"]
        return run

    try:
        first = authorizer_run()
        assert authorizer_run() == first  # within the TTL: the cached answer
        other = get(node, api_id, "/items/1", Authorization="allow-other").json()
        assert other["requestContext"]["authorizer"]["lambda"]["authorizerRequestId"] != first
        time.sleep(1.1)
        assert authorizer_run() != first  # the TTL is over: the authorizer ran again
    finally:
        clients[1].delete_api(ApiId=api_id)


def test_lambda_authorizer_cache_follows_its_clock() -> None:
    now = [0.0]
    runs: list[bytes] = []
    authorizers = LambdaAuthorizers(clock=lambda: now[0])
    config = {
        "authorizerId": "a1",
        "authorizerUri": "arn:aws:lambda:us-east-1:000000000000:function:auth",
        "identitySource": ["$request.header.authorization", "$request.querystring.user"],
        "authorizerResultTtlInSeconds": 300,
        "enableSimpleResponses": True,
    }

    async def invoke(uri: str, payload: bytes) -> tuple[bytes, str | None]:
        runs.append(payload)
        allowed = json.loads(payload)["identitySource"][0] == "yes"
        return json.dumps({"isAuthorized": allowed, "context": {"n": len(runs)}}).encode(), None

    def event(token: str) -> dict[str, Any]:
        return {"headers": {"authorization": token}, "queryStringParameters": {"user": "u"}}

    async def scenario() -> list[Any]:
        seen: list[Any] = []
        for token, advance in (("yes", 0), ("yes", 299), ("no", 0), ("no", 0), ("yes", 2)):
            now[0] += advance
            try:
                context = await authorizers.authorize(
                    config, event(token), api_id="api", route_arn="arn", invoke=invoke
                )
                seen.append(context["lambda"]["n"])
            except Exception as error:
                seen.append(type(error).__name__)
        return seen

    assert asyncio.run(scenario()) == [1, 1, "AuthorizerRejected", "AuthorizerRejected", 3]
    assert len(runs) == 3  # the refusal was cached too


def test_lambda_authorizer_with_an_iam_policy_answer(
    node: ServerThread, clients: tuple[Any, Any], echo_arn: str
) -> None:
    policy_arn = create_function(clients[0], POLICY_AUTHORIZER)
    api_id = api_with(
        clients[1],
        echo_arn,
        {
            "AuthorizerType": "REQUEST",
            "Name": "policy",
            "AuthorizerUri": policy_arn,
            "AuthorizerPayloadFormatVersion": "2.0",
            "IdentitySource": ["$request.header.x-key"],
            "AuthorizerResultTtlInSeconds": 0,
        },
        {"GET /p": {"AuthorizationType": "CUSTOM"}},
    )
    try:
        allowed = get(node, api_id, "/p", **{"x-key": "open"})
        assert allowed.status_code == 200
        assert allowed.json()["requestContext"]["authorizer"]["lambda"] == {"principal": "someone"}
        assert get(node, api_id, "/p", **{"x-key": "shut"}).status_code == 403
    finally:
        clients[1].delete_api(ApiId=api_id)
        with contextlib.suppress(Exception):
            clients[0].delete_function(FunctionName=policy_arn)


def test_update_route_switches_authorization_on_and_off(
    node: ServerThread, clients: tuple[Any, Any], jwt_api: str, issuer: Issuer
) -> None:
    apigw = clients[1]
    route = next(
        r for r in apigw.get_routes(ApiId=jwt_api)["Items"] if r["RouteKey"] == "GET /open"
    )
    authorizer_id = apigw.get_authorizers(ApiId=jwt_api)["Items"][0]["AuthorizerId"]
    updated = apigw.update_route(
        ApiId=jwt_api,
        RouteId=route["RouteId"],
        AuthorizationType="JWT",
        AuthorizerId=authorizer_id,
    )
    assert updated["AuthorizationType"] == "JWT" and updated["AuthorizerId"] == authorizer_id
    assert get(node, jwt_api, "/open").status_code == 401
    kid = issuer.add_key("RS256")
    assert get(node, jwt_api, "/open", Authorization=issuer.token(kid)).status_code == 200
    renamed = apigw.update_route(ApiId=jwt_api, RouteId=route["RouteId"], RouteKey="GET /opened")
    assert renamed["RouteKey"] == "GET /opened" and renamed["AuthorizationType"] == "JWT"
    with pytest.raises(apigw.exceptions.ConflictException):
        apigw.update_route(ApiId=jwt_api, RouteId=route["RouteId"], RouteKey="GET /secure")
    public = apigw.update_route(ApiId=jwt_api, RouteId=route["RouteId"], AuthorizationType="NONE")
    assert public["AuthorizationType"] == "NONE" and "AuthorizerId" not in public
    assert get(node, jwt_api, "/opened").status_code == 200


def test_jwt_issuer_that_cannot_be_reached_is_500(
    node: ServerThread, clients: tuple[Any, Any], echo_arn: str
) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    unreachable = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()  # nothing listens there any more
    apigw = clients[1]
    api_id = api_with(
        apigw,
        echo_arn,
        {
            "AuthorizerType": "JWT",
            "Name": "gone",
            "IdentitySource": ["$request.header.Authorization"],
            "JwtConfiguration": {"Issuer": unreachable, "Audience": [AUDIENCE]},
        },
        {"GET /secure": {"AuthorizationType": "JWT"}},
    )
    try:
        token = jwt.encode(
            {"iss": unreachable, "aud": AUDIENCE, "exp": int(time.time()) + 60},
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers={"kid": "k1"},
        )
        for _ in range(2):  # the second within the refetch interval: no new fetch, same answer
            response = get(node, api_id, "/secure", Authorization=token)
            assert response.status_code == 500
            assert response.json() == {"message": "Internal Server Error"}
    finally:
        apigw.delete_api(ApiId=api_id)
