"""A web handler behind a lambdalet function URL, beside the same handler in bare Starlette.

    python bench/http_frontdoor.py [--duration 5] [--warmup 2] [--concurrency 1,8,32]
                                   [--client auto|wrk|python] [--form auto|host|path]
                                   [--out bench/results/http.json]

(Not ``bench/http.py``: a module named ``http`` beside the scripts would shadow the standard
library's ``http`` package for every script in this directory.)

Both systems run the same typical web handler (``HANDLER_SOURCE``: a JSON body naming the
request's path) and are driven the same way, one after the other in the same run, at each
concurrency for ``--duration`` seconds after a warm-up:

- **lambdalet**: ``python -m lambdalet serve --port P --data-dir <tmp> --deploy <tmp>/fn`` as a
  subprocess on a free loopback port; one unsigned ``POST /2021-10-31/functions/web/url``
  (``{"AuthType": "NONE"}``) creates the function URL; load is ``GET /hello`` with the URL's
  Host header (``<id>.lambda-url.us-east-1.localhost:P``, the "host" form) or, with
  ``--form path``, ``GET /_lambdalet/urls/<id>/hello`` (the "path" form). Each request goes
  through the front door (host dispatch, the payload-2.0 event, the router, a warm sandbox and
  the response mapping).
- **floor**: a bare Starlette app on uvicorn (uvloop, httptools: lambdalet's own stack), one
  catch-all route that builds a minimal payload-2.0-like event, calls the handler in-process
  and maps statusCode/headers/body to a Response: the HTTP floor for a web handler.

Load generator: ``wrk`` through ``harness.run_wrk``, given a Lua script of its own (GET, the
path, the Host header for lambdalet's host form) followed by the harness's ``done`` hook, which
prints exact p50/p99. ``--client python`` (or no wrk on the machine) uses the harness's Python
client instead; it can only POST ``{}`` with the socket's own Host, so that run uses the path
form and POST (the handler does not care about the method). Non-2xx answers count as errors,
and before each system is measured one request checks the handler's answer.

Warm-up and the per-point numbers (req/s, p50/p99, server CPU per request of the server's
process tree from /proc, warm Python processes) come from ``throughput.measure_server``.
Prints a table, lambdalet ÷ floor (req/s), lambdalet p50 − floor p50 and the CPU per request
of each, and writes them with the machine facts, ``uptime`` before and after and the exact
commands to ``--out``. Every process started is stopped by its process group, then leftover
descendants by pid (``harness.ManagedProcess``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import (
    WRK_LUA,
    BenchError,
    LoadFunction,
    LoadResult,
    ManagedProcess,
    free_port,
    make_load_function,
    run_python_client,
    run_wrk,
    started,
)
from throughput import (
    Point,
    SystemRun,
    base_env,
    machine_facts,
    measure_server,
    write_function,
    write_json,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_OUT = BENCH_DIR / "results" / "http.json"
FUNCTION_NAME = "web"
REQUEST_PATH = "/hello"
EXPECTED_BODY = {"path": REQUEST_PATH, "ok": True}
URL_CONFIG_PATH = "/2021-10-31/functions/{name}/url"
GET_FUNCTION_PATH = "/2015-03-31/functions/{name}"
URL_PATH_FORM = "/_lambdalet/urls/{url_id}"

HANDLER_SOURCE = '''\
"""The benchmark's web handler: the same code in both systems."""

import json


def handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"path": event["rawPath"], "ok": True})}
'''

FLOOR_APP_SOURCE = '''\
"""The HTTP floor for a web handler: Starlette on uvicorn, a minimal payload-2.0-like event."""

import time

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from web import handler


async def serve(request):
    body = await request.body()
    path = request.url.path
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": request.url.query,
        "headers": dict(request.headers),
        "requestContext": {
            "http": {"method": request.method, "path": path, "protocol": "HTTP/1.1"},
            "timeEpoch": int(time.time() * 1000),
        },
        "body": body.decode("utf-8", "replace"),
        "isBase64Encoded": False,
    }
    result = handler(event, None)
    return Response(
        result.get("body", ""),
        status_code=result.get("statusCode", 200),
        headers=result.get("headers"),
    )


app = Starlette(routes=[Route("/{path:path}", serve, methods=["GET", "POST"])])
'''

# wrk's request for this benchmark; the harness's ``done`` hook (exact p50/p99) follows it.
WRK_REQUEST_LUA = """\
wrk.method = "GET"
wrk.path = {path}
{host_line}
"""
WRK_DONE_LUA = WRK_LUA[WRK_LUA.index("done = function") :]


# --- load --------------------------------------------------------------------------------------


def http_get(url: str, host: str | None = None, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """GET ``url`` (with another Host header when given): (status, body)."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_post_json(url: str, document: dict[str, Any], timeout_s: float = 10.0) -> Any:
    """POST a JSON document (unsigned) and return the JSON answer; BenchError unless 2xx."""
    request = urllib.request.Request(
        url, data=json.dumps(document).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise BenchError(f"POST {url}: {error.code} {error.read()[:300]!r}") from error


def wrk_load(script_dir: Path, host: str | None) -> LoadFunction:
    """``harness.run_wrk`` sending ``GET`` of the URL's path (and ``host`` as Host header).

    run_wrk runs the ``post.lua`` it finds in its directory (writing its own only when there is
    none), so each system gets a directory holding this request's script."""
    script_dir.mkdir(parents=True, exist_ok=True)
    host_line = f'wrk.headers["Host"] = {json.dumps(host)}' if host else ""

    def load(url: str, concurrency: int, duration_s: int) -> LoadResult:
        path = urllib.parse.urlsplit(url).path
        request = WRK_REQUEST_LUA.format(path=json.dumps(path), host_line=host_line)
        (script_dir / "post.lua").write_text(request + WRK_DONE_LUA)
        result = run_wrk(script_dir, url, concurrency, duration_s)
        if host:
            result.command += f"  (Lua script: GET {path}, Host: {host})"
        return result

    return load


def check_answer(url: str, host: str | None, method: str) -> None:
    """One request as the load generator will send it must get the handler's answer."""
    if method == "GET":
        status, body = http_get(url, host)
    else:
        request = urllib.request.Request(url, data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = int(response.status), response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status != 200 or answer != EXPECTED_BODY:
        raise BenchError(f"{method} {url} (Host {host or 'default'}): {status} {body[:300]!r}")


# --- systems -----------------------------------------------------------------------------------


def wait_for_function(server: ManagedProcess, base_url: str, timeout_s: float) -> float:
    """Poll GetFunction until ``serve --deploy`` has created the function; seconds since start."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            status, body = http_get(base_url + GET_FUNCTION_PATH.format(name=FUNCTION_NAME))
        except OSError as error:
            last = repr(error)
        else:
            if status == 200:
                return time.perf_counter() - server.started_at
            last = f"status {status}: {body[:200]!r}"
        time.sleep(0.2)
    raise BenchError(f"{server.name}: function not deployed after {timeout_s:.0f} s ({last})")


def run_lambdalet(
    work_dir: Path, function_dir: Path, form: str, client: str, measure: Callable[..., None]
) -> SystemRun:
    """Start ``lambdalet serve``, give the function a URL and measure it."""
    run = SystemRun("lambdalet", f"lambdalet URL ({form} form)")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "lambdalet", "serve", "--port", str(port)]
    argv += ["--data-dir", str(work_dir / "lambdalet-data"), "--deploy", str(function_dir)]
    server = ManagedProcess(
        "lambdalet", argv, cwd=REPO_DIR, env=base_env(), log_path=work_dir / "lambdalet.log"
    )
    run.commands.append(server.command)
    with started(server):
        run.startup_s = wait_for_function(server, base_url, 60)
        create_url = base_url + URL_CONFIG_PATH.format(name=FUNCTION_NAME)
        config = http_post_json(create_url, {"AuthType": "NONE"})
        run.commands.append(f'POST {create_url} {{"AuthType": "NONE"}}')
        function_url = str(config["FunctionUrl"])
        url_host = function_url.split("://", 1)[1].rstrip("/")
        url_id = url_host.split(".", 1)[0]
        run.versions = {"function_url": function_url}
        if form == "host":
            url, host = base_url + REQUEST_PATH, url_host
        else:
            url, host = base_url + URL_PATH_FORM.format(url_id=url_id) + REQUEST_PATH, None
        load = system_load(work_dir / "lambdalet-wrk", host, client)
        check_answer(url, host, "GET" if client == "wrk" else "POST")
        measure(run, server, url, load)
    run.ok = True
    return run


def run_floor(
    work_dir: Path, function_dir: Path, client: str, measure: Callable[..., None]
) -> SystemRun:
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
        url = f"http://127.0.0.1:{port}{REQUEST_PATH}"
        deadline = time.monotonic() + 30
        while True:
            server.check_alive()
            try:
                check_answer(url, None, "GET" if client == "wrk" else "POST")
                break
            except (OSError, BenchError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        run.startup_s = time.perf_counter() - server.started_at
        measure(run, server, url, system_load(work_dir / "floor-wrk", None, client))
    run.ok = True
    return run


def system_load(script_dir: Path, host: str | None, client: str) -> LoadFunction:
    """The load function of one system: wrk with this benchmark's GET script, or the
    harness's Python client (POST ``{}``)."""
    return wrk_load(script_dir, host) if client == "wrk" else run_python_client


# --- report ------------------------------------------------------------------------------------


def point_of(runs: dict[str, SystemRun], system: str, concurrency: int) -> Point | None:
    """The measured point of a system at a concurrency, if there is one."""
    run = runs.get(system)
    if run is None:
        return None
    return next((p for p in run.points if p.concurrency == concurrency), None)


def comparisons(runs: dict[str, SystemRun], levels: Sequence[int]) -> list[dict[str, Any]]:
    """Per concurrency: lambdalet's function URL against the Starlette floor."""
    rows: list[dict[str, Any]] = []
    for concurrency in levels:
        ours, floor = point_of(runs, "lambdalet", concurrency), point_of(runs, "floor", concurrency)
        if ours is None or floor is None:
            continue
        rows.append(
            {
                "concurrency": concurrency,
                "rps_ratio_lambdalet_over_floor": (
                    ours.requests_per_s / floor.requests_per_s if floor.requests_per_s else None
                ),
                "p50_difference_ms": ours.p50_ms - floor.p50_ms,
                "p99_difference_ms": ours.p99_ms - floor.p99_ms,
                "server_cpu_ms_per_request": {
                    "lambdalet": ours.server_cpu_ms_per_request,
                    "floor": floor.server_cpu_ms_per_request,
                },
            }
        )
    return rows


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:{spec}}{suffix}"


def print_report(runs: dict[str, SystemRun], rows: list[dict[str, Any]]) -> None:
    """The side-by-side table and the ratios."""
    width = 98
    print("\n" + "=" * width)
    print(
        f"{'system':<28}{'conc':>5}{'req/s':>11}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
        f"{'py procs':>10}{'CPU ms/req':>12}"
    )
    print("-" * width)
    for run in runs.values():
        if not run.ok:
            print(f"{run.label:<28}  not measured: {run.reason.splitlines()[0][:64]}")
            continue
        for point in run.points:
            print(
                f"{run.label:<28}{point.concurrency:>5}{point.requests_per_s:>11,.0f}"
                f"{point.p50_ms:>10.3f}{point.p99_ms:>10.3f}{point.error_count:>8}"
                f"{point.warm_processes:>10}{_num(point.server_cpu_ms_per_request, '.3f'):>12}"
            )
    print("-" * width)
    print(
        f"{'conc':>5}{'lambdalet÷floor req/s':>24}{'p50 − floor ms':>17}{'p99 − floor ms':>17}"
        f"{'CPU ms/req lambdalet / floor':>31}"
    )
    for row in rows:
        cpu = row["server_cpu_ms_per_request"]
        print(
            f"{row['concurrency']:>5}{_num(row['rps_ratio_lambdalet_over_floor'], '.2f', '×'):>24}"
            f"{_num(row['p50_difference_ms'], '+.3f'):>17}"
            f"{_num(row['p99_difference_ms'], '+.3f'):>17}"
            f"{_num(cpu['lambdalet'], '.3f') + ' / ' + _num(cpu['floor'], '.3f'):>31}"
        )
    print("=" * width)


def uptime() -> str:
    """``uptime``'s line: the machine's load while this ran."""
    try:
        done = subprocess.run(["uptime"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return f"uptime failed: {error}"
    return done.stdout.strip()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured point")
    parser.add_argument("--warmup", type=int, default=2, help="seconds per warm-up round")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--form",
        choices=("auto", "host", "path"),
        default="auto",
        help="how requests name the function URL: its Host header or /_lambdalet/urls/<id>/"
        " (auto: host with wrk; the Python client can only use path)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.levels = sorted({int(level) for level in args.concurrency.split(",") if level.strip()})
    if args.duration < 1 or args.warmup < 1 or not args.levels or min(args.levels) < 1:
        parser.error("--duration and --warmup must be >= 1 s, concurrency levels >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both systems, print the comparison and write the JSON."""
    args = parse_args(argv)
    began = time.perf_counter()
    facts = machine_facts()
    uptime_at_start = uptime()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    runs: dict[str, SystemRun] = {}
    with tempfile.TemporaryDirectory(prefix="lambdalet-bench-http-") as temporary:
        work_dir = Path(temporary)
        client, _ = make_load_function(args.client, work_dir)
        form = args.form if args.form != "auto" else ("host" if client == "wrk" else "path")
        if client != "wrk" and form == "host":
            raise SystemExit("--form host needs wrk (the Python client cannot set Host)")
        function_dir = write_function(work_dir / "fn", "web", HANDLER_SOURCE, FUNCTION_NAME)
        print(f"load generator: {client}; function URL {form} form; {uptime_at_start}", flush=True)

        def measure(run: SystemRun, server: ManagedProcess, url: str, load: LoadFunction) -> None:
            measure_server(run, server, url, load, args.levels, args.duration, args.warmup)

        steps: list[tuple[str, Callable[[], SystemRun]]] = [
            ("lambdalet", lambda: run_lambdalet(work_dir, function_dir, form, client, measure)),
            ("floor", lambda: run_floor(work_dir, function_dir, client, measure)),
        ]
        for name, step in steps:
            print(f"{name} ...", flush=True)
            try:
                run = step()
            except (BenchError, OSError, subprocess.SubprocessError) as error:
                run = SystemRun(name, name, reason=str(error) or repr(error))
                print(f"  {name} NOT MEASURED: {run.reason}", flush=True)
            runs[name] = run
    rows = comparisons(runs, args.levels)
    print_report(runs, rows)
    uptime_at_end = uptime()
    print(f"machine load: at start {uptime_at_start!r}; at end {uptime_at_end!r}")
    elapsed = time.perf_counter() - began
    document = {
        "benchmark": "http",
        "started_at": started_at,
        "elapsed_s": round(elapsed, 1),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.levels,
            "load_generator": client,
            "function_url_form": form,
            "request": f"{'GET' if client == 'wrk' else 'POST {}'} {REQUEST_PATH}",
            "handler": HANDLER_SOURCE,
            "floor_app": FLOOR_APP_SOURCE,
        },
        "machine": facts
        | {
            "loadavg_at_end": list(os.getloadavg()),
            "uptime_at_start": uptime_at_start,
            "uptime_at_end": uptime_at_end,
        },
        "systems": {name: asdict(run) for name, run in runs.items()},
        "comparisons": rows,
    }
    write_json(args.out, document)
    print(f"wrote {args.out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
