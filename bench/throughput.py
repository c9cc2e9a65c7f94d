"""Warm no-op invokes per second and latency, lambdalet beside its baselines, in one run.

    python bench/throughput.py [--duration 5] [--warmup 2] [--concurrency 1,8,32]
                               [--client auto|wrk|python] [--systems lambdalet,floor,sls]
                               [--rounds 1] [--no-install] [--out bench/results/throughput.json]

Every system runs the same Python handler (``def handler(event, context): return {}``) and is
driven the same way, one system at a time, each point bounded by ``--duration`` seconds:

- **lambdalet**: ``python -m lambdalet serve --port P --data-dir <tmp> --deploy <tmp>/fn`` as a
  subprocess on a free loopback port; load is ``POST /2015-03-31/functions/noop/invocations``
  with body ``{}`` (the real Lambda Invoke API, RequestResponse, no log tail). The function
  has 512 MB (see ``MEMORY_MB``: CPU follows memory, as on AWS); the server runs with its
  defaults, so as root its sandboxes are isolated (``namespaces``).
- **direct**: the handler called in this process: calls per second (a tight loop) and per-call
  latency (each call timed with ``perf_counter_ns``, timer overhead included). No concurrency.
- **floor**: a bare Starlette app on uvicorn (uvloop, httptools: lambdalet's own stack), one
  POST route that parses the body, calls the handler in-process and answers its JSON. Whatever
  lambdalet adds above this is the price of the API, the router and the sandbox round trip.
- **serverless-offline** (``sls``): npm ``serverless@3`` + ``serverless-offline@13`` installed
  into ``bench/.serverless-offline/`` (the script runs ``npm install`` there the first time,
  unless ``--no-install``; if the registry answers ETARGET it retries with ``--before`` a month
  ago), a generated ``serverless.yml`` (``provider: aws``, ``runtime:
  python3.11``), started with ``npx serverless offline start --httpPort P --lambdaPort Q`` and
  driven on its Lambda invoke endpoint. For Python, serverless-offline always keeps one
  long-lived ``python3 invoke.py`` child per concurrent invoke and reuses it while idle
  (``useInProcess`` only applies to Node.js): the handler runs warm and unisolated. We put this
  interpreter first on its PATH, so all systems run the same Python.

Warm-up: before each measured point, load at the point's concurrency for ``--warmup`` seconds,
repeated (at most 4 rounds) until the number of Python processes under the server stops
growing, so every sandbox exists; the count is checked again after the point and a point that
started new ones is flagged.

Load generator: ``wrk`` (Debian package ``wrk``) with a Lua script for the POST body; its
``done`` hook prints exact p50/p99 (µs) and error counts, and the ``--latency`` distribution is
parsed and kept too. One wrk process with ``min(concurrency, nproc)`` threads, keep-alive
connections, so the client is a separate, efficient C process. Without wrk (or with ``--client
python``) a multi-process Python client is used: one spawned process per 8 connections, raw
keep-alive HTTP/1.1 on asyncio, results merged. Both count non-2xx answers as errors.

Beside each point: the CPU time the server's process tree (server, sandboxes or runners;
not the client) used per request, from /proc, which is steadier than req/s on a busy machine,
and the part of it spent in the Python processes below the server (lambdalet's sandboxes,
serverless-offline's runners).

With ``--rounds N`` the systems are measured N times over, one after the other (lambdalet,
floor, serverless-offline, then again), so a slow or fast phase of a shared machine falls on
all of them; each point reported is the median round by req/s (of an even number, the
slower of the middle two), with every round's req/s printed beside the table and kept in the
JSON (``rounds_requests_per_s``).

Prints a table (req/s, p50, p99 per system and concurrency), the ratios lambdalet ÷
serverless-offline (req/s), lambdalet p50 − floor p50 and lambdalet p50 − direct p50, and the
DESIGN.md targets (≥ 5,000 invokes/s at concurrency 32; ≤ 0.5 ms p50 over the HTTP floor,
judged at concurrency 1) with whether they are met. Writes everything, with machine facts and
the exact commands, to ``--out``. Every process started is stopped by its process group
(``start_new_session``), then leftover descendants by pid (see ``harness.py``, which holds the
process handling and both load generators).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness import (
    BenchError,
    LoadFunction,
    ManagedProcess,
    cpu_seconds_between,
    free_port,
    make_load_function,
    percentile,
    python_processes,
    started,
    tree_cpu,
    wait_until_invocable,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_OUT = BENCH_DIR / "results" / "throughput.json"
DEFAULT_SLS_DIR = BENCH_DIR / ".serverless-offline"
RUNTIME_ID = f"python{sys.version_info.major}.{sys.version_info.minor}"
FUNCTION_NAME = "noop"
# A function gets CPU in proportion to its memory, as on AWS (a whole vCPU at 1,769 MB): at the
# default 128 MB the namespaces backend holds a sandbox to 7 % of a core, and one sandbox's
# warm invokes would measure that quota rather than the platform. 512 MB (29 % of a core, far
# more than a no-op needs) lets 32 sandboxes fit the node's default memory budget.
MEMORY_MB = 512
SLS_SERVICE = "lambdalet-bench"
SLS_FUNCTION_NAME = f"{SLS_SERVICE}-dev-{FUNCTION_NAME}"
INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
TARGET_RPS_AT_32 = 5000.0
TARGET_OVERHEAD_MS = 0.5
MAX_WARMUP_ROUNDS = 4

HANDLER_SOURCE = '''\
"""The benchmark's no-op handler: the same code in every system."""


def handler(event, context):
    return {}
'''

FLOOR_APP_SOURCE = '''\
"""The HTTP floor: lambdalet's stack (Starlette, uvicorn, uvloop, httptools), no platform."""

import json

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from noop import handler


async def invoke(request):
    body = await request.body()
    result = handler(json.loads(body) if body.strip() else {}, None)
    return Response(json.dumps(result), media_type="application/json")


app = Starlette(
    routes=[Route("/2015-03-31/functions/{name}/invocations", invoke, methods=["POST"])]
)
'''

SLS_PACKAGE_JSON = {
    "name": "lambdalet-bench-serverless-offline",
    "private": True,
    "description": "serverless-offline baseline for lambdalet's bench/throughput.py",
    "dependencies": {"serverless": "3", "serverless-offline": "13"},
}

SLS_YAML = f"""\
# Generated by bench/throughput.py: the serverless-offline baseline.
service: {SLS_SERVICE}
frameworkVersion: "3"
provider:
  name: aws
  runtime: python3.11
  region: us-east-1
plugins:
  - serverless-offline
functions:
  {FUNCTION_NAME}:
    handler: noop.handler
"""


@dataclass
class Point:
    """One measured point: a system at a concurrency."""

    system: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    duration_s: float
    errors: dict[str, int]
    error_count: int
    server_cpu_ms_per_request: float | None
    runner_cpu_ms_per_request: float | None
    warmup_rounds: int
    warm_processes: int
    new_processes_during_point: int
    loadavg_1m: float
    latency_distribution_ms: dict[str, float]
    command: str


@dataclass
class SystemRun:
    """A system's measured points, or why it was not measured."""

    name: str
    label: str
    ok: bool = False
    reason: str = ""
    startup_s: float | None = None
    commands: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    # With --rounds N: req/s of every round by concurrency; ``points`` holds the median rounds.
    rounds_requests_per_s: dict[int, list[float]] = field(default_factory=dict)


def median_of_rounds(rounds: list[SystemRun]) -> SystemRun:
    """One system's rounds as one run: at each concurrency the point of the median round (by
    req/s, its latencies and CPU with it), and every round's req/s beside it."""
    measured = [run for run in rounds if run.ok]
    if not measured:
        return rounds[-1]
    merged = replace(measured[-1], points=[], rounds_requests_per_s={})
    for concurrency in sorted({p.concurrency for run in measured for p in run.points}):
        points = [p for run in measured for p in run.points if p.concurrency == concurrency]
        merged.rounds_requests_per_s[concurrency] = [p.requests_per_s for p in points]
        ordered = sorted(points, key=lambda point: point.requests_per_s)
        merged.points.append(ordered[(len(ordered) - 1) // 2])
    return merged


# --- systems ---------------------------------------------------------------------------------


def write_function(
    function_dir: Path,
    module: str = "noop",
    source: str = HANDLER_SOURCE,
    name: str = FUNCTION_NAME,
    memory_mb: int | None = MEMORY_MB,
) -> Path:
    """A function's directory for ``lambdalet serve --deploy``: ``<module>.py`` holding
    ``source`` and a lambdalet manifest (``<module>.handler``, this Python, ``memory_mb`` or,
    with None, lambdalet's default MemorySize)."""
    function_dir.mkdir(parents=True, exist_ok=True)
    (function_dir / f"{module}.py").write_text(source)
    manifest: dict[str, Any] = {
        "name": name,
        "handler": f"{module}.handler",
        "runtime": RUNTIME_ID,
    }
    if memory_mb is not None:
        manifest["memory"] = memory_mb
    (function_dir / "lambdalet.json").write_text(json.dumps(manifest))
    return function_dir


def measure_direct(function_dir: Path, duration_s: int) -> SystemRun:
    """Call the handler in this process: half the time for throughput, half for latency."""
    run = SystemRun("direct", "direct call", commands=["in-process: handler({}, context)"])
    spec = importlib.util.spec_from_file_location("bench_noop", function_dir / "noop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[Any, Any], Any] = module.handler
    event: dict[str, Any] = {}
    context = SimpleNamespace(function_name=FUNCTION_NAME, aws_request_id="direct")
    batch = 10_000
    calls = 0
    started = time.perf_counter()
    deadline = started + duration_s / 2
    while time.perf_counter() < deadline:
        for _ in range(batch):
            handler(event, context)
        calls += batch
    elapsed = time.perf_counter() - started
    samples: list[int] = []
    deadline = time.perf_counter() + duration_s / 2
    clock = time.perf_counter_ns
    while time.perf_counter() < deadline and len(samples) < 2_000_000:
        for _ in range(1000):
            before = clock()
            handler(event, context)
            samples.append(clock() - before)
    ordered = sorted(ns / 1e6 for ns in samples)
    run.points.append(
        Point(
            system="direct",
            concurrency=1,
            requests_per_s=calls / elapsed,
            p50_ms=percentile(ordered, 0.50),
            p99_ms=percentile(ordered, 0.99),
            mean_ms=sum(ordered) / len(ordered),
            max_ms=ordered[-1],
            requests=calls,
            duration_s=elapsed,
            errors={},
            error_count=0,
            server_cpu_ms_per_request=None,
            runner_cpu_ms_per_request=None,
            warmup_rounds=0,
            warm_processes=0,
            new_processes_during_point=0,
            loadavg_1m=os.getloadavg()[0],
            latency_distribution_ms={},
            command="in-process loop",
        )
    )
    run.ok = True
    return run


def measure_server(
    run: SystemRun,
    server: ManagedProcess,
    url: str,
    load: LoadFunction,
    concurrency_levels: Sequence[int],
    duration_s: int,
    warmup_s: int,
) -> None:
    """Warm, then measure, each concurrency against a started server."""
    for concurrency in concurrency_levels:
        rounds = 0
        before = python_processes(server.pid)
        while rounds < MAX_WARMUP_ROUNDS:
            rounds += 1
            load(url, concurrency, warmup_s)
            server.check_alive()
            after = python_processes(server.pid)
            if rounds > 1 and after == before:
                break
            before = after
        loadavg = os.getloadavg()[0]
        cpu_before = tree_cpu(server.pid)
        result = load(url, concurrency, duration_s)
        cpu_s, runner_cpu_s = cpu_seconds_between(cpu_before, tree_cpu(server.pid))
        per_request_ms = 1000 / result.requests if result.requests else math.nan
        server.check_alive()
        after = python_processes(server.pid)
        point = Point(
            system=run.name,
            concurrency=concurrency,
            requests_per_s=result.requests_per_s,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            mean_ms=result.mean_ms,
            max_ms=result.max_ms,
            requests=result.requests,
            duration_s=result.duration_s,
            errors=result.errors,
            error_count=sum(result.errors.values()),
            server_cpu_ms_per_request=cpu_s * per_request_ms,
            runner_cpu_ms_per_request=runner_cpu_s * per_request_ms,
            warmup_rounds=rounds,
            warm_processes=after,
            new_processes_during_point=max(0, after - before),
            loadavg_1m=loadavg,
            latency_distribution_ms=result.latency_distribution_ms,
            command=result.command,
        )
        run.points.append(point)
        print(
            f"  {run.name:<20} c={concurrency:<3} {point.requests_per_s:>9,.0f} req/s"
            f"  p50 {point.p50_ms:7.3f} ms  p99 {point.p99_ms:7.3f} ms"
            f"  errors {point.error_count}  python procs {after}"
            f"  server CPU {_fmt(point.server_cpu_ms_per_request, '.3f')} ms/req"
            f" ({_fmt(point.runner_cpu_ms_per_request, '.3f')} in Python children)",
            flush=True,
        )
        if point.new_processes_during_point:
            print(
                f"  warning: {point.new_processes_during_point} new Python process(es) started"
                " during the measured point: it includes cold starts",
                flush=True,
            )


def base_env() -> dict[str, str]:
    """This environment with unbuffered Python output."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_lambdalet(work_dir: Path, function_dir: Path, measure: Callable[..., None]) -> SystemRun:
    """Start ``lambdalet serve`` with the function deployed and measure it."""
    run = SystemRun("lambdalet", "lambdalet")
    port = free_port()
    data_dir = work_dir / "lambdalet-data"
    argv = [sys.executable, "-m", "lambdalet", "serve", "--port", str(port)]
    argv += ["--data-dir", str(data_dir), "--deploy", str(function_dir)]
    server = ManagedProcess(
        "lambdalet", argv, cwd=REPO_DIR, env=base_env(), log_path=work_dir / "lambdalet.log"
    )
    run.commands.append(server.command)
    with started(server):
        url = f"http://127.0.0.1:{port}" + INVOKE_PATH.format(name=FUNCTION_NAME)
        run.startup_s = wait_until_invocable(server, url, 60)
        measure(run, server, url)
    run.ok = True
    return run


def run_floor(work_dir: Path, function_dir: Path, measure: Callable[..., None]) -> SystemRun:
    """Start the bare Starlette app on uvicorn and measure it."""
    run = SystemRun("floor", "HTTP floor (starlette)")
    (function_dir / "floor_app.py").write_text(FLOOR_APP_SOURCE)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(function_dir)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
    argv += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    server = ManagedProcess(
        "floor", argv, cwd=function_dir, env=base_env(), log_path=work_dir / "floor.log"
    )
    run.commands.append(server.command)
    with started(server):
        url = f"http://127.0.0.1:{port}" + INVOKE_PATH.format(name=FUNCTION_NAME)
        run.startup_s = wait_until_invocable(server, url, 30)
        measure(run, server, url)
    run.ok = True
    return run


def _package_version(sls_dir: Path, package: str) -> str:
    path = sls_dir / "node_modules" / package / "package.json"
    version: str = json.loads(path.read_text())["version"]
    return version


def prepare_serverless_offline(sls_dir: Path, install: bool, run: SystemRun) -> None:
    """Make sure serverless@3 and serverless-offline@13 are in ``sls_dir``; npm install them."""
    installed = (sls_dir / "node_modules" / "serverless-offline" / "package.json").exists()
    if not installed:
        if not install:
            raise BenchError(f"not installed in {sls_dir} and --no-install given")
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise BenchError("node/npm not found on PATH (needs Node.js >= 18 and npm)")
        sls_dir.mkdir(parents=True, exist_ok=True)
        (sls_dir / "package.json").write_text(json.dumps(SLS_PACKAGE_JSON, indent=2) + "\n")
        argv = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
        # A registry mirror caught mid-sync can list an @aws-sdk package whose dependency it
        # does not have yet (ETARGET); versions a month old are consistent.
        month_ago = datetime.fromtimestamp(time.time() - 30 * 86400, UTC).date().isoformat()
        failures: list[str] = []
        for attempt in (argv, [*argv, f"--before={month_ago}"]):
            command = f"(cd {sls_dir} && {shlex.join(attempt)})"
            print(f"  installing serverless@3 + serverless-offline@13: {command}", flush=True)
            run.commands.append(command)
            try:
                completed = subprocess.run(
                    attempt, cwd=sls_dir, capture_output=True, text=True, timeout=600, check=False
                )
            except subprocess.TimeoutExpired:
                failures.append(f"{command}: did not finish in 600 s")
                continue
            if completed.returncode == 0:
                break
            error = " ".join(line for line in completed.stderr.splitlines() if "npm error" in line)
            failures.append(f"{command}: {error[-600:]}")
            print(f"  npm install failed: {error[-300:]}", flush=True)
        else:
            raise BenchError("npm install failed: " + " | ".join(failures))
    run.versions = {
        "serverless": _package_version(sls_dir, "serverless"),
        "serverless-offline": _package_version(sls_dir, "serverless-offline"),
        "node": subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=False, timeout=30
        ).stdout.strip(),
    }


def run_serverless_offline(
    work_dir: Path, function_dir: Path, sls_dir: Path, install: bool, measure: Callable[..., None]
) -> SystemRun:
    """Install (once), configure, start serverless-offline and measure it."""
    run = SystemRun("serverless-offline", "serverless-offline")
    prepare_serverless_offline(sls_dir, install, run)
    shutil.copy(function_dir / "noop.py", sls_dir / "noop.py")
    (sls_dir / "serverless.yml").write_text(SLS_YAML)
    http_port, lambda_port = free_port(), free_port()
    argv = ["npx", "serverless", "offline", "start", "--host", "127.0.0.1"]
    argv += ["--httpPort", str(http_port), "--lambdaPort", str(lambda_port), "--noSponsor"]
    env = base_env()
    # PythonRunner spawns `python3` from PATH (a virtualenv's bin first): make it this one.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env.update(SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off", CI="1")
    env["SLS_DEPRECATION_DISABLE"] = "*"
    run.versions["python3"] = shutil.which("python3", path=env["PATH"]) or "?"
    server = ManagedProcess(
        "serverless-offline", argv, cwd=sls_dir, env=env, log_path=work_dir / "sls.log"
    )
    run.commands.append(f"(cd {sls_dir} && {server.command})")
    with started(server):
        url = f"http://127.0.0.1:{lambda_port}" + INVOKE_PATH.format(name=SLS_FUNCTION_NAME)
        run.startup_s = wait_until_invocable(server, url, 120)
        measure(run, server, url)
    run.ok = True
    return run


# --- report ----------------------------------------------------------------------------------


def point_of(runs: dict[str, SystemRun], system: str, concurrency: int) -> Point | None:
    """The measured point of a system at a concurrency, if there is one."""
    run = runs.get(system)
    if run is None:
        return None
    return next((p for p in run.points if p.concurrency == concurrency), None)


def comparisons(runs: dict[str, SystemRun], levels: Sequence[int]) -> list[dict[str, Any]]:
    """Per concurrency: lambdalet against serverless-offline, the floor and the direct call."""
    direct = point_of(runs, "direct", 1)
    rows: list[dict[str, Any]] = []
    for concurrency in levels:
        ours = point_of(runs, "lambdalet", concurrency)
        if ours is None:
            continue
        sls = point_of(runs, "serverless-offline", concurrency)
        floor = point_of(runs, "floor", concurrency)
        rows.append(
            {
                "concurrency": concurrency,
                "rps_ratio_vs_serverless_offline": (
                    ours.requests_per_s / sls.requests_per_s if sls else None
                ),
                "rps_ratio_vs_floor": ours.requests_per_s / floor.requests_per_s if floor else None,
                "p50_overhead_over_floor_ms": ours.p50_ms - floor.p50_ms if floor else None,
                "p50_over_direct_call_ms": ours.p50_ms - direct.p50_ms if direct else None,
            }
        )
    return rows


def targets(runs: dict[str, SystemRun], levels: Sequence[int]) -> list[dict[str, Any]]:
    """DESIGN.md's two throughput targets, with whether this run met them."""
    found: list[dict[str, Any]] = []
    top = point_of(runs, "lambdalet", 32)
    found.append(
        {
            "target": "warm no-op invokes/s at concurrency 32 >= 5,000",
            "value": top.requests_per_s if top else None,
            "met": (top.requests_per_s >= TARGET_RPS_AT_32) if top else None,
        }
    )
    low = min(levels)
    ours, floor = point_of(runs, "lambdalet", low), point_of(runs, "floor", low)
    overhead = ours.p50_ms - floor.p50_ms if ours and floor else None
    found.append(
        {
            "target": f"p50 overhead over the HTTP floor at concurrency {low} <= 0.5 ms",
            "value": overhead,
            "met": (overhead <= TARGET_OVERHEAD_MS) if overhead is not None else None,
        }
    )
    return found


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:{spec}}{suffix}"


def _ms(value: float) -> str:
    """Milliseconds with 3 decimals, or 5 when that would show 0.000 (the direct call)."""
    return f"{value:.3f}" if value >= 0.01 or math.isnan(value) else f"{value:.5f}"


def print_report(
    runs: dict[str, SystemRun], levels: Sequence[int], rows: list[dict[str, Any]]
) -> None:
    """The side-by-side table, the ratios and the targets."""
    width = 106
    print("\n" + "=" * width)
    header = f"{'system':<24}{'conc':>5}{'req/s':>11}{'p50 ms':>10}{'p99 ms':>10}"
    print(header + f"{'errors':>8}{'py procs':>10}{'CPU ms/req':>12}{'in py procs':>12}")
    print("-" * width)
    for run in runs.values():
        if not run.ok:
            print(f"{run.label:<24}  not measured: {run.reason.splitlines()[0][:78]}")
            continue
        for point in run.points:
            conc = "-" if run.name == "direct" else str(point.concurrency)
            print(
                f"{run.label:<24}{conc:>5}{point.requests_per_s:>11,.0f}"
                f"{_ms(point.p50_ms):>10}{_ms(point.p99_ms):>10}{point.error_count:>8}"
                f"{point.warm_processes if run.name != 'direct' else '-':>10}"
                f"{_fmt(point.server_cpu_ms_per_request, '.3f'):>12}"
                f"{_fmt(point.runner_cpu_ms_per_request, '.3f'):>12}"
            )
    print("-" * width)
    print(
        f"{'conc':>5}{'lambdalet÷sls req/s':>22}{'lambdalet÷floor req/s':>24}"
        f"{'p50 − floor ms':>16}{'p50 − direct ms':>17}"
    )
    for row in rows:
        print(
            f"{row['concurrency']:>5}"
            f"{_fmt(row['rps_ratio_vs_serverless_offline'], '.2f', '×'):>22}"
            f"{_fmt(row['rps_ratio_vs_floor'], '.2f', '×'):>24}"
            f"{_fmt(row['p50_overhead_over_floor_ms'], '+.3f'):>16}"
            f"{_fmt(row['p50_over_direct_call_ms'], '+.3f'):>17}"
        )
    print("-" * width)
    for target in targets(runs, levels):
        verdict = {True: "MET", False: "NOT MET", None: "not measured"}[target["met"]]
        print(f"target: {target['target']:<58} {_fmt(target['value'], ',.3f'):>10}  {verdict}")
    rounded = [
        run for run in runs.values() if any(len(v) > 1 for v in run.rounds_requests_per_s.values())
    ]
    for run in rounded:
        each = "; ".join(
            f"c={c}: " + " / ".join(f"{rps:,.0f}" for rps in values)
            for c, values in run.rounds_requests_per_s.items()
        )
        print(f"rounds of {run.label} (req/s; the table shows the median): {each}")
    if rounded:
        print("=" * width)


def machine_facts() -> dict[str, Any]:
    """What the numbers depend on."""
    cpu_model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        cpu_model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), "")
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        probe = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
        wrk_version = next(iter((probe.stdout or probe.stderr).splitlines()), "")
    git = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True, timeout=10
    )
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_total_kb": _meminfo_total_kb(),
        "python": sys.version,
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "wrk": wrk_version,
        "git_commit": git.stdout.strip(),
    }


def _meminfo_total_kb() -> int | None:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return None


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` atomically (a .tmp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured point")
    parser.add_argument("--warmup", type=int, default=2, help="seconds per warm-up round")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--systems",
        default="lambdalet,floor,sls",
        help="comma-separated subset of lambdalet, floor, sls (direct always runs)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the systems this many times, one after the other, and report the median",
    )
    parser.add_argument("--sls-dir", type=Path, default=DEFAULT_SLS_DIR)
    parser.add_argument("--no-install", action="store_true", help="never run npm install")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.levels = sorted({int(level) for level in args.concurrency.split(",") if level.strip()})
    args.system_names = {name.strip() for name in args.systems.split(",") if name.strip()}
    if args.duration < 1 or args.warmup < 1 or not args.levels or min(args.levels) < 1:
        parser.error("--duration and --warmup must be >= 1 s, concurrency levels >= 1")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    unknown = args.system_names - {"lambdalet", "floor", "sls"}
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every system, print the comparison and write the JSON."""
    args = parse_args(argv)
    began = time.perf_counter()
    facts = machine_facts()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    runs: dict[str, SystemRun] = {}
    with tempfile.TemporaryDirectory(prefix="lambdalet-bench-") as temporary:
        work_dir = Path(temporary)
        client_name, load = make_load_function(args.client, work_dir)
        function_dir = write_function(work_dir / "fn")
        print(f"load generator: {client_name}; {args.duration} s per point", flush=True)

        def measure(run: SystemRun, server: ManagedProcess, url: str) -> None:
            measure_server(run, server, url, load, args.levels, args.duration, args.warmup)

        print("direct call ...", flush=True)
        runs["direct"] = measure_direct(function_dir, args.duration)
        steps: list[tuple[str, str, str, Callable[[], SystemRun]]] = [
            (
                "lambdalet",
                "lambdalet",
                "lambdalet",
                lambda: run_lambdalet(work_dir, function_dir, measure),
            ),
            (
                "floor",
                "floor",
                "HTTP floor (starlette)",
                lambda: run_floor(work_dir, function_dir, measure),
            ),
            (
                "sls",
                "serverless-offline",
                "serverless-offline",
                lambda: run_serverless_offline(
                    work_dir, function_dir, args.sls_dir, not args.no_install, measure
                ),
            ),
        ]
        rounds: dict[str, list[SystemRun]] = {}
        for round_number in range(1, args.rounds + 1):
            for key, name, label, step in steps:
                if key not in args.system_names:
                    continue
                of = f" (round {round_number} of {args.rounds})" if args.rounds > 1 else ""
                print(f"{label}{of} ...", flush=True)
                try:
                    run = step()
                except (BenchError, OSError, subprocess.SubprocessError) as error:
                    run = SystemRun(name, label, reason=str(error) or repr(error))
                    print(f"  {label} NOT MEASURED: {run.reason}", flush=True)
                rounds.setdefault(name, []).append(run)
        runs.update({name: median_of_rounds(each) for name, each in rounds.items()})
    rows = comparisons(runs, args.levels)
    print_report(runs, args.levels, rows)
    elapsed = time.perf_counter() - began
    document = {
        "benchmark": "throughput",
        "started_at": started_at,
        "elapsed_s": round(elapsed, 1),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.levels,
            "rounds": args.rounds,
            "load_generator": client_name,
            "handler": HANDLER_SOURCE,
        },
        "machine": facts | {"loadavg_at_end": list(os.getloadavg())},
        "systems": {name: asdict(run) for name, run in runs.items()},
        "comparisons": rows,
        "targets": targets(runs, args.levels),
    }
    write_json(args.out, document)
    print(f"wrote {args.out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
