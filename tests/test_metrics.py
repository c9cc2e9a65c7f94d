"""Prometheus metrics at /metrics reflect what ran."""

from __future__ import annotations

import re
from typing import Any

import httpx

from lambdalet.testing import Deploy, ServerThread


def metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}{{{re.escape(labels)}}} ([0-9.]+)$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} missing"
    return float(match[1])


def test_metrics(deploy: Deploy, lambda_client: Any, server: ServerThread) -> None:
    source = "def handler(event, context):\n    if event.get('fail'):\n        raise ValueError()\n"
    name = deploy(source)["FunctionName"]
    for payload in (b"{}", b"{}", b'{"fail": true}'):
        lambda_client.invoke(FunctionName=name, Payload=payload)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    throttled = httpx.post(f"{server.url}/2015-03-31/functions/{name}/invocations", content=b"{}")
    assert throttled.status_code == 429
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    labels = f'function="{name}"'
    assert metric(text, "lambdalet_invocations_total", labels) == 3
    assert metric(text, "lambdalet_errors_total", labels) == 1
    assert metric(text, "lambdalet_cold_starts_total", labels) == 1
    assert metric(text, "lambdalet_duration_ms_count", labels) == 3
    assert metric(text, "lambdalet_duration_ms_bucket", f'{labels},le="+Inf"') == 3
    assert (
        metric(
            text,
            "lambdalet_throttles_total",
            f'{labels},reason="ReservedFunctionConcurrentInvocationLimitExceeded"',
        )
        == 1
    )
    assert metric(text, "lambdalet_idle_sandboxes", labels) == 1
