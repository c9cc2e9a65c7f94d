"""The EventBridge Scheduler API (rest-json, ``/schedules``) for schedules that invoke functions.

Create/Get/Update/Delete/ListSchedules, as botocore's ``scheduler`` model describes them, in
the ``default`` group only (another group is answered as AWS answers a missing one). What is
accepted beyond botocore's own checks:

- ScheduleExpression ``rate()``, ``cron()`` or ``at()`` (see :mod:`lambdalet.triggers.cron`),
  in ScheduleExpressionTimezone (an IANA name; UTC by default); a one-time schedule in the
  past is refused, as AWS refuses it.
- FlexibleTimeWindow Mode ``OFF`` only: ticks fire at their exact time.
- Target.Arn a function of this node (``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]``),
  with Target.Input (JSON) as the event, or EventBridge Scheduler's own event without it. The
  function need not exist yet, as on AWS; a tick whose function is gone is logged and dropped.
- Target.RetryPolicy is kept and returned, but retries are the function's asynchronous
  invocation settings (PutFunctionEventInvokeConfig); DeadLetterConfig and the parameters of
  other target types are refused.
- KmsKeyArn is kept and returned; ClientToken is ignored (no idempotency).

UpdateSchedule replaces the whole schedule, as on AWS: fields it omits return to their defaults.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import json_object, node_of, require_range, require_string
from lambdalet.errors import (
    ResourceNotFoundException,
    ScheduleExpressionError,
    ValidationException,
)
from lambdalet.triggers.models import DEFAULT_GROUP, Schedule
from lambdalet.triggers.schedules import Scheduler, function_target

NAME_PATTERN = "[0-9a-zA-Z-_.]+"
_BODY_LIMIT_BYTES = 1024 * 1024
_UNSUPPORTED_TARGET_PARAMETERS = (
    "EcsParameters",
    "EventBridgeParameters",
    "EventBridgePutEventsV2Parameters",
    "EventBridgePutRawEventsParameters",
    "KinesisParameters",
    "SageMakerPipelineParameters",
    "SqsParameters",
)
_DEFAULT_RETRY_POLICY = {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 185}


def _name(request: Request) -> str:
    return require_string(request.path_params["name"], "name", 64, pattern=NAME_PATTERN)


def _group(value: Any, field: str = "groupName") -> str:
    """The schedule group: only the default one exists."""
    if value is None or value == "":
        return DEFAULT_GROUP
    group = require_string(value, field, 64, pattern=NAME_PATTERN)
    if group != DEFAULT_GROUP:
        raise ResourceNotFoundException(
            f"Schedule group {group} does not exist. lambdalet has the default group only."
        )
    return group


def _one_of(value: Any, field: str, choices: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in choices:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy"
            f" constraint: Member must satisfy enum value set: [{', '.join(choices)}]"
        )
    return str(value)


def _timestamp_ms(value: Any, field: str) -> int | None:
    """A timestamp as botocore sends it (epoch seconds) or as ISO 8601 text, in Unix ms."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return round(value * 1000)
    if isinstance(value, str):
        try:
            return round(float(value) * 1000)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return round(moment.timestamp() * 1000)
    raise ValidationException(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy"
        " constraint: Member must be a timestamp (epoch seconds, or ISO 8601 with a time zone)"
    )


def _target(value: Any, scheduler: Scheduler) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationException('Target is required: {"Arn": FUNCTION_ARN, "RoleArn": ...}')
    arn = require_string(value.get("Arn"), "target.arn", 1600)
    try:
        function_target(arn, scheduler.region, scheduler.account_id)
    except ValueError as error:
        raise ValidationException(str(error)) from None
    role_arn = require_string(
        value.get("RoleArn"),
        "target.roleArn",
        1600,
        pattern=r"arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]+",
    )
    for key in _UNSUPPORTED_TARGET_PARAMETERS:
        if value.get(key) is not None:
            raise ValidationException(
                f"Target.{key} is not supported: the target of a lambdalet schedule is a"
                " function, which takes Target.Input only"
            )
    if value.get("DeadLetterConfig") is not None:
        raise ValidationException(
            "Target.DeadLetterConfig is not supported: lambdalet has no SQS dead-letter queue"
            " for schedules; give the function an OnFailure destination instead"
            " (PutFunctionEventInvokeConfig)"
        )
    target_input = value.get("Input")
    if target_input is not None:
        require_string(target_input, "target.input", 256 * 1024)
        try:
            json.loads(target_input)
        except ValueError:
            raise ValidationException(
                "Target.Input must be well-formed JSON when the target is a Lambda function"
            ) from None
    retry_policy: dict[str, int] = dict(_DEFAULT_RETRY_POLICY)
    given = value.get("RetryPolicy")
    if given is not None:
        if not isinstance(given, dict):
            raise ValidationException("Target.RetryPolicy must be an object")
        if "MaximumEventAgeInSeconds" in given:
            retry_policy["MaximumEventAgeInSeconds"] = require_range(
                given["MaximumEventAgeInSeconds"],
                "target.retryPolicy.maximumEventAgeInSeconds",
                60,
                86_400,
            )
        if "MaximumRetryAttempts" in given:
            retry_policy["MaximumRetryAttempts"] = require_range(
                given["MaximumRetryAttempts"], "target.retryPolicy.maximumRetryAttempts", 0, 185
            )
    return {"Arn": arn, "RoleArn": role_arn, "Input": target_input, "RetryPolicy": retry_policy}


def _schedule_from_request(
    body: dict[str, Any], name: str, scheduler: Scheduler, created_ms: int | None
) -> Schedule:
    """A schedule from a Create/UpdateSchedule body, checked; not yet planned."""
    group = _group(body.get("GroupName"), "groupName")
    expression = require_string(body.get("ScheduleExpression"), "scheduleExpression", 256)
    timezone = body.get("ScheduleExpressionTimezone") or "UTC"
    require_string(timezone, "scheduleExpressionTimezone", 50)
    window = body.get("FlexibleTimeWindow")
    if not isinstance(window, dict) or "Mode" not in window:
        raise ValidationException('FlexibleTimeWindow is required: give {"Mode": "OFF"}')
    mode = _one_of(window["Mode"], "flexibleTimeWindow.mode", ("OFF", "FLEXIBLE"), "OFF")
    if mode == "FLEXIBLE":
        raise ValidationException(
            "FlexibleTimeWindow Mode FLEXIBLE is not supported: lambdalet fires every schedule"
            ' at its exact time; use {"Mode": "OFF"}'
        )
    target = _target(body.get("Target"), scheduler)
    start_ms = _timestamp_ms(body.get("StartDate"), "startDate")
    end_ms = _timestamp_ms(body.get("EndDate"), "endDate")
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise ValidationException("The EndDate you specify must be later than the StartDate.")
    description = body.get("Description") or ""
    require_string(description, "description", 512)
    kms_key_arn = body.get("KmsKeyArn")
    if kms_key_arn is not None:
        require_string(kms_key_arn, "kmsKeyArn", 2048)
    now = scheduler.clock.now_ms()
    return Schedule(
        name=name,
        group_name=group,
        expression=expression,
        timezone=timezone,
        target_arn=target["Arn"],
        role_arn=target["RoleArn"],
        input=target["Input"],
        retry_policy=target["RetryPolicy"],
        state=_one_of(body.get("State"), "state", ("ENABLED", "DISABLED"), "ENABLED"),
        description=description,
        start_ms=start_ms,
        end_ms=end_ms,
        action_after_completion=_one_of(
            body.get("ActionAfterCompletion"), "actionAfterCompletion", ("NONE", "DELETE"), "NONE"
        ),
        kms_key_arn=kms_key_arn,
        created_ms=now if created_ms is None else created_ms,
        last_modified_ms=now,
        revision_id=str(uuid.uuid4()),
    )


def describe(schedule: Schedule, scheduler: Scheduler) -> dict[str, Any]:
    """GetSchedule's response."""
    target: dict[str, Any] = {
        "Arn": schedule.target_arn,
        "RoleArn": schedule.role_arn,
        "RetryPolicy": dict(schedule.retry_policy),
    }
    if schedule.input is not None:
        target["Input"] = schedule.input
    shape: dict[str, Any] = {
        "Arn": scheduler.schedule_arn(schedule.group_name, schedule.name),
        "Name": schedule.name,
        "GroupName": schedule.group_name,
        "ScheduleExpression": schedule.expression,
        "ScheduleExpressionTimezone": schedule.timezone,
        "State": schedule.state,
        "Description": schedule.description,
        "CreationDate": schedule.created_ms / 1000,
        "LastModificationDate": schedule.last_modified_ms / 1000,
        "Target": target,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": schedule.action_after_completion,
    }
    if schedule.start_ms is not None:
        shape["StartDate"] = schedule.start_ms / 1000
    if schedule.end_ms is not None:
        shape["EndDate"] = schedule.end_ms / 1000
    if schedule.kms_key_arn is not None:
        shape["KmsKeyArn"] = schedule.kms_key_arn
    return shape


async def _put(request: Request, *, create: bool) -> Response:
    node = node_of(request)
    scheduler = node.schedules
    name = _name(request)
    operation = "CreateSchedule" if create else "UpdateSchedule"
    body = await json_object(request, _BODY_LIMIT_BYTES, operation)
    created_ms = None
    if not create:
        group = _group(body.get("GroupName"), "groupName")
        created_ms = (await scheduler.get(group, name)).created_ms
    schedule = _schedule_from_request(body, name, scheduler, created_ms)
    try:
        if create:
            await scheduler.create(schedule)
        else:
            await scheduler.update(schedule)
    except ScheduleExpressionError as error:
        raise ValidationException(str(error)) from None
    return JSONResponse({"ScheduleArn": scheduler.schedule_arn(schedule.group_name, name)})


async def create_schedule(request: Request) -> Response:
    """CreateSchedule."""
    return await _put(request, create=True)


async def update_schedule(request: Request) -> Response:
    """UpdateSchedule: replace every setting of a schedule."""
    return await _put(request, create=False)


async def get_schedule(request: Request) -> Response:
    """GetSchedule."""
    scheduler = node_of(request).schedules
    group = _group(request.query_params.get("groupName"))
    schedule = await scheduler.get(group, _name(request))
    return JSONResponse(describe(schedule, scheduler))


async def delete_schedule(request: Request) -> Response:
    """DeleteSchedule."""
    scheduler = node_of(request).schedules
    group = _group(request.query_params.get("groupName"))
    await scheduler.delete(group, _name(request))
    return JSONResponse({})


async def list_schedules(request: Request) -> Response:
    """ListSchedules, by name, with NamePrefix, State, MaxResults and NextToken."""
    scheduler = node_of(request).schedules
    query = request.query_params
    group = _group(query.get("ScheduleGroup"), "groupName")
    prefix = query.get("NamePrefix")
    if prefix is not None:
        require_string(prefix, "namePrefix", 64, pattern=NAME_PATTERN)
    state = query.get("State")
    if state is not None:
        _one_of(state, "state", ("ENABLED", "DISABLED"), "ENABLED")
    limit = 100
    if query.get("MaxResults") is not None:
        text = query["MaxResults"]
        limit = require_range(int(text) if text.isdigit() else text, "maxResults", 1, 100)
    found = await scheduler.list_schedules(
        group,
        name_prefix=prefix,
        state=state,
        after_name=query.get("NextToken"),
        limit=limit + 1,
    )
    page = found[:limit]
    response: dict[str, Any] = {
        "Schedules": [
            {
                "Arn": scheduler.schedule_arn(schedule.group_name, schedule.name),
                "Name": schedule.name,
                "GroupName": schedule.group_name,
                "State": schedule.state,
                "CreationDate": schedule.created_ms / 1000,
                "LastModificationDate": schedule.last_modified_ms / 1000,
                "Target": {"Arn": schedule.target_arn},
            }
            for schedule in page
        ]
    }
    if len(found) > limit:
        response["NextToken"] = page[-1].name
    return JSONResponse(response)
