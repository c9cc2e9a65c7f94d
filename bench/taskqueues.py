"""The task queues the asynchronous benchmark compares lambdalet with, on a Redis of its own.

Dramatiq, Celery and RQ, each on the Debian ``redis-server`` started on a free loopback port:
how to start each one's workers, how this process produces its tasks, and how to install
what is missing. ``async_throughput.py`` measures them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import BenchError, ManagedProcess, free_port
from throughput import base_env

WORKER_PROCESSES = 2  # this is a 2-core machine: one worker process per core
# As DESIGN.md's anchor for Dramatiq names it; its default of 8 threads measured the same here.
DRAMATIQ_THREADS = 16
START_TIMEOUT_S = 60.0
PIP_PACKAGES = ["dramatiq[redis]", "celery[redis]", "rq"]
Producer = Callable[[range], None]  # submits one event per id

DRAMATIQ_SOURCE = """\
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench_record import record

dramatiq.set_broker(RedisBroker(url=os.environ["BENCH_REDIS_URL"]))


@dramatiq.actor(max_retries=0)
def handle(event_id):
    record(event_id)
"""

CELERY_SOURCE = """\
import os

from celery import Celery

from bench_record import record

app = Celery("bench_celery_tasks", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(ignore_result=True)
def handle(event_id):
    record(event_id)
"""


class Redis:
    """A redis-server on a free loopback port, stopped by its pid."""

    def __init__(self, work_dir: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise BenchError("redis-server not found (apt-get install -y redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [executable, "--bind", "127.0.0.1", "--port", str(self.port)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(work_dir)]
        self.process = ManagedProcess(
            "redis-server", argv, cwd=work_dir, env=base_env(), log_path=work_dir / "redis.log"
        )
        self.command = self.process.command
        self.version = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()

    def client(self) -> Any:
        """A redis-py client of this server."""
        import redis

        return redis.Redis.from_url(self.url)

    def wait_ready(self) -> None:
        """Until redis-server answers PING, for at most START_TIMEOUT_S."""
        from redis.exceptions import RedisError

        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                self.process.check_alive()
                try:
                    client.ping()
                    return
                except (RedisError, OSError) as error:
                    if time.monotonic() > deadline:
                        raise BenchError(f"redis-server did not answer: {error}") from None
                time.sleep(0.05)
        finally:
            client.close()

    def flush(self) -> None:
        """Empty every database, between systems."""
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()


def queue_env(redis_url: str, module_dir: Path) -> dict[str, str]:
    """A worker's environment: unbuffered, the broker URL, the task module importable."""
    env = base_env()
    env["BENCH_REDIS_URL"] = redis_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(module_dir), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def importable(directory: Path, redis_url: str) -> Iterator[None]:
    """Import the task modules of ``directory`` in this process (the producer), then forget
    them, so the next system gets its own ``bench_record``."""
    sys.path.insert(0, str(directory))
    os.environ["BENCH_REDIS_URL"] = redis_url
    try:
        yield
    finally:
        sys.path.remove(str(directory))
        os.environ.pop("BENCH_REDIS_URL", None)
        for module in [m for m in sys.modules if m.startswith("bench_")]:
            del sys.modules[module]


@dataclass
class TaskQueue:
    """How to run one task-queue baseline: its workers, and its producer in this process."""

    name: str
    label: str
    workers: str
    packages: tuple[str, ...]
    tasks_source: str | None  # bench_<name>_tasks.py, if the queue needs a module of its own
    worker_argv: Callable[[Path, str], list[str]]  # (module dir, Redis URL) → command
    # In the module dir's import context: (produce, close) for this process's producer.
    producer: Callable[[Redis], tuple[Producer, Callable[[], None]]]
    producer_call: str


def _dramatiq_producer(redis: Redis) -> tuple[Producer, Callable[[], None]]:
    tasks: Any = importlib.import_module("bench_dramatiq_tasks")

    def produce(ids: range) -> None:
        send = tasks.handle.send
        for event_id in ids:
            send(event_id)

    return produce, tasks.dramatiq.get_broker().close


def _celery_producer(redis: Redis) -> tuple[Producer, Callable[[], None]]:
    tasks: Any = importlib.import_module("bench_celery_tasks")

    def produce(ids: range) -> None:
        delay = tasks.handle.delay
        for event_id in ids:
            delay(event_id)

    return produce, tasks.app.close


def _rq_producer(redis: Redis) -> tuple[Producer, Callable[[], None]]:
    import rq

    record = importlib.import_module("bench_record").record
    connection = redis.client()
    queue = rq.Queue(connection=connection)

    def produce(ids: range) -> None:
        for event_id in ids:
            queue.enqueue(record, event_id)

    return produce, connection.close


TASK_QUEUES = {
    "dramatiq": TaskQueue(
        "dramatiq",
        "Dramatiq + Redis",
        f"{WORKER_PROCESSES} processes x {DRAMATIQ_THREADS} threads (the target's configuration)",
        ("dramatiq", "redis"),
        DRAMATIQ_SOURCE,
        lambda path, url: [
            *(sys.executable, "-m", "dramatiq", "bench_dramatiq_tasks", "--path", str(path)),
            *("--processes", str(WORKER_PROCESSES), "--threads", str(DRAMATIQ_THREADS)),
        ],
        _dramatiq_producer,
        "handle.send(N)",
    ),
    "celery": TaskQueue(
        "celery",
        "Celery + Redis",
        f"prefork, concurrency {WORKER_PROCESSES}, prefetch multiplier 4 (its defaults here)",
        ("celery", "kombu", "redis"),
        CELERY_SOURCE,
        lambda path, url: [
            *(sys.executable, "-m", "celery", "-A", "bench_celery_tasks", "worker"),
            *("--pool", "prefork", "--concurrency", str(WORKER_PROCESSES), "--loglevel", "WARNING"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        _celery_producer,
        "handle.delay(N)",
    ),
    "rq": TaskQueue(
        "rq",
        "RQ + Redis",
        f"worker-pool of {WORKER_PROCESSES}, RQ's default Worker (a forked horse per job)",
        ("rq", "redis"),
        None,
        lambda path, url: [
            *(
                sys.executable,
                "-m",
                "rq.cli",
                "worker-pool",
                "--num-workers",
                str(WORKER_PROCESSES),
            ),
            *("--url", url, "--path", str(path), "--logging-level", "WARNING"),
        ],
        _rq_producer,
        "Queue.enqueue(record, N)",
    ),
}


def versions(*packages: str) -> dict[str, str]:
    found = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


# --- installing what the baselines need ------------------------------------------------------


def ensure_redis_server(install: bool, commands: list[str]) -> None:
    """``apt-get install -y redis-server`` if it is missing and we may (as root)."""
    if shutil.which("redis-server") or not install:
        return
    if os.geteuid() != 0:
        raise BenchError("redis-server missing; as root: apt-get install -y redis-server")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "redis-server"]):
        print(f"  {shlex.join(argv)}", flush=True)
        commands.append(shlex.join(argv))
        subprocess.run(argv, env=env, capture_output=True, timeout=600, check=False)
    if not shutil.which("redis-server"):
        raise BenchError("apt-get install -y redis-server did not install redis-server")


def ensure_python_packages(install: bool, commands: list[str]) -> None:
    """``pip install`` the baselines into this interpreter if any cannot be imported."""
    missing = [name for name in ("dramatiq", "celery", "rq", "redis") if not _importable(name)]
    if not missing or not install:
        return
    argv = [sys.executable, "-m", "pip", "install", "--quiet", *PIP_PACKAGES]
    print(f"  installing {', '.join(missing)}: {shlex.join(argv)}", flush=True)
    commands.append(shlex.join(argv))
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if completed.returncode != 0:
        print(f"  pip install failed: {completed.stderr.strip()[-500:]}", flush=True)
    importlib.invalidate_caches()


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
