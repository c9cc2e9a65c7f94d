"""A small synchronous client of lambdalet's API, used by the CLI.

It speaks the same REST API as boto3, SigV4-signed as boto3 signs (a node checks signatures
only with ``LAMBDALET_VERIFY_SIGNATURES``), plus lambdalet's log endpoint, and knows how to
zip a directory and deploy it. Its keys are ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` when both are set, else a node's default ``test``/``test``; its
region ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, else ``us-east-1``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import zipfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from lambdalet.errors import LambdaletError
from lambdalet.sigv4 import SignedRequest, service_of, sign

MANIFEST = "lambdalet.json"
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/lambdalet"


class ApiError(LambdaletError):
    """Raised when the API answers with an AWS-shaped error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class InvokeResponse:
    """What Invoke answered."""

    status: int
    payload: bytes
    function_error: str | None
    log_text: str
    request_id: str


def zip_directory(directory: Path) -> bytes:
    """A zip of everything under ``directory`` (the manifest aside), reproducible byte for byte."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
            for file_name in sorted(files):
                path = Path(root) / file_name
                relative = path.relative_to(directory).as_posix()
                if relative == MANIFEST:
                    continue
                info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
                executable = path.stat().st_mode & stat.S_IXUSR
                info.external_attr = (0o100755 if executable else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The directory's ``lambdalet.json`` (name, handler, runtime, ...), or {}."""
    path = directory / MANIFEST
    if not path.exists():
        return {}
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


class SigV4(httpx.Auth):
    """Signs each request with SigV4 (its host and body), for the service its path belongs to:
    Lambda, the Scheduler or API Gateway v2."""

    requires_request_body = True

    def __init__(self, access_key: str, secret: str, region: str) -> None:
        self.access_key = access_key
        self.secret = secret
        self.region = region

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the signature's headers, then send."""
        raw_path, _, raw_query = request.url.raw_path.decode("ascii").partition("?")
        signed = SignedRequest(
            method=request.method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=[("host", request.headers["host"])],
            body=request.content,
        )
        service = service_of(request.method, raw_path)
        request.headers.update(
            sign(signed, self.access_key, self.secret, region=self.region, service=service)
        )
        yield request


def default_credentials() -> tuple[str, str, str]:
    """(access key, secret, region) from the AWS environment variables, else the defaults."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if key and secret:
        return key, secret, region
    return "test", "test", region


class Client:
    """Calls one lambdalet node, signing with ``credentials`` (access key, secret, region;
    default: :func:`default_credentials`)."""

    def __init__(
        self,
        endpoint_url: str,
        timeout_s: float = 960.0,
        *,
        credentials: tuple[str, str, str] | None = None,
    ) -> None:
        auth = SigV4(*(credentials or default_credentials()))
        self._http = httpx.Client(base_url=endpoint_url, timeout=timeout_s, auth=auth)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        error_code = response.headers.get("x-amzn-errortype")
        if error_code:
            body = response.json() if response.content else {}
            message = body.get("Message") or body.get("message") or response.text
            raise ApiError(response.status_code, error_code.split(":")[0], message)
        return response

    def create_function(self, name: str, zip_bytes: bytes, **settings: Any) -> dict[str, Any]:
        """CreateFunction with the zip and AWS-named settings (Handler, Runtime, ...)."""
        body = {"FunctionName": name, "Role": DEFAULT_ROLE, **settings}
        body["Code"] = {"ZipFile": base64.b64encode(zip_bytes).decode()}
        result: dict[str, Any] = self._call("POST", "/2015-03-31/functions", json=body).json()
        return result

    def update_function_code(self, name: str, zip_bytes: bytes) -> dict[str, Any]:
        """UpdateFunctionCode with a new zip."""
        body = {"ZipFile": base64.b64encode(zip_bytes).decode()}
        result: dict[str, Any] = self._call(
            "PUT", f"/2015-03-31/functions/{quote(name)}/code", json=body
        ).json()
        return result

    def update_function_configuration(self, name: str, **settings: Any) -> dict[str, Any]:
        """UpdateFunctionConfiguration with AWS-named settings."""
        path = f"/2015-03-31/functions/{quote(name)}/configuration"
        result: dict[str, Any] = self._call("PUT", path, json=settings).json()
        return result

    def get_function(self, name: str) -> dict[str, Any]:
        """GetFunction."""
        result: dict[str, Any] = self._call("GET", f"/2015-03-31/functions/{quote(name)}").json()
        return result

    def list_functions(self) -> list[dict[str, Any]]:
        """Every function, following NextMarker."""
        found: list[dict[str, Any]] = []
        marker = ""
        while True:
            params = {"MaxItems": "50", **({"Marker": marker} if marker else {})}
            page = self._call("GET", "/2015-03-31/functions", params=params).json()
            found += page["Functions"]
            marker = page.get("NextMarker", "")
            if not marker:
                return found

    def delete_function(self, name: str) -> None:
        """DeleteFunction."""
        self._call("DELETE", f"/2015-03-31/functions/{quote(name)}")

    def invoke(
        self, name: str, payload: bytes, *, invocation_type: str = "RequestResponse"
    ) -> InvokeResponse:
        """Invoke with LogType=Tail."""
        headers = {"X-Amz-Invocation-Type": invocation_type, "X-Amz-Log-Type": "Tail"}
        response = self._call(
            "POST",
            f"/2015-03-31/functions/{quote(name)}/invocations",
            content=payload,
            headers=headers,
        )
        log_result = response.headers.get("x-amz-log-result", "")
        return InvokeResponse(
            status=response.status_code,
            payload=response.content,
            function_error=response.headers.get("x-amz-function-error"),
            log_text=base64.b64decode(log_result).decode("utf-8", "replace") if log_result else "",
            request_id=response.headers.get("x-amzn-requestid", ""),
        )

    def usage(self, month: str | None = None) -> dict[str, Any]:
        """The usage and cost report of a month (YYYY-MM; default: this one)."""
        params = {"month": month} if month else {}
        report: dict[str, Any] = self._call("GET", "/_lambdalet/usage", params=params).json()
        return report

    def read_logs(self, name: str, after_id: int = 0) -> list[dict[str, Any]]:
        """Log events of a function with ids above ``after_id``."""
        path = f"/_lambdalet/functions/{quote(name)}/logs"
        events: list[dict[str, Any]] = self._call(
            "GET", path, params={"after_id": after_id}
        ).json()["events"]
        return events

    def create_schedule(
        self,
        name: str,
        expression: str,
        target_arn: str,
        *,
        event: str | None = None,
        timezone: str | None = None,
    ) -> str:
        """CreateSchedule (EventBridge Scheduler) invoking a function; return the schedule's ARN.

        ``event`` (JSON text) is the event the function gets; without it, the Scheduled Event.
        """
        target: dict[str, Any] = {"Arn": target_arn, "RoleArn": DEFAULT_ROLE}
        if event is not None:
            target["Input"] = event
        body: dict[str, Any] = {
            "ScheduleExpression": expression,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": target,
        }
        if timezone is not None:
            body["ScheduleExpressionTimezone"] = timezone
        response = self._call("POST", f"/schedules/{quote(name, safe='')}", json=body)
        arn: str = response.json()["ScheduleArn"]
        return arn

    def get_schedule(self, name: str) -> dict[str, Any]:
        """GetSchedule."""
        result: dict[str, Any] = self._call("GET", f"/schedules/{quote(name, safe='')}").json()
        return result

    def list_schedules(self) -> list[dict[str, Any]]:
        """Every schedule's summary, following NextToken."""
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"MaxResults": "100", **({"NextToken": token} if token else {})}
            page = self._call("GET", "/schedules", params=params).json()
            found += page["Schedules"]
            token = page.get("NextToken", "")
            if not token:
                return found

    def delete_schedule(self, name: str) -> None:
        """DeleteSchedule."""
        self._call("DELETE", f"/schedules/{quote(name, safe='')}")

    def http_api(self, name: str, *, create: bool = False) -> dict[str, Any] | None:
        """The HTTP API called ``name`` (apigatewayv2 GetApis); with ``create``, made with a
        ``$default`` stage if there is none."""
        apis = self._call("GET", "/v2/apis", params={"maxResults": "500"}).json()["items"]
        for api in apis:
            if api["name"] == name:
                found: dict[str, Any] = api
                return found
        if not create:
            return None
        created: dict[str, Any] = self._call(
            "POST", "/v2/apis", json={"name": name, "protocolType": "HTTP"}
        ).json()
        stage = {"stageName": "$default", "autoDeploy": True}
        self._call("POST", f"/v2/apis/{created['apiId']}/stages", json=stage)
        return created

    def add_route(self, api_id: str, route_key: str, function_arn: str) -> dict[str, Any]:
        """CreateIntegration for a function, then CreateRoute to it; return the route."""
        base = f"/v2/apis/{api_id}"
        integration = self._call(
            "POST",
            f"{base}/integrations",
            json={"integrationType": "AWS_PROXY", "integrationUri": function_arn},
        ).json()
        body = {"routeKey": route_key, "target": f"integrations/{integration['integrationId']}"}
        route: dict[str, Any] = self._call("POST", f"{base}/routes", json=body).json()
        return route

    def list_routes(self, api_id: str) -> list[tuple[dict[str, Any], str]]:
        """Each route of an HTTP API with the function ARN it is integrated with ("" if none)."""
        base = f"/v2/apis/{api_id}"
        routes = self._call("GET", f"{base}/routes").json()["items"]
        integrations = {
            i["integrationId"]: i["integrationUri"]
            for i in self._call("GET", f"{base}/integrations").json()["items"]
        }
        return [
            (route, integrations.get(route.get("target", "").removeprefix("integrations/"), ""))
            for route in routes
        ]

    def remove_route(self, api_id: str, route_key: str) -> bool:
        """DeleteRoute of the route with that key, and its integration if no other route uses
        it; whether there was such a route."""
        base = f"/v2/apis/{api_id}"
        routes = self._call("GET", f"{base}/routes").json()["items"]
        route = next((r for r in routes if r["routeKey"] == route_key), None)
        if route is None:
            return False
        self._call("DELETE", f"{base}/routes/{route['routeId']}")
        target = route.get("target", "")
        if target and not any(r.get("target") == target for r in routes if r is not route):
            self._call("DELETE", f"{base}/integrations/{target.removeprefix('integrations/')}")
        return True

    def deploy(self, directory: Path, **overrides: Any) -> dict[str, Any]:
        """Create the function from ``directory``, or update its code and settings if it exists.

        Settings come from the directory's ``lambdalet.json`` (keys ``name``, ``handler``,
        ``runtime``, ``memory``, ``timeout``, ``environment``), overridden by ``overrides``.
        """
        manifest = {
            **read_manifest(directory),
            **{k: v for k, v in overrides.items() if v is not None},
        }
        name = manifest.get("name") or directory.resolve().name
        settings: dict[str, Any] = {}
        for key, aws_key in (
            ("handler", "Handler"),
            ("runtime", "Runtime"),
            ("memory", "MemorySize"),
            ("timeout", "Timeout"),
            ("description", "Description"),
        ):
            if key in manifest:
                settings[aws_key] = manifest[key]
        if "environment" in manifest:
            settings["Environment"] = {"Variables": manifest["environment"]}
        zip_bytes = zip_directory(directory)
        try:
            self.get_function(name)
        except ApiError as error:
            if error.code != "ResourceNotFoundException":
                raise
            return self.create_function(name, zip_bytes, **settings)
        updated = self.update_function_code(name, zip_bytes)
        if settings:
            updated = self.update_function_configuration(name, **settings)
        return updated
