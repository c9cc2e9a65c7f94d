"""Concurrency accounting as AWS does it: account limit, reserved concurrency, burst scaling.

Each function with reserved concurrency R may run at most R invocations at once (R = 0 turns
it off); all other functions share what is left of the account limit. A function may start
at most ``burst_per_10s`` new sandboxes in any 10-second window. Over a limit, Invoke answers
429 TooManyRequestsException with AWS's ``Reason``.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

from lambdalet.errors import InvalidParameterValueException, TooManyRequestsException

BURST_WINDOW_S = 10.0


@dataclass(frozen=True)
class Ticket:
    """One invocation counted in, to be counted out with :meth:`ConcurrencyLimiter.release`."""

    name: str
    unreserved: bool


class ConcurrencyLimiter:
    """Counts invocations in flight per function and refuses those over a limit."""

    def __init__(self, account_limit: int, unreserved_minimum: int, burst_per_10s: int) -> None:
        self.account_limit = account_limit
        self.unreserved_minimum = unreserved_minimum
        self.burst_per_10s = burst_per_10s
        self.reserved: dict[str, int] = {}
        self.in_flight: collections.Counter[str] = collections.Counter()
        self._unreserved_in_flight = 0
        self._starts: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )

    @property
    def unreserved_limit(self) -> int:
        """What the functions without a reservation share."""
        return self.account_limit - sum(self.reserved.values())

    def check_reservation(self, name: str, value: int) -> None:
        """Refuse a reservation that would leave less than the unreserved minimum."""
        others = sum(v for k, v in self.reserved.items() if k != name)
        if self.account_limit - others - value < self.unreserved_minimum:
            raise InvalidParameterValueException(
                f"Specified ReservedConcurrentExecutions for function decreases account's"
                f" UnreservedConcurrentExecution below its minimum value of"
                f" [{self.unreserved_minimum}]."
            )

    def set_reserved(self, name: str, value: int | None) -> None:
        """Set (or with None, remove) a function's reserved concurrency."""
        if value is None:
            self.reserved.pop(name, None)
        else:
            self.reserved[name] = value

    def acquire(self, name: str) -> Ticket:
        """Count one invocation in; raise TooManyRequestsException if over a limit."""
        reserved = self.reserved.get(name)
        unreserved = reserved is None
        if reserved is not None:
            if self.in_flight[name] >= reserved:
                raise TooManyRequestsException(
                    "Rate Exceeded.", Reason="ReservedFunctionConcurrentInvocationLimitExceeded"
                )
        elif self._unreserved_in_flight >= self.unreserved_limit:
            raise TooManyRequestsException(
                "Rate Exceeded.", Reason="ConcurrentInvocationLimitExceeded"
            )
        else:
            self._unreserved_in_flight += 1
        self.in_flight[name] += 1
        return Ticket(name, unreserved)

    def release(self, ticket: Ticket) -> None:
        """Count one invocation out (a reservation changed meanwhile does not matter)."""
        self.in_flight[ticket.name] -= 1
        if self.in_flight[ticket.name] <= 0:
            del self.in_flight[ticket.name]
        if ticket.unreserved:
            self._unreserved_in_flight -= 1

    def note_sandbox_start(self, name: str, now_s: float | None = None) -> None:
        """Count a new sandbox; raise TooManyRequestsException past the burst rate."""
        now_s = time.monotonic() if now_s is None else now_s
        starts = self._starts[name]
        while starts and starts[0] <= now_s - BURST_WINDOW_S:
            starts.popleft()
        if len(starts) >= self.burst_per_10s:
            reason = (
                "ReservedFunctionInvocationRateLimitExceeded"
                if name in self.reserved
                else "FunctionInvocationRateLimitExceeded"
            )
            raise TooManyRequestsException("Rate Exceeded.", Reason=reason)
        starts.append(now_s)

    @property
    def total_in_flight(self) -> int:
        """Invocations running now, all functions together."""
        return sum(self.in_flight.values())
