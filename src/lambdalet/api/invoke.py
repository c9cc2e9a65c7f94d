"""Invoke: POST /2015-03-31/functions/{FunctionName}/invocations.

RequestResponse runs the function and answers with its payload (``X-Amz-Function-Error``
when it failed, ``X-Amz-Log-Result`` with the last 4 KB of its log when ``LogType=Tail``).
Event commits the event to the store and answers 202; DryRun only checks and answers 204.
"""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import Response

from lambdalet.api.requests import (
    check_media_type,
    node_of,
    parse_function_name,
    parse_json,
    read_body,
)
from lambdalet.errors import InvalidParameterValueException, InvalidRequestContentException
from lambdalet.models import LATEST
from lambdalet.node import decode_client_context, new_request_id

MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD_BYTES = 256 * 1024
LOG_TAIL_BYTES = 4096
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


def log_tail(lines: list[str]) -> str:
    """Base64 of the last 4 KB of an invocation's log, as ``X-Amz-Log-Result`` carries it."""
    text = ("\n".join(lines) + "\n").encode()
    return base64.b64encode(text[-LOG_TAIL_BYTES:]).decode()


async def invoke(request: Request) -> Response:
    """Run a function, queue an event for it, or check that it could run."""
    node = node_of(request)
    name, qualifier = parse_function_name(request.path_params["function_name"])
    qualifier = request.query_params.get("Qualifier", qualifier)
    invocation_type = request.headers.get("x-amz-invocation-type", "RequestResponse")
    if invocation_type not in INVOCATION_TYPES:
        raise InvalidParameterValueException(
            f"Unsupported InvocationType '{invocation_type}';"
            f" use one of {', '.join(INVOCATION_TYPES)}"
        )
    log_type = request.headers.get("x-amz-log-type", "None")
    if log_type not in ("None", "Tail"):
        raise InvalidParameterValueException(f"Unsupported LogType '{log_type}'; use None or Tail")
    client_context = None
    if "x-amz-client-context" in request.headers:
        try:
            client_context = decode_client_context(request.headers["x-amz-client-context"])
        except ValueError:
            raise InvalidRequestContentException(
                "Client context must be a valid Base64-encoded JSON object."
            ) from None
    check_media_type(request)
    limit = MAX_ASYNC_PAYLOAD_BYTES if invocation_type == "Event" else MAX_SYNC_PAYLOAD_BYTES
    payload = await read_body(request, limit, "Invoke")
    if payload.strip():
        try:
            await parse_json(payload)
        except InvalidRequestContentException as error:
            raise InvalidRequestContentException(
                "Could not parse request body into json: Could not parse payload into json: "
                + error.message.removeprefix("Could not parse request body into json: ")
            ) from None
    function = await node.function(name, qualifier, route=True)
    request_id = new_request_id()
    headers = {"x-amzn-RequestId": request_id}
    if invocation_type == "DryRun":
        return Response(status_code=204, headers=headers)
    if invocation_type == "Event":
        await node.enqueue(name, qualifier, payload, request_id)
        return Response(status_code=202, headers=headers)
    outcome = await node.invoke(
        function,
        payload,
        request_id=request_id,
        client_context=client_context,
        invoked_qualifier=None if qualifier == LATEST else qualifier,
    )
    headers["X-Amz-Executed-Version"] = function.version
    if outcome.result.function_error:
        headers["X-Amz-Function-Error"] = outcome.result.function_error
    if log_type == "Tail":
        headers["X-Amz-Log-Result"] = log_tail(outcome.log_lines)
    return Response(
        outcome.result.payload, status_code=200, headers=headers, media_type="application/json"
    )
