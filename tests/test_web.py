"""The dashboard: one page served by the node (``GET /`` leads to it), whose script reads the
Lambda API, the usage report and /metrics. Its parsing runs here under Node.js, on what a real
node answers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from lambdalet.testing import Deploy, ServerThread

NODE = shutil.which("node")


def test_the_root_leads_to_the_dashboard(server: ServerThread) -> None:
    answer = httpx.get(server.url + "/", follow_redirects=True)
    assert answer.status_code == 200
    assert str(answer.url).endswith("/_lambdalet/dashboard")
    assert answer.headers["content-type"].startswith("text/html")
    assert "<script>" in answer.text and "/_lambdalet/usage" in answer.text


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_the_pages_script_reads_what_the_node_serves(
    server: ServerThread, deploy: Deploy, lambda_client: Any, tmp_path: Path
) -> None:
    name = deploy("def handler(event, context):\n    return event\n", MemorySize=512)[
        "FunctionName"
    ]
    for _ in range(2):
        lambda_client.invoke(FunctionName=name, Payload=b"{}")
    page = httpx.get(server.url + "/_lambdalet/dashboard").text
    script = re.search(r"<script>(.*)</script>", page, re.S)
    assert script is not None
    metrics_text = httpx.get(server.url + "/metrics").text
    report = httpx.get(server.url + "/_lambdalet/usage").json()
    check = f"""
const metrics = parseMetrics({json.dumps(metrics_text)});
const name = {json.dumps(name)};
console.log(JSON.stringify({{
  invocations: metrics.lambdalet_invocations_total[name],
  coldStarts: metrics.lambdalet_cold_starts_total[name],
  mean: meanDuration(metrics, name),
  unknownMean: meanDuration(metrics, "no-such-function"),
  bars: costBars({json.dumps(report)}, 400),
}}));
"""
    assert NODE is not None
    checker = tmp_path / "check.js"  # a whole node's /metrics is too long for an argument
    checker.write_text(script[1] + check)
    ran = subprocess.run(
        [NODE, str(checker)], capture_output=True, text=True, timeout=30, check=False
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    assert found["invocations"] == 2 and found["coldStarts"] == 1
    assert found["mean"] > 0 and found["unknownMean"] is None
    bars = {bar["name"]: bar for bar in found["bars"]}
    ours = next(line for line in report["Functions"] if line["FunctionName"] == name)
    assert bars[name]["value"] == ours["GBSeconds"] > 0
    assert max(bar["width"] for bar in found["bars"]) == 400
