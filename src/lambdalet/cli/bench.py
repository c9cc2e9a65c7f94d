"""``lambdalet bench``: invoke one function many times at a set concurrency, and say how fast.

A closed loop: ``concurrency`` workers share a pool of as many keep-alive connections and send
Invoke (RequestResponse, no log tail) one after another until ``requests`` have been sent.
Each answer is timed from the request being sent to the whole answer read. An answer is ok
(200 without ``X-Amz-Function-Error``), a function error, a throttle (429) or a failure
(anything else, a connection error included). Requests are signed as lambdalet's client signs
them. For the platform's own measurements beside other systems, see ``bench/``.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from lambdalet.client import SigV4, default_credentials


@dataclass
class LoadResult:
    """What a run of ``bench`` saw."""

    ok: int = 0
    function_errors: int = 0
    throttled: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Requests answered or failed."""
        return self.ok + self.function_errors + self.throttled + self.failed

    @property
    def per_s(self) -> float:
        """Requests per second of wall time."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies (0 without any)."""
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def run_load(
    endpoint_url: str,
    name: str,
    payload: bytes,
    *,
    requests: int,
    concurrency: int,
    credentials: tuple[str, str, str] | None = None,
) -> LoadResult:
    """Invoke ``name`` ``requests`` times, ``concurrency`` at a time."""
    result = LoadResult()
    path = f"/2015-03-31/functions/{quote(name)}/invocations"
    remaining = requests

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                answer = await client.post(path, content=payload)
            except httpx.HTTPError:
                result.failed += 1
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            if answer.status_code == 200:
                if answer.headers.get("x-amz-function-error"):
                    result.function_errors += 1
                else:
                    result.ok += 1
            elif answer.status_code == 429:
                result.throttled += 1
            else:
                result.failed += 1

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        auth = SigV4(*(credentials or default_credentials()))
        async with httpx.AsyncClient(
            base_url=endpoint_url, auth=auth, limits=limits, timeout=960.0
        ) as client:
            began = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
            result.seconds = time.perf_counter() - began

    asyncio.run(main())
    return result
