"""Plain data of the schedules: what the store keeps and the API describes."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_GROUP = "default"


@dataclass(frozen=True)
class Schedule:
    """An EventBridge Scheduler schedule whose target is a function.

    ``next_fire_ms`` is when its next tick is due (Unix ms), or None when nothing is left to
    fire (disabled, or past its last tick); the store moves it forward, atomically, as ticks
    are claimed. ``revision_id`` changes with every update, so a tick read before an update
    is not claimed after it.
    """

    name: str
    expression: str
    target_arn: str
    role_arn: str
    created_ms: int
    last_modified_ms: int
    revision_id: str
    group_name: str = DEFAULT_GROUP
    timezone: str = "UTC"
    state: str = "ENABLED"
    input: str | None = None
    description: str = ""
    start_ms: int | None = None
    end_ms: int | None = None
    action_after_completion: str = "NONE"
    retry_policy: dict[str, int] = field(default_factory=dict)
    kms_key_arn: str | None = None
    next_fire_ms: int | None = None
