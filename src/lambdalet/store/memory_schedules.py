"""The schedule half of the in-memory store.

Each method runs without awaiting anything, so on one event loop a claim is atomic.
"""

from __future__ import annotations

from dataclasses import replace

from lambdalet.errors import ConflictException, ResourceNotFoundException
from lambdalet.triggers.models import Schedule


class MemorySchedules:
    """Store methods for schedules, on this process's memory."""

    def __init__(self) -> None:
        super().__init__()
        self._schedules: dict[tuple[str, str], Schedule] = {}

    async def put_schedule(self, schedule: Schedule, *, create: bool) -> None:
        key = (schedule.group_name, schedule.name)
        if create and key in self._schedules:
            raise ConflictException(
                f"Schedule {schedule.name} already exists in group {schedule.group_name}."
            )
        if not create and key not in self._schedules:
            raise ResourceNotFoundException(f"Schedule {schedule.name} does not exist.")
        self._schedules[key] = schedule

    async def get_schedule(self, group_name: str, name: str) -> Schedule | None:
        return self._schedules.get((group_name, name))

    async def list_schedules(
        self,
        group_name: str,
        name_prefix: str | None,
        state: str | None,
        after_name: str | None,
        limit: int,
    ) -> list[Schedule]:
        found = sorted(
            (
                schedule
                for (group, name), schedule in self._schedules.items()
                if group == group_name
                and name > (after_name or "")
                and name.startswith(name_prefix or "")
                and state in (None, schedule.state)
            ),
            key=lambda schedule: schedule.name,
        )
        return found[:limit]

    async def delete_schedule(
        self, group_name: str, name: str, revision_id: str | None = None
    ) -> Schedule | None:
        current = self._schedules.get((group_name, name))
        if current is None or revision_id not in (None, current.revision_id):
            return None
        return self._schedules.pop((group_name, name))

    async def due_schedules(self, now_ms: int, limit: int) -> list[Schedule]:
        due = [
            schedule
            for schedule in self._schedules.values()
            if schedule.next_fire_ms is not None and schedule.next_fire_ms <= now_ms
        ]
        return sorted(due, key=lambda schedule: schedule.next_fire_ms or 0)[:limit]

    async def next_schedule_tick_ms(self) -> int | None:
        ticks = [s.next_fire_ms for s in self._schedules.values() if s.next_fire_ms is not None]
        return min(ticks, default=None)

    async def claim_schedule_tick(self, schedule: Schedule, next_fire_ms: int | None) -> bool:
        key = (schedule.group_name, schedule.name)
        current = self._schedules.get(key)
        if (
            current is None
            or current.revision_id != schedule.revision_id
            or current.next_fire_ms != schedule.next_fire_ms
        ):
            return False
        self._schedules[key] = replace(current, next_fire_ms=next_fire_ms)
        return True
