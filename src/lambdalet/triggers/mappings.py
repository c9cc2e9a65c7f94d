"""Event source mappings: what one says (a queue, a function, how to batch) and the checks
CreateEventSourceMapping and UpdateEventSourceMapping make on what a client sends.

A mapping is kept in the store's generic resources (kind ``event_source_mapping``, key its
UUID) as the JSON :meth:`EventSourceMapping.to_record` makes. The event source is a lambdalet
SQS queue; every other source (Kinesis, DynamoDB streams, Kafka, MQ, DocumentDB) is refused
with an InvalidParameterValueException that says so, as are the parameters that only apply
to those sources.

``State`` follows AWS's names: a mapping is ``Creating``, ``Enabling``, ``Updating`` or
``Disabling`` until its pollers have been started or stopped, then ``Enabled`` or
``Disabled``; ``Deleting`` until its pollers have stopped, then gone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from lambdalet.errors import InvalidParameterValueException, ValidationException
from lambdalet.models import LATEST
from lambdalet.topics import filter_policy

KIND = "event_source_mapping"

CREATING = "Creating"
ENABLING = "Enabling"
ENABLED = "Enabled"
UPDATING = "Updating"
DISABLING = "Disabling"
DISABLED = "Disabled"
DELETING = "Deleting"
SETTLED = (ENABLED, DISABLED)
USER_INITIATED = "USER_INITIATED"

REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
DEFAULT_BATCH_SIZE = 10
MAX_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW_S = 300
MIN_MAXIMUM_CONCURRENCY = 2
MAX_MAXIMUM_CONCURRENCY = 1000
MAX_FILTERS = 5
MAX_PATTERN_LENGTH = 4096

_SQS_ARN = re.compile(r"arn:aws[a-zA-Z0-9-]*:sqs:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,80})")
_ARN = re.compile(r"arn:aws[a-zA-Z0-9-]*:([a-zA-Z0-9-]+):.*")

# Parameters of other kinds of event source: refused, naming the parameter, as AWS does.
_OTHER_SOURCES_PARAMETERS = (
    "StartingPosition",
    "StartingPositionTimestamp",
    "ParallelizationFactor",
    "DestinationConfig",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "TumblingWindowInSeconds",
    "Topics",
    "Queues",
    "SourceAccessConfigurations",
    "SelfManagedEventSource",
    "AmazonManagedKafkaEventSourceConfig",
    "SelfManagedKafkaEventSourceConfig",
    "DocumentDBEventSourceConfig",
    "ProvisionedPollerConfig",
)
# Kept and returned as given; they change nothing here.
_KEPT_AS_GIVEN = ("KMSKeyArn", "MetricsConfig", "LoggingConfig")


def _require_range(value: Any, field: str, low: int, high: int) -> int:
    # Imported here: lambdalet.api.requests imports the node, whose pollers import this module.
    from lambdalet.api.requests import require_range

    return require_range(value, field, low, high)


def _require_string(value: Any, field: str, max_length: int) -> str:
    from lambdalet.api.requests import require_string

    return require_string(value, field, max_length)


@dataclass(frozen=True)
class EventSourceMapping:
    """A mapping from an SQS queue to a function (or one of its versions or aliases)."""

    uuid: str
    event_source_arn: str
    function_name: str
    qualifier: str | None
    last_modified_ms: int
    batch_size: int = DEFAULT_BATCH_SIZE
    maximum_batching_window_s: int = 0
    enabled: bool = True
    state: str = CREATING
    state_transition_reason: str = USER_INITIATED
    function_response_types: tuple[str, ...] = ()
    maximum_concurrency: int | None = None
    # The FilterCriteria as given ({"Filters": [{"Pattern": "..."}]}), or None.
    filter_criteria: dict[str, Any] | None = None
    kept_as_given: dict[str, Any] = field(default_factory=dict)

    @property
    def queue_name(self) -> str:
        """The name of the queue the mapping reads."""
        return self.event_source_arn.rsplit(":", 1)[-1]

    @property
    def reports_batch_item_failures(self) -> bool:
        """Whether the function may report which messages of a batch failed."""
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types

    def filter_patterns(self) -> list[dict[str, Any]]:
        """The parsed patterns of the FilterCriteria; a record passes if one matches."""
        if not self.filter_criteria:
            return []
        return [json.loads(entry["Pattern"]) for entry in self.filter_criteria.get("Filters") or []]

    def to_record(self) -> dict[str, Any]:
        """The JSON the store keeps."""
        return {
            "UUID": self.uuid,
            "EventSourceArn": self.event_source_arn,
            "FunctionName": self.function_name,
            "Qualifier": self.qualifier,
            "LastModifiedMs": self.last_modified_ms,
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.maximum_batching_window_s,
            "Enabled": self.enabled,
            "State": self.state,
            "StateTransitionReason": self.state_transition_reason,
            "FunctionResponseTypes": list(self.function_response_types),
            "MaximumConcurrency": self.maximum_concurrency,
            "FilterCriteria": self.filter_criteria,
            "KeptAsGiven": self.kept_as_given,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EventSourceMapping:
        """A mapping from what the store keeps."""
        return cls(
            uuid=record["UUID"],
            event_source_arn=record["EventSourceArn"],
            function_name=record["FunctionName"],
            qualifier=record.get("Qualifier"),
            last_modified_ms=int(record["LastModifiedMs"]),
            batch_size=int(record["BatchSize"]),
            maximum_batching_window_s=int(record["MaximumBatchingWindowInSeconds"]),
            enabled=bool(record["Enabled"]),
            state=record["State"],
            state_transition_reason=record.get("StateTransitionReason", USER_INITIATED),
            function_response_types=tuple(record.get("FunctionResponseTypes") or ()),
            maximum_concurrency=record.get("MaximumConcurrency"),
            filter_criteria=record.get("FilterCriteria"),
            kept_as_given=dict(record.get("KeptAsGiven") or {}),
        )

    def to_shape(self, region: str, account_id: str) -> dict[str, Any]:
        """The EventSourceMappingConfiguration the API answers with."""
        function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{self.function_name}"
        if self.qualifier:
            function_arn += f":{self.qualifier}"
        shape: dict[str, Any] = {
            "UUID": self.uuid,
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.maximum_batching_window_s,
            "EventSourceArn": self.event_source_arn,
            "FunctionArn": function_arn,
            "LastModified": self.last_modified_ms / 1000,
            "State": self.state,
            "StateTransitionReason": self.state_transition_reason,
            "FunctionResponseTypes": list(self.function_response_types),
            "EventSourceMappingArn": (
                f"arn:aws:lambda:{region}:{account_id}:event-source-mapping:{self.uuid}"
            ),
        }
        if self.maximum_concurrency is not None:
            shape["ScalingConfig"] = {"MaximumConcurrency": self.maximum_concurrency}
        if self.filter_criteria is not None:
            shape["FilterCriteria"] = self.filter_criteria
        shape.update(self.kept_as_given)
        return shape


def queue_reference(arn: Any, region: str, account_id: str) -> str:
    """The queue name an EventSourceArn names, if it is the ARN of a lambdalet SQS queue."""
    if arn is None:
        raise InvalidParameterValueException(
            "EventSourceArn is required: the ARN of a lambdalet SQS queue"
            f" (arn:aws:sqs:{region}:{account_id}:QUEUE_NAME)"
        )
    _require_string(arn, "eventSourceArn", 10_000)
    match = _SQS_ARN.fullmatch(arn)
    if match is None:
        other = _ARN.fullmatch(arn)
        service = other.group(1) if other else None
        kind = f"'{service}' event sources are" if service else "This event source is"
        raise InvalidParameterValueException(
            f"Unrecognized event source: {arn}. {kind} not supported: lambdalet's event source"
            f" mappings read Amazon SQS standard queues only (arn:aws:sqs:{region}:"
            f"{account_id}:QUEUE_NAME)"
        )
    if (match.group(1), match.group(2)) != (region, account_id):
        raise InvalidParameterValueException(
            f"Unrecognized event source: {arn}. The queue must be one of this lambdalet's"
            f" queues, in region {region} and account {account_id}"
        )
    return match.group(3)


def function_reference(value: Any) -> tuple[str, str | None]:
    """(name, qualifier) of a FunctionName: a name, ``name:qualifier`` or an ARN."""
    from lambdalet.api.requests import parse_function_name

    if value is None:
        raise ValidationException(
            "1 validation error detected: Value null at 'functionName' failed to satisfy"
            " constraint: Member must not be null"
        )
    _require_string(value, "functionName", 256)
    return parse_function_name(value)


def _function_response_types(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 1:
        raise ValidationException(
            "1 validation error detected: Value at 'functionResponseTypes' failed to satisfy"
            " constraint: Member must have length less than or equal to 1"
        )
    for item in value:
        if item != REPORT_BATCH_ITEM_FAILURES:
            raise ValidationException(
                f"1 validation error detected: Value '[{item}]' at 'functionResponseTypes'"
                " failed to satisfy constraint: Member must satisfy constraint: [Member must"
                f" satisfy enum value set: [{REPORT_BATCH_ITEM_FAILURES}]]"
            )
    return tuple(value)


def _maximum_concurrency(value: Any) -> int | None:
    if not isinstance(value, dict):
        raise ValidationException(
            'ScalingConfig must be an object: {"MaximumConcurrency": 2..1000}'
        )
    if value.get("MaximumConcurrency") is None:
        return None  # an empty ScalingConfig removes the limit, as on AWS
    return _require_range(
        value["MaximumConcurrency"],
        "scalingConfig.maximumConcurrency",
        MIN_MAXIMUM_CONCURRENCY,
        MAX_MAXIMUM_CONCURRENCY,
    )


def _filter_criteria(value: Any) -> dict[str, Any] | None:
    """FilterCriteria, checked: each pattern must be an event pattern lambdalet can apply."""
    if not isinstance(value, dict):
        raise InvalidParameterValueException(
            'Invalid filter pattern definition: FilterCriteria must be {"Filters":'
            ' [{"Pattern": "<JSON event pattern>"}]}'
        )
    filters = value.get("Filters")
    if filters is None or filters == []:
        return None  # empty criteria remove the filters, as on AWS
    if not isinstance(filters, list):
        raise InvalidParameterValueException(
            "Invalid filter pattern definition: FilterCriteria.Filters must be a list"
        )
    if len(filters) > MAX_FILTERS:
        raise InvalidParameterValueException(
            f"Invalid filter pattern definition: at most {MAX_FILTERS} filters per event"
            f" source mapping, {len(filters)} given"
        )
    checked = []
    for entry in filters:
        pattern = entry.get("Pattern") if isinstance(entry, dict) else None
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
            raise InvalidParameterValueException(
                "Invalid filter pattern definition: each filter needs a Pattern, a JSON object"
                f" of at most {MAX_PATTERN_LENGTH} characters"
            )
        try:
            filter_policy.parse(pattern, filter_policy.MESSAGE_BODY)
        except filter_policy.FilterPolicyError as error:
            raise InvalidParameterValueException(
                f"Invalid filter pattern definition: {error}"
            ) from None
        checked.append({"Pattern": pattern})
    return {"Filters": checked}


def _refuse_other_sources(body: dict[str, Any]) -> None:
    for key in _OTHER_SOURCES_PARAMETERS:
        if body.get(key) is not None:
            raise InvalidParameterValueException(
                f"Unsupported {key} parameter for given event source mapping type."
                " It applies to streams, Kafka, Amazon MQ or DocumentDB sources; lambdalet"
                " maps SQS queues only"
            )


def _check_batching(mapping: EventSourceMapping) -> EventSourceMapping:
    if mapping.batch_size > DEFAULT_BATCH_SIZE and mapping.maximum_batching_window_s < 1:
        raise InvalidParameterValueException(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is"
            " greater than 10"
        )
    return mapping


def apply_changes(
    mapping: EventSourceMapping, body: dict[str, Any], *, at_ms: int
) -> EventSourceMapping:
    """``mapping`` with the settings a Create or Update body gives (others unchanged)."""
    _refuse_other_sources(body)
    changes: dict[str, Any] = {"last_modified_ms": at_ms}
    if body.get("BatchSize") is not None:
        changes["batch_size"] = _require_range(body["BatchSize"], "batchSize", 1, MAX_BATCH_SIZE)
    if body.get("MaximumBatchingWindowInSeconds") is not None:
        changes["maximum_batching_window_s"] = _require_range(
            body["MaximumBatchingWindowInSeconds"],
            "maximumBatchingWindowInSeconds",
            0,
            MAX_BATCHING_WINDOW_S,
        )
    if body.get("Enabled") is not None:
        if not isinstance(body["Enabled"], bool):
            raise ValidationException(
                f"1 validation error detected: Value '{body['Enabled']}' at 'enabled' failed"
                " to satisfy constraint: Member must be a boolean"
            )
        changes["enabled"] = body["Enabled"]
    if body.get("FunctionResponseTypes") is not None:
        changes["function_response_types"] = _function_response_types(body["FunctionResponseTypes"])
    if body.get("ScalingConfig") is not None:
        changes["maximum_concurrency"] = _maximum_concurrency(body["ScalingConfig"])
    if body.get("FilterCriteria") is not None:
        changes["filter_criteria"] = _filter_criteria(body["FilterCriteria"])
    kept = dict(mapping.kept_as_given)
    for key in _KEPT_AS_GIVEN:
        if body.get(key) is not None:
            kept[key] = body[key]
    changes["kept_as_given"] = kept
    return _check_batching(replace(mapping, **changes))


def new_state(before: EventSourceMapping, after: EventSourceMapping) -> str:
    """The state an update leaves a mapping in until its pollers follow it."""
    if after.enabled and not before.enabled:
        return ENABLING
    if before.enabled and not after.enabled:
        return DISABLING
    return UPDATING


def same_function(mapping: EventSourceMapping, name: str, qualifier: str | None) -> bool:
    """Whether a mapping invokes exactly this function qualifier ($LATEST is unqualified)."""
    ours = None if mapping.qualifier in (None, LATEST) else mapping.qualifier
    theirs = None if qualifier in (None, LATEST) else qualifier
    return mapping.function_name == name and ours == theirs
