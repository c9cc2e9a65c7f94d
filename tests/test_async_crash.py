"""Async events survive a crash: ``lambdalet serve`` is SIGKILLed mid-stream and restarted.

Every event answered 202 must run at least once after the restart, with the request id its
202 carried; only events that were claimed ('running') when the server died may run twice,
and no more of them than the dispatcher may run at once (``async_workers``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from test_serve import WAIT_S, free_port, serving, wait_until_healthy

from lambdalet.config import Settings

EVENTS = 3000
SENDER_THREADS = 8
# The kill comes while events are still being sent and run: after this many 202s.
KILL_AFTER_ACCEPTED = 2 * EVENTS // 3
# What serve runs with: the defaults, except the process backend, whose sandboxes can append
# to the test's own file (and whose pids this test can find and kill).
SETTINGS = {"LAMBDALET_SANDBOX_BACKEND": "process"}
ASYNC_WORKERS: int = Settings.model_fields["async_workers"].default
FUNCTION_NAME = "appender"
RUNTIME_ID = f"python{sys.version_info.major}.{sys.version_info.minor}"

# One line per run, written with a single write() on an O_APPEND descriptor so lines from
# concurrent sandboxes never interleave. The sleeps on both sides of the write keep runs in
# flight long enough for the kill to catch some before and some after their write.
HANDLER = """\
import os
import time

OUT = {out!r}


def handler(event, context):
    time.sleep(0.1)
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{{event['id']}} {{context.aws_request_id}}\\n".encode())
    finally:
        os.close(fd)
    time.sleep(0.1)
"""


class Senders:
    """Threads that send Event invokes with unique ids until done or the server goes away."""

    def __init__(self, url: str, count: int, threads: int) -> None:
        self.invoke_url = f"{url}/2015-03-31/functions/{FUNCTION_NAME}/invocations"
        self.accepted: dict[int, str] = {}  # id → the request id its 202 carried
        self.refused: list[tuple[int, int, str]] = []  # answered, but not with a 202
        self.cut_off = 0  # sends the kill interrupted: their fate is unknown, and either is fine
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=(range(k, count, threads),), daemon=True)
            for k in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def accepted_count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=WAIT_S)
        assert not self.running(), "a sender thread did not stop"

    def _send(self, ids: range) -> None:
        with httpx.Client(timeout=30) as client:
            for event_id in ids:
                body = json.dumps({"id": event_id})
                try:
                    response = client.post(
                        self.invoke_url,
                        content=body,
                        headers={
                            "X-Amz-Invocation-Type": "Event",
                            "Content-Type": "application/json",
                        },
                    )
                except httpx.TransportError:
                    with self._lock:
                        self.cut_off += 1
                    return  # the server was killed
                with self._lock:
                    if response.status_code == 202:
                        self.accepted[event_id] = response.headers["x-amzn-RequestId"]
                    else:
                        self.refused.append((event_id, response.status_code, response.text))


def read_runs(path: Path) -> list[tuple[int, str]]:
    """(event id, request id) of every run the handler recorded, in order."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        event_id, request_id = line.split(" ")
        runs.append((int(event_id), request_id))
    return runs


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def queued_events(db_path: Path) -> dict[str, int]:
    """Rows of the async queue by state (``pending``, ``running``), read without writing."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT state, COUNT(*) FROM async_events GROUP BY state").fetchall()
    finally:
        db.close()
    return {str(state): int(count) for state, count in rows}


def child_processes(parent_pid: int) -> dict[int, str]:
    """pid → start time of the direct children of ``parent_pid`` (the sandboxes), from /proc."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent_pid:
                found[int(entry)] = fields[19]
    return found


def kill_sandboxes(sandboxes: dict[int, str]) -> None:
    """SIGKILL, by pid, the killed server's sandboxes; wait until none is left running."""

    def alive() -> list[int]:
        found = []
        for pid, started in sandboxes.items():
            state, start = _state_and_start(pid)
            if start == started and state != "Z":  # a zombie of whoever adopted it is gone
                found.append(pid)
        return found

    for pid in alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + WAIT_S
    while alive():
        if time.monotonic() > deadline:
            pytest.fail(f"the killed server's sandboxes did not exit: {alive()}")
        time.sleep(0.02)


def _state_and_start(pid: int) -> tuple[str | None, str | None]:
    """A process's state letter and start time from /proc, (None, None) if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None, None


def test_accepted_events_survive_sigkill(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    db_path = data_dir / "lambdalet.db"
    log_path = tmp_path / "serve.log"
    out_path = tmp_path / "runs.txt"
    function_dir = tmp_path / FUNCTION_NAME
    function_dir.mkdir()
    (function_dir / "app.py").write_text(HANDLER.format(out=str(out_path)))
    manifest = {"name": FUNCTION_NAME, "handler": "app.handler", "runtime": RUNTIME_ID}
    (function_dir / "lambdalet.json").write_text(json.dumps(manifest))
    extra = ("--deploy", str(function_dir))
    began = time.monotonic()

    with serving(port, data_dir, log_path, *extra, settings=SETTINGS) as process:
        wait_until_healthy(process, url, log_path)
        _wait_for_function(url, log_path)
        senders = Senders(url, EVENTS, SENDER_THREADS)
        senders.start()
        deadline = time.monotonic() + WAIT_S
        while senders.accepted_count() < KILL_AFTER_ACCEPTED or count_lines(out_path) == 0:
            if time.monotonic() > deadline or process.poll() is not None or not senders.running():
                pytest.fail(
                    f"{senders.accepted_count()} accepted, {count_lines(out_path)} run:\n"
                    + log_path.read_text()[-3000:]
                )
            time.sleep(0.01)
        # The whole node dies at once, as in a machine crash or a container kill: the server,
        # then its sandboxes (in sessions of their own, they would otherwise outlive it and
        # finish the invocation in hand), so claimed events that had not run yet never do.
        sandboxes = child_processes(process.pid)
        os.kill(process.pid, signal.SIGKILL)
        kill_sandboxes(sandboxes)
        process.wait(timeout=WAIT_S)
        killed_at = time.monotonic()
        senders.join()

    runs_before = read_runs(out_path)
    accepted = dict(senders.accepted)
    queue_at_kill = queued_events(db_path)
    assert not senders.refused, senders.refused[:5]
    # The kill must land mid-stream, or the test proves nothing: runs were still due.
    assert len(runs_before) < len(accepted), "every event had run before the kill"
    assert queue_at_kill.get("pending", 0) + queue_at_kill.get("running", 0) > 0

    with serving(port, data_dir, log_path, settings=SETTINGS) as process:
        wait_until_healthy(process, url, log_path)
        deadline = time.monotonic() + WAIT_S
        while True:
            seen = {event_id for event_id, _ in read_runs(out_path)}
            if accepted.keys() <= seen and not queued_events(db_path):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                missing = sorted(accepted.keys() - seen)
                pytest.fail(
                    f"{len(missing)} accepted events never ran (first: {missing[:10]}),"
                    f" queue {queued_events(db_path)}:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.05)
        recovered_s = time.monotonic() - killed_at
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=WAIT_S) == 0, log_path.read_text()[-3000:]

    runs = read_runs(out_path)
    per_event = Counter(event_id for event_id, _ in runs)
    duplicates = sorted(event_id for event_id, times in per_event.items() if times > 1)
    lost = sorted(accepted.keys() - per_event.keys())
    wrong_request_id = [
        (event_id, request_id)
        for event_id, request_id in runs
        if event_id in accepted and accepted[event_id] != request_id
    ]
    print(
        f"\nsent {EVENTS} with {SENDER_THREADS} threads: {len(accepted)} accepted (202),"
        f" {senders.cut_off} cut off by the kill; at the kill {len(runs_before)} runs done,"
        f" queue {queue_at_kill}; after restart {len(runs)} runs of {len(per_event)} events,"
        f" {len(lost)} lost, {len(duplicates)} ran twice (bound {ASYNC_WORKERS});"
        f" recovered in {recovered_s:.1f} s, whole test {time.monotonic() - began:.1f} s"
    )
    assert not lost, f"{len(lost)} accepted events never ran: {lost[:10]}"
    assert not wrong_request_id, wrong_request_id[:5]
    assert set(per_event) <= set(range(EVENTS))
    assert max(per_event.values()) <= 2, per_event.most_common(3)
    # Why duplicates are bounded: a run is only repeated if its row was still 'running' when the
    # server died (finished rows are deleted; pending rows never ran), and the dispatcher holds
    # at most async_workers rows 'running' at once: it claims one per free slot, and the claim
    # that reuses a freed slot deletes that slot's finished row in the same transaction, so a
    # finished row not yet deleted always stands for a slot no claim has taken.
    assert len(duplicates) <= queue_at_kill.get("running", 0) <= ASYNC_WORKERS


def _wait_for_function(url: str, log_path: Path) -> None:
    """Until GetFunction finds the function ``--deploy`` creates once the server listens."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/2015-03-31/functions/{FUNCTION_NAME}", timeout=10)
        if response.status_code == 200:
            return
        time.sleep(0.1)
    pytest.fail(f"{FUNCTION_NAME} was not deployed within {WAIT_S} s:\n{log_path.read_text()}")
