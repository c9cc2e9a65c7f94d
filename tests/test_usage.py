"""The monthly usage and cost report: the store's sums, the pricing with the free tier, the API
and ``lambdalet usage``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import StoreFactory, boto_client
from test_cli import cli_env, lambdalet

from lambdalet.client import ApiError, Client
from lambdalet.metering.usage import Pricing, month_bounds, report
from lambdalet.models import FunctionUsage, InvocationRecord
from lambdalet.testing import Deploy, ServerThread

NOV_2026 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
DEC_2026 = 1_796_083_200_000
AWS = Pricing(
    per_gb_second=0.0000166667,
    per_million_requests=0.20,
    free_gb_seconds=400_000,
    free_requests=1_000_000,
)


def record(name: str, at_ms: int, billed_ms: int, memory_mb: int, error: bool = False) -> Any:
    return InvocationRecord(
        request_id=f"r-{name}-{at_ms}",
        function_name=name,
        version="$LATEST",
        started_unix_ms=at_ms,
        duration_ms=billed_ms - 0.5,
        billed_duration_ms=billed_ms,
        memory_mb=memory_mb,
        max_memory_used_mb=40,
        init_duration_ms=None,
        error_type="Unhandled" if error else None,
    )


def test_month_bounds() -> None:
    assert month_bounds("2026-11") == (NOV_2026, DEC_2026)
    assert month_bounds("2026-12")[1] == 1_798_761_600_000  # 2027-01-01
    for bad in ("2026-13", "2026-1", "november", "2026-00"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_bounds(bad)


def test_the_store_sums_a_months_invocations_by_function(make_store: StoreFactory) -> None:
    async def scenario() -> list[FunctionUsage]:
        store = make_store()
        await store.open()
        await store.record(
            [
                record("resize", NOV_2026, 100, 1024),
                record("resize", NOV_2026 + 5, 300, 1024, error=True),
                record("etl", DEC_2026 - 1, 2, 128),
                record("etl", DEC_2026, 1000, 128),  # December: not in November's report
                record("etl", NOV_2026 - 1, 1000, 128),  # October
            ],
            [],
        )
        found = await store.usage(NOV_2026, DEC_2026)
        await store.close()
        return found

    assert asyncio.run(scenario()) == [
        FunctionUsage("etl", 1, 0, 2, 2 * 128),
        FunctionUsage("resize", 2, 1, 400, 400 * 1024),
    ]


def test_the_free_tier_comes_off_the_months_total() -> None:
    # 2M invocations of 1 s at 1 GB: 2M GB-s and 2M requests, of which 400k GB-s and 1M free.
    usage = [FunctionUsage("busy", 2_000_000, 10, 2_000_000_000, 2_000_000_000 * 1024)]
    found = report("2026-11", usage, AWS)
    assert found["Totals"]["GBSeconds"] == 2_000_000
    assert found["FreeTier"] == {"Requests": 1_000_000, "GBSeconds": 400_000}
    assert found["Cost"]["Requests"] == 0.2
    assert found["Cost"]["Compute"] == round(1_600_000 * 0.0000166667, 4)
    assert found["Cost"]["Total"] == round(0.2 + 1_600_000 * 0.0000166667, 4)
    assert found["Functions"][0]["ListCost"] == round(0.4 + 2_000_000 * 0.0000166667, 4)
    light = report("2026-11", [FunctionUsage("light", 3, 0, 300, 300 * 128)], AWS)
    assert light["Cost"]["Total"] == 0  # all within the free tier


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node billing in 100 ms steps with no free tier, so every invocation costs."""
    data_dir = tmp_path_factory.mktemp("usage")
    with ServerThread(
        data_dir=data_dir,
        billing_increment_ms=100,
        free_tier_gb_seconds=0,
        free_tier_requests=0,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(server: ServerThread) -> Any:
    """boto3's Lambda client of this module's node."""
    return boto_client(server.url)


def test_each_invocation_is_in_the_report_and_priced(
    server: ServerThread, lambda_client: Any, deploy: Deploy
) -> None:
    source = (
        "def handler(event, context):\n"
        "    if event.get('fail'):\n"
        "        raise ValueError('no')\n"
        "    return 1\n"
    )
    name = deploy(source, MemorySize=256)["FunctionName"]
    for payload in (b"{}", b"{}", b'{"fail": true}'):
        lambda_client.invoke(FunctionName=name, Payload=payload)
    client = Client(server.url)
    try:
        found = client.usage()
        line = next(f for f in found["Functions"] if f["FunctionName"] == name)
        assert (line["Invocations"], line["Errors"]) == (3, 1)
        assert line["BilledDurationMs"] >= 300 and line["BilledDurationMs"] % 100 == 0
        gb_seconds = line["BilledDurationMs"] / 1000 * 256 / 1024
        assert line["GBSeconds"] == pytest.approx(gb_seconds)
        assert line["ListCost"] == round(3 * 0.2 / 1e6 + gb_seconds * 0.0000166667, 4)
        assert found["FreeTier"] == {"Requests": 0, "GBSeconds": 0}
        with pytest.raises(ApiError) as refused:
            client.usage("2026-13")
        assert (refused.value.status, refused.value.code) == (400, "InvalidParameterValueException")
        assert client.usage("2001-01")["Functions"] == []
    finally:
        client.close()
    printed = lambdalet(server, "usage", env=cli_env(COLUMNS="200"))
    assert printed.returncode == 0, printed.stderr
    assert any(name in row and " 3 " in row for row in printed.stdout.splitlines()), printed.stdout
    assert "to pay $" in printed.stdout
