"""The Lambda control plane through boto3 and raw HTTP against a real node: function CRUD,
pagination, configuration that takes effect at invoke, and every error path with its code."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from lambdalet.testing import Deploy, ServerThread, make_zip

ROLE = "arn:aws:iam::000000000000:role/lambdalet-test"
ARN_PREFIX = "arn:aws:lambda:us-east-1:000000000000:function:"
LAST_MODIFIED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000")

# Reports what the function was configured with, as the sandbox sees it.
REPORTER = """
import os

def handler(event, context):
    return {
        "module": __name__,
        "lang": "python",
        "greeting": os.environ.get("GREETING"),
        "memory": context.memory_limit_in_mb,
        "memory_env": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "handler_env": os.environ.get("_HANDLER"),
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
        "launched_by": os.environ.get("LAUNCHED_BY", "runtime"),
    }
"""
OTHER_MODULE = """
def handler(event, context):
    return {"module": __name__, "lang": "python"}
"""
# A custom runtime: the official awslambdaric, run by the zip's own bootstrap.
BOOTSTRAP = f"""#!/bin/sh
export LAUNCHED_BY=bootstrap
exec {sys.executable} -m awslambdaric "$_HANDLER"
"""

Create = Callable[..., dict[str, Any]]


def sha256_b64(data: bytes) -> str:
    """CodeSha256 as AWS reports it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def unique_source(tag: str) -> str:
    """A handler whose zip no other test shares, so its code blob is its own."""
    return f"# {tag}\ndef handler(event, context):\n    return {{'tag': {tag!r}}}\n"


def invoke_json(client: Any, name: str, payload: Any = None) -> Any:
    """Invoke synchronously and return the decoded result, failing on a function error."""
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}))
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    """(error code, HTTP status, message) of a ClientError, as botocore parsed them."""
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


@pytest.fixture
def create(lambda_client: Any, unique_name: str) -> Iterator[Create]:
    """CreateFunction with a zip the test built itself; the functions are deleted after."""
    created: list[str] = []

    def create_function(zip_bytes: bytes, *, name: str | None = None, **settings: Any) -> Any:
        function_name = name or f"{unique_name}-z{len(created)}"
        arguments: dict[str, Any] = {
            "FunctionName": function_name,
            "Runtime": "python3.11",
            "Role": ROLE,
            "Handler": "app.handler",
            "Code": {"ZipFile": zip_bytes},
            **settings,
        }
        created.append(function_name)
        return lambda_client.create_function(**arguments)

    yield create_function
    for function_name in created:
        with contextlib.suppress(lambda_client.exceptions.ResourceNotFoundException):
            lambda_client.delete_function(FunctionName=function_name)


# --- CreateFunction, GetFunction, GetFunctionConfiguration ---------------------------------


def test_create_function_returns_every_configuration_field(
    create: Create, unique_name: str
) -> None:
    zip_bytes = make_zip({"app.py": unique_source(unique_name)})
    name = f"{unique_name}-full"
    before = datetime.now(UTC)

    created = create(
        zip_bytes,
        name=name,
        Description="every field",
        Timeout=7,
        MemorySize=256,
        Environment={"Variables": {"GREETING": "hi", "EMPTY": ""}},
        Tags={"team": "core"},
    )

    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["FunctionName"] == name
    assert created["FunctionArn"] == f"{ARN_PREFIX}{name}"
    assert created["Runtime"] == "python3.11"
    assert created["Role"] == ROLE
    assert created["Handler"] == "app.handler"
    assert created["CodeSha256"] == sha256_b64(zip_bytes)
    assert created["CodeSize"] == len(zip_bytes)
    assert created["Description"] == "every field"
    assert created["Timeout"] == 7
    assert created["MemorySize"] == 256
    assert created["Environment"] == {"Variables": {"GREETING": "hi", "EMPTY": ""}}
    assert created["Version"] == "$LATEST"
    assert created["State"] == "Active"
    assert created["LastUpdateStatus"] == "Successful"
    assert created["PackageType"] == "Zip"
    assert created["TracingConfig"] == {"Mode": "PassThrough"}
    assert created["EphemeralStorage"] == {"Size": 512}
    assert created["Architectures"] in (["x86_64"], ["arm64"])
    assert str(uuid.UUID(created["RevisionId"])) == created["RevisionId"]
    assert LAST_MODIFIED.fullmatch(created["LastModified"]), created["LastModified"]
    modified = datetime.strptime(created["LastModified"], "%Y-%m-%dT%H:%M:%S.%f%z")
    # A sanity bound on the clock, not a speed check: the timestamp is of this creation.
    assert before - timedelta(seconds=2) <= modified <= datetime.now(UTC) + timedelta(minutes=5)


def test_create_function_defaults(create: Create, unique_name: str) -> None:
    created = create(make_zip({"app.py": unique_source(unique_name)}))

    assert created["Timeout"] == 3
    assert created["MemorySize"] == 128
    assert created["Description"] == ""
    assert "Environment" not in created


def test_get_function_has_configuration_downloadable_code_and_tags(
    create: Create, lambda_client: Any, unique_name: str
) -> None:
    zip_bytes = make_zip({"app.py": unique_source(unique_name), "data/notes.txt": "notes"})
    created = create(zip_bytes, Tags={"team": "core", "cost-center": "42"})
    name = created["FunctionName"]

    got = lambda_client.get_function(FunctionName=name)

    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    configuration = got["Configuration"]
    for key in ("FunctionArn", "CodeSha256", "CodeSize", "RevisionId", "LastModified", "Handler"):
        assert configuration[key] == created[key], key
    assert got["Tags"] == {"team": "core", "cost-center": "42"}
    assert got["Code"]["RepositoryType"] == "S3"
    download = httpx.get(got["Code"]["Location"])
    assert download.status_code == 200
    assert download.content == zip_bytes


def test_get_function_configuration_matches_create(create: Create, lambda_client: Any) -> None:
    created = create(make_zip({"app.py": REPORTER}), MemorySize=512, Description="config")

    configuration = lambda_client.get_function_configuration(FunctionName=created["FunctionName"])

    assert configuration["ResponseMetadata"]["HTTPStatusCode"] == 200
    del configuration["ResponseMetadata"], created["ResponseMetadata"]
    assert configuration == created


def test_code_location_of_unknown_blob_is_404(server: ServerThread) -> None:
    response = httpx.get(f"{server.url}/_lambdalet/code/{'0' * 64}.zip")

    assert response.status_code == 404
    assert response.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"


# --- ListFunctions ---------------------------------------------------------------------------


def test_list_functions_pages_with_marker_and_max_items(deploy: Deploy, lambda_client: Any) -> None:
    names = [deploy(REPORTER)["FunctionName"] for _ in range(7)]
    assert names == sorted(names)

    seen: list[str] = []
    pages = 0
    marker: str | None = None
    while True:
        kwargs: dict[str, Any] = {"MaxItems": 2}
        if marker is not None:
            kwargs["Marker"] = marker
        page = lambda_client.list_functions(**kwargs)
        pages += 1
        page_names = [f["FunctionName"] for f in page["Functions"]]
        assert 1 <= len(page_names) <= 2
        seen += page_names
        marker = page.get("NextMarker")
        if marker is None:
            break
        assert marker == page_names[-1]
        assert pages < 10_000, "pagination does not end"

    assert seen == sorted(seen), "functions are listed by name"
    assert len(seen) == len(set(seen)), "a function is listed twice"
    mine = [name for name in seen if name in names]
    assert mine == names
    assert pages >= 4

    # The names share a prefix no other function has, so they are contiguous in the listing.
    middle = lambda_client.list_functions(Marker=names[2], MaxItems=3)
    assert [f["FunctionName"] for f in middle["Functions"]] == names[3:6]
    assert middle["NextMarker"] == names[5]
    listed = middle["Functions"][0]
    assert listed["FunctionArn"] == f"{ARN_PREFIX}{names[3]}"
    assert listed["State"] == "Active"


def test_list_functions_with_boto3_paginator(deploy: Deploy, lambda_client: Any) -> None:
    names = [deploy(REPORTER)["FunctionName"] for _ in range(7)]
    paginator = lambda_client.get_paginator("list_functions")

    pages = list(paginator.paginate(PaginationConfig={"PageSize": 3}))

    listed = [f["FunctionName"] for page in pages for f in page["Functions"]]
    assert [name for name in listed if name in names] == names
    assert len(listed) == len(set(listed))
    assert all(len(page["Functions"]) <= 3 for page in pages)
    assert len(pages) >= 3

    limited = paginator.paginate(
        PaginationConfig={"MaxItems": 5, "PageSize": 2, "StartingToken": names[0]}
    ).build_full_result()
    assert [f["FunctionName"] for f in limited["Functions"]] == names[1:6]
    assert "NextToken" in limited


def test_list_functions_max_items_out_of_range(raw_client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        raw_client.list_functions(MaxItems=0)

    code, status, message = error_of(caught)
    assert (code, status) == ("ValidationException", 400)
    assert "maxItems" in message
    assert "greater than or equal to 1" in message


# --- UpdateFunctionCode ----------------------------------------------------------------------


def test_update_function_code_changes_sha_revision_and_behaviour(
    create: Create, lambda_client: Any, unique_name: str
) -> None:
    old_zip = make_zip({"app.py": unique_source(f"{unique_name}-old")})
    created = create(old_zip)
    name = created["FunctionName"]
    old_location = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    assert invoke_json(lambda_client, name) == {"tag": f"{unique_name}-old"}
    new_zip = make_zip({"app.py": unique_source(f"{unique_name}-new")})

    updated = lambda_client.update_function_code(
        FunctionName=name, ZipFile=new_zip, RevisionId=created["RevisionId"]
    )

    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert updated["CodeSha256"] == sha256_b64(new_zip) != created["CodeSha256"]
    assert updated["CodeSize"] == len(new_zip)
    assert updated["RevisionId"] != created["RevisionId"]
    assert LAST_MODIFIED.fullmatch(updated["LastModified"])
    assert invoke_json(lambda_client, name) == {"tag": f"{unique_name}-new"}
    got = lambda_client.get_function(FunctionName=name)
    assert got["Configuration"]["RevisionId"] == updated["RevisionId"]
    assert httpx.get(got["Code"]["Location"]).content == new_zip
    # The old zip belonged to this function alone, so it is collected.
    assert httpx.get(old_location).status_code == 404


def test_update_function_code_with_stale_revision_is_refused(
    create: Create, lambda_client: Any, unique_name: str
) -> None:
    created = create(make_zip({"app.py": unique_source(f"{unique_name}-a")}))
    name = created["FunctionName"]
    lambda_client.update_function_configuration(FunctionName=name, Description="moved on")

    with pytest.raises(ClientError) as caught:
        lambda_client.update_function_code(
            FunctionName=name,
            ZipFile=make_zip({"app.py": unique_source(f"{unique_name}-b")}),
            RevisionId=created["RevisionId"],
        )

    code, status, message = error_of(caught)
    assert (code, status) == ("PreconditionFailedException", 412)
    assert "Revision Id" in message
    assert "GetFunction" in message
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert after["CodeSha256"] == created["CodeSha256"]
    assert invoke_json(lambda_client, name) == {"tag": f"{unique_name}-a"}


def test_update_function_configuration_with_stale_revision_is_refused(
    create: Create, lambda_client: Any
) -> None:
    created = create(make_zip({"app.py": REPORTER}))
    name = created["FunctionName"]
    lambda_client.update_function_configuration(FunctionName=name, Description="first")

    with pytest.raises(ClientError) as caught:
        lambda_client.update_function_configuration(
            FunctionName=name, Description="second", RevisionId=created["RevisionId"]
        )

    code, status, message = error_of(caught)
    assert (code, status) == ("PreconditionFailedException", 412)
    assert "Revision Id" in message
    assert lambda_client.get_function_configuration(FunctionName=name)["Description"] == "first"


# --- UpdateFunctionConfiguration -------------------------------------------------------------


def test_update_function_configuration_takes_effect_at_invoke(
    create: Create, lambda_client: Any
) -> None:
    created = create(
        make_zip(
            {"app.py": REPORTER, "other.py": OTHER_MODULE, "bootstrap": BOOTSTRAP},
            modes={"bootstrap": 0o100755},
        )
    )
    name = created["FunctionName"]
    first = invoke_json(lambda_client, name)
    assert first["greeting"] is None
    assert (first["execution_env"], first["launched_by"]) == ("AWS_Lambda_python3.11", "runtime")
    assert int(first["memory"]) == 128
    assert 0 < first["remaining_ms"] <= 3000

    updated = lambda_client.update_function_configuration(
        FunctionName=name,
        Environment={"Variables": {"GREETING": "bonjour"}},
        MemorySize=384,
        Timeout=30,
        Description="reconfigured",
        RevisionId=created["RevisionId"],
    )

    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert updated["Environment"] == {"Variables": {"GREETING": "bonjour"}}
    assert (updated["MemorySize"], updated["Timeout"]) == (384, 30)
    assert updated["Description"] == "reconfigured"
    assert updated["RevisionId"] != created["RevisionId"]
    assert updated["CodeSha256"] == created["CodeSha256"]
    again = invoke_json(lambda_client, name)
    assert again["greeting"] == "bonjour"
    assert int(again["memory"]) == 384
    assert again["memory_env"] == "384"
    # Only a 30 s timeout leaves more than 3 s; not a speed check.
    assert 3000 < again["remaining_ms"] <= 30_000
    configuration = lambda_client.get_function_configuration(FunctionName=name)
    assert configuration["Description"] == "reconfigured"
    assert configuration["Environment"] == {"Variables": {"GREETING": "bonjour"}}

    handler_changed = lambda_client.update_function_configuration(
        FunctionName=name, Handler="other.handler"
    )
    assert handler_changed["Handler"] == "other.handler"
    assert invoke_json(lambda_client, name) == {"module": "other", "lang": "python"}

    runtime_changed = lambda_client.update_function_configuration(
        FunctionName=name, Runtime="provided.al2023", Handler="app.handler"
    )
    assert runtime_changed["Runtime"] == "provided.al2023"
    custom = invoke_json(lambda_client, name)
    assert (custom["execution_env"], custom["launched_by"]) == (
        "AWS_Lambda_provided.al2023",
        "bootstrap",
    )
    assert custom["greeting"] == "bonjour"
    # Settings not named in an update are kept.
    assert runtime_changed["MemorySize"] == 384
    assert runtime_changed["Environment"] == {"Variables": {"GREETING": "bonjour"}}


def test_update_function_configuration_clears_environment(
    create: Create, lambda_client: Any
) -> None:
    created = create(
        make_zip({"app.py": REPORTER}), Environment={"Variables": {"GREETING": "hello"}}
    )
    name = created["FunctionName"]
    assert invoke_json(lambda_client, name)["greeting"] == "hello"

    updated = lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {}}
    )

    assert "Environment" not in updated
    assert invoke_json(lambda_client, name)["greeting"] is None


# --- DeleteFunction, GetAccountSettings ------------------------------------------------------


def test_delete_function_then_it_is_gone(create: Create, lambda_client: Any) -> None:
    created = create(make_zip({"app.py": REPORTER}))
    name = created["FunctionName"]

    deleted = lambda_client.delete_function(FunctionName=name)

    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    for call in (
        lambda_client.get_function,
        lambda_client.get_function_configuration,
        lambda_client.delete_function,
        lambda_client.invoke,
    ):
        with pytest.raises(ClientError) as caught:
            call(FunctionName=name)
        code, status, message = error_of(caught)
        assert (code, status) == ("ResourceNotFoundException", 404), call
        assert f"{ARN_PREFIX}{name}" in message
    names = [
        f["FunctionName"]
        for page in lambda_client.get_paginator("list_functions").paginate()
        for f in page["Functions"]
    ]
    assert name not in names


def test_account_settings_count_functions_and_code(
    create: Create, lambda_client: Any, unique_name: str
) -> None:
    before = lambda_client.get_account_settings()
    assert before["AccountLimit"]["CodeSizeZipped"] == 50 * 1024 * 1024
    assert before["AccountLimit"]["CodeSizeUnzipped"] == 250 * 1024 * 1024

    created = create(make_zip({"app.py": unique_source(unique_name)}))
    during = lambda_client.get_account_settings()
    lambda_client.delete_function(FunctionName=created["FunctionName"])
    after = lambda_client.get_account_settings()

    usage_before, usage_during = before["AccountUsage"], during["AccountUsage"]
    assert usage_during["FunctionCount"] == usage_before["FunctionCount"] + 1
    assert usage_during["TotalCodeSize"] == usage_before["TotalCodeSize"] + created["CodeSize"]
    assert after["AccountUsage"] == usage_before


# --- Qualified names and ARNs ----------------------------------------------------------------


def test_function_name_may_be_qualified_or_an_arn(create: Create, lambda_client: Any) -> None:
    created = create(make_zip({"app.py": REPORTER}))
    name = created["FunctionName"]
    arn = f"{ARN_PREFIX}{name}"

    for identifier in (
        f"{name}:$LATEST",
        arn,
        f"{arn}:$LATEST",
        f"000000000000:function:{name}",
    ):
        got = lambda_client.get_function_configuration(FunctionName=identifier)
        assert got["FunctionName"] == name, identifier
        assert got["RevisionId"] == created["RevisionId"], identifier
    by_parameter = lambda_client.get_function(FunctionName=name, Qualifier="$LATEST")
    assert by_parameter["Configuration"]["FunctionArn"] == arn
    assert invoke_json(lambda_client, arn)["module"] == "app"
    assert invoke_json(lambda_client, f"{name}:$LATEST")["module"] == "app"
    updated = lambda_client.update_function_configuration(FunctionName=arn, Description="by arn")
    assert updated["Description"] == "by arn"


def test_unknown_qualifier_is_not_found(create: Create, lambda_client: Any) -> None:
    name = create(make_zip({"app.py": REPORTER}))["FunctionName"]

    calls: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
        (lambda_client.get_function, {"FunctionName": f"{name}:99"}, "99"),
        (lambda_client.get_function, {"FunctionName": name, "Qualifier": "nosuch"}, "nosuch"),
        (lambda_client.get_function_configuration, {"FunctionName": f"{name}:nosuch"}, "nosuch"),
        (lambda_client.invoke, {"FunctionName": name, "Qualifier": "nosuch"}, "nosuch"),
    ]
    for call, kwargs, qualifier in calls:
        with pytest.raises(ClientError) as caught:
            call(**kwargs)
        code, status, message = error_of(caught)
        assert (code, status) == ("ResourceNotFoundException", 404), kwargs
        assert f"{ARN_PREFIX}{name}:{qualifier}" in message, message


# --- Error paths -----------------------------------------------------------------------------


def test_unknown_function_is_not_found(lambda_client: Any, unique_name: str) -> None:
    name = f"{unique_name}-never-created"
    calls: list[tuple[Callable[..., Any], dict[str, Any]]] = [
        (lambda_client.get_function, {}),
        (lambda_client.get_function_configuration, {}),
        (lambda_client.update_function_configuration, {"Description": "x"}),
        (lambda_client.update_function_code, {"ZipFile": make_zip({"app.py": REPORTER})}),
        (lambda_client.delete_function, {}),
        (lambda_client.invoke, {"Payload": b"{}"}),
    ]
    for call, kwargs in calls:
        with pytest.raises(ClientError) as caught:
            call(FunctionName=name, **kwargs)
        code, status, message = error_of(caught)
        assert (code, status) == ("ResourceNotFoundException", 404), call
        assert message == f"Function not found: {ARN_PREFIX}{name}", call


def test_create_twice_is_a_conflict(deploy: Deploy, lambda_client: Any) -> None:
    created = deploy(REPORTER)
    name = created["FunctionName"]

    with pytest.raises(ClientError) as caught:
        deploy(OTHER_MODULE, name=name)

    code, status, message = error_of(caught)
    assert (code, status) == ("ResourceConflictException", 409)
    assert name in message
    assert "exist" in message
    kept = lambda_client.get_function_configuration(FunctionName=name)
    assert kept["CodeSha256"] == created["CodeSha256"]


@pytest.mark.parametrize(
    "bad_name", ["bad name!", "a" * 65, "with/slash", "dots.are.not.allowed", ""]
)
def test_create_with_bad_function_name(raw_client: Any, bad_name: str) -> None:
    with pytest.raises(ClientError) as caught:
        raw_client.create_function(
            FunctionName=bad_name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": REPORTER})},
        )

    code, status, message = error_of(caught)
    assert (code, status) == ("ValidationException", 400)
    assert "functionName" in message
    assert "[a-zA-Z0-9-_]+" in message


def test_get_with_bad_function_name(raw_client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        raw_client.get_function(FunctionName="bad name!")

    code, status, message = error_of(caught)
    assert (code, status) == ("ValidationException", 400)
    assert "bad name!" in message
    assert "functionName" in message


@pytest.mark.parametrize(
    ("setting", "value", "field", "bound"),
    [
        ("MemorySize", 100, "memorySize", "greater than or equal to 128"),
        ("MemorySize", 20000, "memorySize", "less than or equal to 10240"),
        ("Timeout", 0, "timeout", "greater than or equal to 1"),
        ("Timeout", 901, "timeout", "less than or equal to 900"),
        ("MemorySize", "lots", "memorySize", "must be an integer"),
    ],
)
def test_create_with_setting_out_of_range(
    raw_client: Any,
    lambda_client: Any,
    unique_name: str,
    setting: str,
    value: Any,
    field: str,
    bound: str,
) -> None:
    with pytest.raises(ClientError) as caught:
        raw_client.create_function(
            FunctionName=unique_name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": REPORTER})},
            **{setting: value},
        )

    code, status, message = error_of(caught)
    assert (code, status) == ("ValidationException", 400)
    assert f"Value '{value}' at '{field}'" in message
    assert bound in message
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=unique_name)


@pytest.mark.parametrize(
    ("setting", "value", "fragment"),
    [("MemorySize", 100, "greater than or equal to 128"), ("Timeout", 901, "900")],
)
def test_update_with_setting_out_of_range(
    create: Create, raw_client: Any, lambda_client: Any, setting: str, value: int, fragment: str
) -> None:
    created = create(make_zip({"app.py": REPORTER}))

    with pytest.raises(ClientError) as caught:
        raw_client.update_function_configuration(
            FunctionName=created["FunctionName"], **{setting: value}
        )

    code, status, message = error_of(caught)
    assert (code, status) == ("ValidationException", 400)
    assert fragment in message
    after = lambda_client.get_function_configuration(FunctionName=created["FunctionName"])
    assert after["RevisionId"] == created["RevisionId"]


def create_error(client: Any, name: str, **overrides: Any) -> tuple[str, int, str]:
    """CreateFunction that must fail; its (code, status, message)."""
    arguments: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": make_zip({"app.py": REPORTER})},
    }
    arguments.update(overrides)
    arguments = {k: v for k, v in arguments.items() if v is not None}
    with pytest.raises(ClientError) as caught:
        client.create_function(**arguments)
    return error_of(caught)


def test_unknown_runtime_lists_available_ones(lambda_client: Any, unique_name: str) -> None:
    code, status, message = create_error(lambda_client, unique_name, Runtime="nodejs99.x")

    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "nodejs99.x" in message
    assert "Available runtimes:" in message
    assert "python3.11" in message.split("Available runtimes:", 1)[1]


@pytest.mark.parametrize(
    "key", ["AWS_REGION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_EXECUTION_ENV"]
)
def test_reserved_environment_key_is_refused(
    lambda_client: Any, unique_name: str, key: str
) -> None:
    code, status, message = create_error(
        lambda_client, unique_name, Environment={"Variables": {"OK": "1", key: "x"}}
    )

    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "reserved keys" in message
    assert message.endswith(key)


@pytest.mark.parametrize("key", ["_HANDLER", "1ABC", "WITH-DASH", "X"])
def test_environment_key_breaking_the_pattern_is_refused(
    lambda_client: Any, unique_name: str, key: str
) -> None:
    code, status, message = create_error(
        lambda_client, unique_name, Environment={"Variables": {key: "x"}}
    )

    assert (code, status) == ("ValidationException", 400)
    assert "[a-zA-Z]([a-zA-Z0-9_])+" in message
    assert f"(key '{key}')" in message


def test_environment_over_4kb_is_refused(lambda_client: Any, unique_name: str) -> None:
    variables = {"BIG": "x" * 4000, "MORE": "y" * 200}

    code, status, message = create_error(
        lambda_client, unique_name, Environment={"Variables": variables}
    )

    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "4KB" in message
    assert "4207 bytes" in message


def test_environment_of_exactly_4kb_is_accepted(create: Create) -> None:
    created = create(make_zip({"app.py": REPORTER}), Environment={"Variables": {"BIG": "x" * 4093}})

    assert len(created["Environment"]["Variables"]["BIG"]) == 4093


def test_update_with_reserved_environment_key_is_refused(
    create: Create, lambda_client: Any
) -> None:
    created = create(make_zip({"app.py": REPORTER}))

    with pytest.raises(ClientError) as caught:
        lambda_client.update_function_configuration(
            FunctionName=created["FunctionName"],
            Environment={"Variables": {"AWS_REGION": "eu-west-1"}},
        )

    code, status, message = error_of(caught)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "AWS_REGION" in message


def test_s3_code_location_is_refused(lambda_client: Any, unique_name: str) -> None:
    code, status, message = create_error(
        lambda_client, unique_name, Code={"S3Bucket": "bucket", "S3Key": "code.zip"}
    )

    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "S3" in message
    assert "ZipFile" in message


def test_container_image_is_refused(lambda_client: Any, unique_name: str) -> None:
    image = "000000000000.dkr.ecr.us-east-1.amazonaws.com/app:latest"
    # As a client sends it for an image: no Runtime, no Handler.
    code, status, message = create_error(
        lambda_client,
        unique_name,
        PackageType="Image",
        Code={"ImageUri": image},
        Runtime=None,
        Handler=None,
    )

    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "image" in message.lower()
    assert "Zip" in message

    code, status, message = create_error(
        lambda_client, unique_name, PackageType="Image", Code={"ImageUri": image}
    )
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "image" in message.lower()


def test_missing_code_is_refused(raw_client: Any, unique_name: str) -> None:
    code, status, message = create_error(raw_client, unique_name, Code={})

    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "Code.ZipFile is required" in message


def test_unsupported_media_type(server: ServerThread, lambda_client: Any, unique_name: str) -> None:
    response = httpx.post(
        f"{server.url}/2015-03-31/functions",
        content=f"<FunctionName>{unique_name}</FunctionName>",
        headers={"Content-Type": "application/xml"},
    )

    assert response.status_code == 415
    assert response.headers["x-amzn-ErrorType"] == "UnsupportedMediaTypeException"
    message = response.json()["message"]
    assert "application/xml" in message
    assert "application/json" in message
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=unique_name)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"FunctionName": "half', "Could not parse request body into json"),
        (b"not json at all", "Could not parse request body into json"),
        (b'["a", "list"]', "must be a JSON object"),
        (b"\xff\xfe\x00", "Could not parse request body into json"),
    ],
)
def test_malformed_create_body(server: ServerThread, body: bytes, fragment: str) -> None:
    response = httpx.post(
        f"{server.url}/2015-03-31/functions",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert fragment in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/2015-03-31/no-such-thing"),
        ("POST", "/2099-01-01/functions"),
        ("PATCH", "/2015-03-31/functions"),
    ],
)
def test_unknown_operation(server: ServerThread, method: str, path: str) -> None:
    response = httpx.request(method, f"{server.url}{path}", content=b"{}")

    assert response.status_code == 404
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert response.json()["message"] == f"No operation for {method} {path}"
