"""A function's resource-based policy: AddPermission, RemovePermission, GetPolicy.

Each qualifier ($LATEST when none is given, a version or an alias) has its own policy, kept as
the function setting ``policy:<qualifier>``: ``{"RevisionId": ..., "Statement": [...]}``.
Statements have AWS's shape: Sid, Effect Allow, Principal (``{"Service": ...}`` for a service,
``{"AWS": "arn:aws:iam::<account>:root"}`` for an account id, ``"*"`` for everyone), Action,
Resource (the function's ARN, qualified when a qualifier was given) and Condition
(``AWS:SourceArn``, ``AWS:SourceAccount``, ``aws:PrincipalOrgID``,
``lambda:FunctionUrlAuthType``, ``lambda:EventSourceToken``).

lambdalet enforces these policies only for function URLs with AuthType AWS_IAM (see
``lambdalet.frontdoor.urls``); the Lambda API itself does not check signatures.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import json_object, node_of, parse_function_name, require_string
from lambdalet.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from lambdalet.models import LATEST
from lambdalet.node import Node

POLICY = "policy:"
ACTION_PATTERN = r"(lambda:[*]|lambda:[a-zA-Z]+|[*])"
STATEMENT_ID_PATTERN = r"([a-zA-Z0-9-_.]+)"
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_MAX_BODY_BYTES = 64 * 1024
_MAX_POLICY_BYTES = 20 * 1024


async def _target(request: Request) -> tuple[Node, str, str]:
    node = node_of(request)
    name, qualifier = parse_function_name(request.path_params["function_name"])
    qualifier = request.query_params.get("Qualifier", qualifier) or LATEST
    await node.function(name, qualifier)
    return node, name, qualifier


async def policy_of(node: Node, name: str, qualifier: str) -> dict[str, Any] | None:
    """The stored policy of a function's qualifier, if it has statements."""
    settings = await node.function_settings(name)
    policy: dict[str, Any] | None = settings.get((name, POLICY + qualifier))
    return policy


def principal_of(value: str) -> str | dict[str, str]:
    """A statement's Principal for AddPermission's Principal parameter, as AWS writes it."""
    if value == "*":
        return "*"
    if _ACCOUNT_ID.match(value):
        return {"AWS": f"arn:aws:iam::{value}:root"}
    if value.startswith("arn:"):
        return {"AWS": value}
    if value.endswith(".amazonaws.com") or "." in value:
        return {"Service": value}
    raise InvalidParameterValueException(
        f"The provided principal was invalid: {value!r}; give an account id, an IAM ARN,"
        " a service principal (s3.amazonaws.com) or *"
    )


def _policy_document(name: str, statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Id": "default", "Statement": statements}


def _check_revision(request_revision: Any, policy: dict[str, Any] | None) -> None:
    if request_revision and (policy is None or policy["RevisionId"] != request_revision):
        raise PreconditionFailedException.stale_revision("GetPolicy")


async def add_permission(request: Request) -> Response:
    """AddPermission: POST /2015-03-31/functions/{FunctionName}/policy."""
    node, name, qualifier = await _target(request)
    body = await json_object(request, _MAX_BODY_BYTES, "AddPermission")
    for field in ("StatementId", "Action", "Principal"):
        if body.get(field) is None:
            raise ValidationException(
                f"1 validation error detected: Value null at '{field[0].lower() + field[1:]}'"
                " failed to satisfy constraint: Member must not be null"
            )
    sid = require_string(body["StatementId"], "statementId", 100, pattern=STATEMENT_ID_PATTERN)
    action = require_string(body["Action"], "action", 10000, pattern=ACTION_PATTERN)
    principal = principal_of(require_string(body["Principal"], "principal", 2048))
    policy = await policy_of(node, name, qualifier)
    _check_revision(body.get("RevisionId"), policy)
    statements: list[dict[str, Any]] = list(policy["Statement"]) if policy else []
    if any(statement["Sid"] == sid for statement in statements):
        raise ResourceConflictException(
            "The statement id (sid) provided already exists. Please choose another statement id."
        )
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": node.settings.function_arn(name, None if qualifier == LATEST else qualifier),
    }
    condition: dict[str, dict[str, str]] = {}
    if body.get("SourceAccount"):
        condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = body["SourceAccount"]
    if body.get("PrincipalOrgID"):
        condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = body["PrincipalOrgID"]
    if body.get("EventSourceToken"):
        condition.setdefault("StringEquals", {})["lambda:EventSourceToken"] = body[
            "EventSourceToken"
        ]
    if body.get("FunctionUrlAuthType") is not None:
        auth_type = body["FunctionUrlAuthType"]
        if auth_type not in ("NONE", "AWS_IAM"):
            raise ValidationException(
                f"1 validation error detected: Value '{auth_type}' at 'functionUrlAuthType'"
                " failed to satisfy constraint: Member must satisfy enum value set:"
                " [NONE, AWS_IAM]"
            )
        condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = auth_type
    if body.get("SourceArn"):
        condition["ArnLike"] = {"AWS:SourceArn": body["SourceArn"]}
    if condition:
        statement["Condition"] = condition
    statements.append(statement)
    if len(json.dumps(_policy_document(name, statements))) > _MAX_POLICY_BYTES:
        raise InvalidParameterValueException(
            "The final policy size is bigger than the limit (20 KB); remove statements first"
        )
    await node.put_setting(
        name, POLICY + qualifier, {"RevisionId": str(uuid.uuid4()), "Statement": statements}
    )
    return JSONResponse({"Statement": json.dumps(statement)}, status_code=201)


async def remove_permission(request: Request) -> Response:
    """RemovePermission: DELETE /2015-03-31/functions/{FunctionName}/policy/{StatementId}."""
    node, name, qualifier = await _target(request)
    sid = request.path_params["statement_id"]
    policy = await policy_of(node, name, qualifier)
    _check_revision(request.query_params.get("RevisionId"), policy)
    statements = [s for s in (policy or {}).get("Statement", []) if s["Sid"] != sid]
    if policy is None or len(statements) == len(policy["Statement"]):
        raise ResourceNotFoundException(
            f"Statement {sid} is not found in resource policy."
            if policy
            else "No policy is associated with the given resource."
        )
    await node.put_setting(
        name,
        POLICY + qualifier,
        {"RevisionId": str(uuid.uuid4()), "Statement": statements} if statements else None,
    )
    return Response(status_code=204)


async def get_policy(request: Request) -> Response:
    """GetPolicy: GET /2015-03-31/functions/{FunctionName}/policy."""
    node, name, qualifier = await _target(request)
    policy = await policy_of(node, name, qualifier)
    if policy is None:
        raise ResourceNotFoundException("The resource you requested does not exist.")
    return JSONResponse(
        {
            "Policy": json.dumps(_policy_document(name, policy["Statement"])),
            "RevisionId": policy["RevisionId"],
        }
    )
