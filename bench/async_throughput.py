"""Async events processed per second, end to end: lambdalet beside Dramatiq, Celery and RQ.

    python bench/async_throughput.py [--events 5000] [--warmup 500] [--rounds 3]
                                     [--systems lambdalet,dramatiq,celery[,rq]]
                                     [--async-workers 64] [--connections 16]
                                     [--profile DIR] [--no-install]
                                     [--out bench/results/async_throughput.json]

Every system runs the same handler on the same machine in the same run, one system at a time:
``record(event_id)`` opens a file with O_APPEND, writes one fixed-width line (the id and
``time.time()`` when it ran) and closes it. For each round, ``--events`` events with fresh
ids are submitted as fast as the producer can, and the round lasts from just before the
first submit to the latest completion time any handler wrote: accepted → handler finished,
queueing, dispatch and the handler included. The bench watches the file's size (fixed-width
lines: no parsing while it waits), then checks every id ran and counts duplicates.

- **lambdalet**: ``python -m lambdalet serve --port P --data-dir <tmp> --deploy <tmp>/fn`` on
  a free loopback port, with its defaults (SQLite queue; ``async_workers`` 64, so up to 64
  sandboxes, unless ``--async-workers``) but the ``process`` sandbox backend: the handler
  appends to this script's file, which an isolated sandbox cannot see (the task queues'
  workers are not isolated either). The function has lambdalet's default 128 MB, so that 64
  sandboxes fit the node's memory budget. Events go through the real Invoke API,
  ``POST /2015-03-31/functions/recorder/invocations`` with ``X-Amz-Invocation-Type: Event``
  and body ``{"id": N}``; the producer is this process: asyncio, ``--connections``
  keep-alive HTTP/1.1 connections (16), every answer must be 202.
- **dramatiq**: ``dramatiq bench_dramatiq_tasks --processes 2 --threads 16`` (one process per
  core and 16 threads each, as the target's anchor names it; Dramatiq's default of 8 threads
  measured the same here), RedisBroker, default middleware, the actor
  with ``max_retries=0``; the producer calls ``actor.send(N)`` in a loop in this process.
- **celery**: ``celery -A bench_celery_tasks worker --pool prefork --concurrency 2`` (its
  defaults on 2 cores: prefork, one child per core, prefetch multiplier 4) with
  ``--without-gossip --without-mingle --without-heartbeat``, Redis broker, no result backend
  (``ignore_result``); the producer calls ``task.delay(N)`` in a loop.
- **rq** (only if named in ``--systems``: about 80 events/s here, minutes per round):
  ``rq worker-pool --num-workers 2`` (RQ's default Worker: a forked work horse per job); the
  producer calls ``queue.enqueue(record, N)`` in a loop.

The task queues' producers are their ordinary synchronous clients, one call at a time (a
Redis round trip on loopback is tens of microseconds); lambdalet's keeps 16 HTTP requests in
flight, since one at a time would measure the HTTP round trip rather than the platform.

Redis is the Debian ``redis-server``, started on a free loopback port with ``--save ""
--appendonly no`` (no fsync per message, as lambdalet's SQLite in WAL mode with
``synchronous=NORMAL`` does not fsync per event either) and flushed between systems. If
``redis-server`` is missing the script runs ``apt-get install -y redis-server`` (as root);
if ``dramatiq``, ``celery`` or ``rq`` cannot be imported it runs ``pip install
'dramatiq[redis]' 'celery[redis]' rq`` into this interpreter; ``--no-install`` skips both and
measures what is there. A system that cannot be installed or started is reported with the
reason and the others are still measured.

Before the measured rounds each system handles ``--warmup`` events (so workers have imported
everything and lambdalet's sandboxes are warm). Per system the median round is reported,
with the submit phase on its own (events/s the producer got accepted), the CPU the system's
process tree (server and sandboxes, or workers plus redis-server) used per event, from /proc,
and the CPU this process (the producer) used per event. For lambdalet each round also splits
the CPU per event between the server's threads, from /proc/PID/task (the event loop, the
SQLite store's thread, which names itself ``sqlite-store``), and the sandboxes (the rest of
the process tree), since one busy thread, not the machine, can be what limits it.

Prints events/s per system and the ratios lambdalet ÷ Dramatiq (DESIGN.md's target is ≥ 2×)
and lambdalet ÷ Celery, and writes them with machine facts and the exact commands to
``--out``. ``--profile DIR`` runs the lambdalet server under cProfile (its event-loop thread
only; the SQLite store's thread is not profiled) and writes ``DIR/lambdalet.prof`` and the
top functions to ``DIR/lambdalet-profile.txt``: profiling slows the server, so its numbers
are not the benchmark's. Every process started is stopped by its process group, then any
leftover descendant by pid (see ``harness.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import io
import os
import pstats
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import (
    CLOCK_TICKS_PER_S,
    BenchError,
    CpuSnapshot,
    ManagedProcess,
    _read_response,
    cpu_seconds_between,
    free_port,
    started,
    tree_cpu,
)
from taskqueues import (
    START_TIMEOUT_S,
    TASK_QUEUES,
    Producer,
    Redis,
    TaskQueue,
    ensure_python_packages,
    ensure_redis_server,
    importable,
    queue_env,
    versions,
)
from throughput import base_env, machine_facts, write_function, write_json

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_OUT = BENCH_DIR / "results" / "async_throughput.json"
FUNCTION_NAME = "recorder"
INVOKE_PATH = f"/2015-03-31/functions/{FUNCTION_NAME}/invocations"
TARGET_RATIO_VS_DRAMATIQ = 2.0
SYSTEM_NAMES = ("lambdalet", "dramatiq", "celery", "rq")
LAMBDALET_LABEL = "lambdalet (HTTP Invoke, Event)"

# Fixed-width lines: the number of completions is the file's size divided by LINE_BYTES.
LINE_BYTES = 27
RECORD_SOURCE = '''\
"""The benchmark's handler, the same in every system: one fixed-width line per run."""

import os
import time

OUT = {out!r}


def record(event_id):
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"%08d %17.6f\\n" % (event_id, time.time()))
    finally:
        os.close(fd)
'''

LAMBDALET_HANDLER_SOURCE = """\
from bench_record import record


def handler(event, context):
    record(event["id"])
"""


@dataclass
class Round:
    """One measured batch of events."""

    events: int
    submit_s: float
    elapsed_s: float
    events_per_s: float
    submitted_per_s: float
    duplicates: int
    cpu_ms_per_event: float | None
    producer_cpu_ms_per_event: float
    loadavg_1m: float
    # lambdalet only: CPU ms per event of each server thread (by name) and of the sandboxes.
    server_threads_cpu_ms_per_event: dict[str, float] | None = None


@dataclass
class SystemRun:
    """A system's rounds, or why it was not measured."""

    name: str
    label: str
    ok: bool = False
    reason: str = ""
    workers: str = ""
    startup_s: float | None = None
    warmup_s: float | None = None
    commands: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    rounds: list[Round] = field(default_factory=list)

    @property
    def median(self) -> Round | None:
        """The round with the median events/s."""
        if not self.rounds:
            return None
        ordered = sorted(self.rounds, key=lambda r: r.events_per_s)
        return ordered[(len(ordered) - 1) // 2]


class Completions:
    """The handler's output file: how many runs so far, and which."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self) -> int:
        try:
            return self.path.stat().st_size // LINE_BYTES
        except FileNotFoundError:
            return 0

    def wait_for(self, total: int, timeout_s: float, alive: Callable[[], None]) -> None:
        """Until ``total`` runs were recorded; BenchError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.count() < total:
            alive()
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.count()} of {total} events ran in {timeout_s:.0f} s")
            time.sleep(0.005)

    def runs(self) -> list[tuple[int, float]]:
        """(event id, completion time) of every run."""
        found = []
        for line in self.path.read_bytes().splitlines():
            event_id, at = line.split()
            found.append((int(event_id), float(at)))
        return found


# A producer submits the given ids and raises BenchError if any was not accepted.


def measure_rounds(
    run: SystemRun,
    produce: Producer,
    completions: Completions,
    cpu_roots: Sequence[ManagedProcess],
    args: argparse.Namespace,
    *,
    server_pid: int | None = None,
) -> None:
    """Warm the system up, then time ``rounds`` batches of ``events`` from first submit to
    last completion; with ``server_pid``, also split its CPU by thread (``thread_split_ms``)."""

    def alive() -> None:
        for process in cpu_roots:
            process.check_alive()

    events, warmup, rounds = args.events, args.warmup, args.rounds
    began = time.perf_counter()
    if warmup:
        produce(range(warmup))
        completions.wait_for(warmup, max(120.0, warmup / 20), alive)
    run.warmup_s = time.perf_counter() - began
    next_id = warmup
    for number in range(1, rounds + 1):
        ids = range(next_id, next_id + events)
        next_id += events
        expected = completions.count() + events
        loadavg = os.getloadavg()[0]
        cpu_before = _cpu(cpu_roots)
        threads_before = thread_cpu_ticks(server_pid) if server_pid else {}
        producer_cpu_before = time.process_time()
        first_submit = time.time()
        produce(ids)
        submitted = time.time()
        completions.wait_for(expected, max(120.0, events / 20), alive)
        cpu_s = _cpu_seconds(cpu_before, _cpu(cpu_roots))
        split = None
        if server_pid:
            split = thread_split_ms(threads_before, thread_cpu_ticks(server_pid), cpu_s, events)
        producer_cpu_s = time.process_time() - producer_cpu_before
        ran = [(event_id, at) for event_id, at in completions.runs() if event_id in ids]
        per_event = Counter(event_id for event_id, _ in ran)
        missing = len(ids) - len(per_event)
        if missing:
            raise BenchError(f"{missing} events never ran")
        elapsed = max(at for _, at in ran) - first_submit
        result = Round(
            events=events,
            submit_s=submitted - first_submit,
            elapsed_s=elapsed,
            events_per_s=events / elapsed,
            submitted_per_s=events / (submitted - first_submit),
            duplicates=sum(times - 1 for times in per_event.values()),
            cpu_ms_per_event=cpu_s * 1000 / events,
            producer_cpu_ms_per_event=producer_cpu_s * 1000 / events,
            loadavg_1m=loadavg,
            server_threads_cpu_ms_per_event=split,
        )
        run.rounds.append(result)
        print(
            f"  round {number}: {result.events_per_s:8,.0f} events/s end to end"
            f" ({elapsed:.2f} s; submitted in {result.submit_s:.2f} s ="
            f" {result.submitted_per_s:,.0f}/s); system CPU {result.cpu_ms_per_event:.3f} ms/event,"
            f" producer {result.producer_cpu_ms_per_event:.3f} ms/event;"
            f" duplicates {result.duplicates}",
            flush=True,
        )
        if split:
            print("    CPU ms/event: " + ", ".join(f"{k} {v:.3f}" for k, v in split.items()))


def thread_cpu_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """tid → (thread name, user + system CPU ticks) of every thread of ``pid``, from /proc.

    The main thread (tid = pid) is the server's event loop; other threads are named by their
    comm (the SQLite store names its thread ``sqlite-store``)."""
    found: dict[int, tuple[str, int]] = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{entry}/stat").read_text(errors="replace")
        except OSError:
            continue
        name = "event loop" if int(entry) == pid else text[text.find("(") + 1 : text.rfind(")")]
        fields = text[text.rfind(")") + 2 :].split()
        found[int(entry)] = (name, int(fields[11]) + int(fields[12]))
    return found


def thread_split_ms(
    before: dict[int, tuple[str, int]],
    after: dict[int, tuple[str, int]],
    tree_cpu_s: float,
    events: int,
) -> dict[str, float]:
    """CPU ms per event of each named server thread, and of everything else in the tree
    (the sandboxes), between two :func:`thread_cpu_ticks` snapshots."""
    by_name: Counter[str] = Counter()
    for tid, (name, ticks) in after.items():
        by_name[name] += ticks - before.get(tid, (name, 0))[1]
    split = {name: ticks * 1000 / CLOCK_TICKS_PER_S / events for name, ticks in by_name.items()}
    server_ms = sum(split.values())
    split = {name: ms for name, ms in sorted(split.items(), key=lambda i: -i[1]) if ms}
    split["sandboxes"] = tree_cpu_s * 1000 / events - server_ms
    return split


def _cpu(processes: Sequence[ManagedProcess]) -> list[CpuSnapshot]:
    return [tree_cpu(process.pid) for process in processes]


def _cpu_seconds(before: list[CpuSnapshot], after: list[CpuSnapshot]) -> float:
    return sum(cpu_seconds_between(b, a)[0] for b, a in zip(before, after, strict=True))


# --- lambdalet -------------------------------------------------------------------------------


async def _post_events(url: str, ids: range, connections: int) -> list[int]:
    """POST ``{"id": N}`` as an Event invoke for every id over keep-alive connections;
    the statuses that were not 202."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    head = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nX-Amz-Invocation-Type: Event\r\n"
    )
    pending = iter(ids)
    refused: list[int] = []

    async def drive() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for event_id in pending:
                body = b'{"id": %d}' % event_id
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status = await _read_response(reader)
                if status != 202:
                    refused.append(status)
        finally:
            writer.close()

    await asyncio.gather(*(drive() for _ in range(connections)))
    return refused


def lambdalet_producer(url: str, connections: int) -> Producer:
    """Submit events through the Invoke API; BenchError unless every one got its 202."""

    def produce(ids: range) -> None:
        refused = asyncio.run(_post_events(url, ids, connections))
        if refused:
            raise BenchError(f"{len(refused)} events refused: statuses {Counter(refused)}")

    return produce


def run_lambdalet(work_dir: Path, args: argparse.Namespace) -> SystemRun:
    """Start ``lambdalet serve`` with the recorder deployed and measure it."""
    workers = f"async_workers={args.async_workers or 'default (64)'}; a sandbox per event in flight"
    run = SystemRun("lambdalet", LAMBDALET_LABEL, workers=workers)
    run.versions["lambdalet"] = importlib.metadata.version("lambdalet")
    system_dir = work_dir / "lambdalet"
    # lambdalet's default 128 MB: the process backend limits no CPU, and 64 sandboxes of it
    # (async_workers) fit the node's memory budget.
    function_dir = write_function(
        system_dir / "fn", "app", LAMBDALET_HANDLER_SOURCE, FUNCTION_NAME, memory_mb=None
    )
    completions = Completions(system_dir / "runs.txt")
    (function_dir / "bench_record.py").write_text(RECORD_SOURCE.format(out=str(completions.path)))
    port = free_port()
    argv = [sys.executable]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        argv += ["-m", "cProfile", "-o", str(args.profile / "lambdalet.prof")]
    argv += ["-m", "lambdalet", "serve", "--port", str(port)]
    argv += ["--data-dir", str(system_dir / "data"), "--deploy", str(function_dir)]
    # The process backend: the handler appends to this benchmark's file, which an isolated
    # sandbox cannot see (the task queues' workers are not isolated either).
    settings = {"LAMBDALET_SANDBOX_BACKEND": "process"}
    if args.async_workers:
        settings["LAMBDALET_ASYNC_WORKERS"] = str(args.async_workers)
    server = ManagedProcess(
        "lambdalet",
        argv,
        cwd=REPO_DIR,
        env=base_env() | settings,
        log_path=work_dir / "lambdalet.log",
    )
    env_prefix = "".join(f"{key}={value} " for key, value in settings.items())
    run.commands.append(env_prefix + server.command)
    run.commands.append(
        f"producer: this process, asyncio, {args.connections} keep-alive connections,"
        f' POST {INVOKE_PATH} with X-Amz-Invocation-Type: Event and {{"id": N}}'
    )
    base_url = f"http://127.0.0.1:{port}"
    with started(server):
        run.startup_s = _wait_for_function(server, base_url)
        produce = lambdalet_producer(base_url + INVOKE_PATH, args.connections)
        measure_rounds(run, produce, completions, [server], args, server_pid=server.pid)
    if args.profile:
        write_profile_summary(args.profile)
    run.ok = True
    return run


def _wait_for_function(server: ManagedProcess, base_url: str) -> float:
    """Until a DryRun Invoke of the deployed function answers 204; seconds since start."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            request = urllib.request.Request(
                base_url + INVOKE_PATH,
                data=b"{}",
                method="POST",
                headers={"X-Amz-Invocation-Type": "DryRun", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 204:
                    return time.perf_counter() - server.started_at
                last = f"status {response.status}"
        except OSError as error:
            last = repr(error)
        time.sleep(0.1)
    raise BenchError(f"lambdalet not ready after {START_TIMEOUT_S:.0f} s ({last})")


def write_profile_summary(directory: Path) -> None:
    """The profile's top functions by cumulative and by own time, as text beside it."""
    profile = directory / "lambdalet.prof"
    if not profile.exists():
        print(f"  no profile written at {profile}", flush=True)
        return
    text = io.StringIO()
    stats = pstats.Stats(str(profile), stream=text).strip_dirs()
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(45)
    (directory / "lambdalet-profile.txt").write_text(text.getvalue())
    print(f"  profile: {profile} and {directory / 'lambdalet-profile.txt'}", flush=True)


# --- the task queues (bench/taskqueues.py) -----------------------------------------------


def run_task_queue(
    queue: TaskQueue, work_dir: Path, redis: Redis, args: argparse.Namespace
) -> SystemRun:
    """Start a task queue's workers on Redis and measure it, fed from this process."""
    run = SystemRun(queue.name, queue.label, workers=queue.workers)
    run.versions = versions(*queue.packages) | {"redis-server": redis.version}
    system_dir = work_dir / queue.name
    system_dir.mkdir()
    completions = Completions(system_dir / "runs.txt")
    (system_dir / "bench_record.py").write_text(RECORD_SOURCE.format(out=str(completions.path)))
    if queue.tasks_source is not None:
        (system_dir / f"bench_{queue.name}_tasks.py").write_text(queue.tasks_source)
    workers = ManagedProcess(
        queue.name,
        queue.worker_argv(system_dir, redis.url),
        cwd=system_dir,
        env=queue_env(redis.url, system_dir),
        log_path=work_dir / f"{queue.name}.log",
    )
    run.commands += [
        redis.command,
        f"(cd {system_dir} && BENCH_REDIS_URL={redis.url} PYTHONPATH={system_dir}"
        f" {workers.command})",
        f"producer: this process, {queue.producer_call} per event, one at a time",
    ]
    with started(workers), importable(system_dir, redis.url):
        produce, close = queue.producer(redis)
        try:
            measure_rounds(run, produce, completions, [workers, redis.process], args)
        finally:
            close()
    run.ok = True
    return run


# --- report ----------------------------------------------------------------------------------


def ratio(runs: dict[str, SystemRun], over: str) -> float | None:
    """lambdalet's median events/s divided by another system's."""
    ours, theirs = runs.get("lambdalet"), runs.get(over)
    if ours is None or theirs is None or ours.median is None or theirs.median is None:
        return None
    return ours.median.events_per_s / theirs.median.events_per_s


def print_report(runs: dict[str, SystemRun]) -> dict[str, Any]:
    """The side-by-side table and the ratios; the ratios and target as a dict."""
    width = 104
    print("\n" + "=" * width)
    print(
        f"{'system':<32}{'events/s':>10}{'rounds (events/s)':>26}{'submit/s':>10}"
        f"{'CPU ms/ev':>11}{'prod ms/ev':>11}{'dups':>6}"
    )
    print("-" * width)
    for run in runs.values():
        best = run.median
        if not run.ok or best is None:
            print(f"{run.label:<32}  not measured: {run.reason.splitlines()[0][:66]}")
            continue
        each = " ".join(f"{r.events_per_s:,.0f}" for r in run.rounds)
        print(
            f"{run.label:<32}{best.events_per_s:>10,.0f}{each:>26}{best.submitted_per_s:>10,.0f}"
            f"{_fmt(best.cpu_ms_per_event):>11}{_fmt(best.producer_cpu_ms_per_event):>11}"
            f"{sum(r.duplicates for r in run.rounds):>6}"
        )
    print("-" * width)
    versus_dramatiq = ratio(runs, "dramatiq")
    met = None if versus_dramatiq is None else versus_dramatiq >= TARGET_RATIO_VS_DRAMATIQ
    summary: dict[str, Any] = {
        "lambdalet_over_dramatiq": versus_dramatiq,
        "lambdalet_over_celery": ratio(runs, "celery"),
        "lambdalet_over_rq": ratio(runs, "rq"),
        "target": f"lambdalet >= {TARGET_RATIO_VS_DRAMATIQ:g}x Dramatiq+Redis, end to end",
        "met": met,
    }
    for key, label in (
        ("lambdalet_over_dramatiq", "lambdalet ÷ Dramatiq+Redis"),
        ("lambdalet_over_celery", "lambdalet ÷ Celery+Redis"),
        ("lambdalet_over_rq", "lambdalet ÷ RQ+Redis"),
    ):
        value = summary[key]
        print(f"{label:<32}{'n/a' if value is None else f'{value:.2f}×':>10}")
    verdict = {True: "MET", False: "NOT MET", None: "not measured"}[met]
    print(f"target: {summary['target']}: {verdict}")
    print("=" * width)
    return summary


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=5000, help="events per measured round")
    parser.add_argument("--warmup", type=int, default=500, help="events before the rounds")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per system")
    parser.add_argument(
        "--systems",
        default="lambdalet,dramatiq,celery",
        help=f"comma-separated subset of {', '.join(SYSTEM_NAMES)} (rq is slow: opt in)",
    )
    parser.add_argument(
        "--async-workers", type=int, default=None, help="lambdalet's async_workers (default 64)"
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="HTTP connections of lambdalet's producer"
    )
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the lambdalet server")
    parser.add_argument("--no-install", action="store_true", help="never apt-get or pip install")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.system_names = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = set(args.system_names) - set(SYSTEM_NAMES)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if not 1 <= args.events <= 100_000 or not 0 <= args.warmup <= 100_000 or args.rounds < 1:
        parser.error("--events must be 1..100000, --warmup 0..100000, --rounds >= 1")
    if args.connections < 1 or (args.async_workers is not None and args.async_workers < 1):
        parser.error("--connections and --async-workers must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every system, print the comparison and write the JSON."""
    args = parse_args(argv)
    began = time.perf_counter()
    facts = machine_facts()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    setup_commands: list[str] = []
    runs: dict[str, SystemRun] = {}
    queues = [name for name in args.system_names if name != "lambdalet"]
    with tempfile.TemporaryDirectory(prefix="lambdalet-async-bench-") as temporary:
        work_dir = Path(temporary)
        redis: Redis | None = None
        redis_error = ""
        if queues:
            try:
                ensure_redis_server(not args.no_install, setup_commands)
                ensure_python_packages(not args.no_install, setup_commands)
                redis = Redis(work_dir)
            except (BenchError, OSError, subprocess.SubprocessError) as error:
                redis_error = str(error) or repr(error)
        labels = {"lambdalet": LAMBDALET_LABEL} | {q.name: q.label for q in TASK_QUEUES.values()}
        try:
            if redis is not None:
                redis.wait_ready()
            for name in args.system_names:
                print(
                    f"{labels[name]}: {args.warmup} warm-up events, then {args.rounds} x "
                    f"{args.events} ...",
                    flush=True,
                )
                try:
                    if redis is not None and name != "lambdalet":
                        redis.flush()
                    if name == "lambdalet":
                        run = run_lambdalet(work_dir, args)
                    else:
                        queue = TASK_QUEUES[name]
                        run = run_task_queue(queue, work_dir, _need(redis, redis_error), args)
                except (BenchError, ImportError, OSError, subprocess.SubprocessError) as error:
                    run = SystemRun(name, labels[name], reason=str(error) or repr(error))
                    print(f"  {labels[name]} NOT MEASURED: {run.reason}", flush=True)
                runs[name] = run
        finally:
            if redis is not None:
                redis.process.stop()
    summary = print_report(runs)
    elapsed = time.perf_counter() - began
    document = {
        "benchmark": "async_throughput",
        "started_at": started_at,
        "elapsed_s": round(elapsed, 1),
        "command": shlex.join([sys.executable, *sys.argv]),
        "setup_commands": setup_commands,
        "settings": {
            "events_per_round": args.events,
            "warmup_events": args.warmup,
            "rounds": args.rounds,
            "lambdalet_async_workers": args.async_workers or "default (64)",
            "lambdalet_producer_connections": args.connections,
            "timing": "first submit to the latest handler completion time, per round; median",
            "handler": RECORD_SOURCE,
            "profiled": args.profile is not None,
        },
        "machine": facts | {"loadavg_at_end": list(os.getloadavg())},
        "systems": {
            name: asdict(run) | {"median": asdict(run.median) if run.median else None}
            for name, run in runs.items()
        },
        "summary": summary,
    }
    write_json(args.out, document)
    print(f"wrote {args.out} ({elapsed:.0f} s)")
    return 0


def _need(redis: Redis | None, error: str) -> Redis:
    if redis is None:
        raise BenchError(error or "redis-server was not started")
    return redis


if __name__ == "__main__":
    sys.exit(main())
