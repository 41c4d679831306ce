"""Running the CLI in its own process and killing it with SIGKILL from outside, for the kill tests.

The process under test is started as a user starts it (``python -m dam_dedupe``) and killed
from the test: when a :class:`~tests.servers.fault_proxy.FaultProxy` holds one of its writes
(:func:`kill_when`), or when it is stepped (SIGCONT, SIGSTOP) and a boundary is seen in the
catalog or the tree while it is stopped (:func:`kill_at_boundary`). The catalog is read over
read-only connections only.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from dam_dedupe.catalog import is_postgresql, open_catalog
from dam_dedupe.governance import write_plan
from tests.servers.fault_stores import Scanned

Poll = Callable[[], bool]


def catalog_of(tmp_path: Path, catalog: str | None) -> str:
    """The catalog a test names (a SQLite file or a PostgreSQL URL), else ``catalog.sqlite`` in its folder."""
    return catalog or str(tmp_path / "catalog.sqlite")


def dam(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, catalog: str | None = None
) -> subprocess.Popen[str]:
    """Start ``dam-dedupe --catalog CATALOG ARGS`` as a user would, in its own process.

    It gets a session of its own: a process the test has stopped would otherwise be sent SIGHUP
    when the shell that started the tests exits first (an orphaned process group with a stopped member).
    """
    return subprocess.Popen(
        [sys.executable, "-m", "dam_dedupe", "--catalog", catalog_of(tmp_path, catalog), *args],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for a process; its exit code and output."""
    out, _err = proc.communicate(timeout=120)
    return proc.returncode, out


def kill_when(proc: subprocess.Popen[str], reached: Poll, timeout: float = 60) -> bool:
    """SIGKILL ``proc`` as soon as ``reached()`` is true; ``False`` if it ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if reached():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.001)
    return False


def stopped(pid: int) -> bool:
    """Whether the process is stopped (or gone), from ``/proc``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z", "X")
    except OSError:
        return True


def kill_at_boundary(proc: subprocess.Popen[str], started: Callable[[], bool], reached: Callable[[], bool]) -> bool:
    """Let ``proc`` run until ``started()``, then step it (SIGCONT, SIGSTOP) and SIGKILL it at the first stop
    where ``reached()`` is true. ``False`` if it ended first."""
    while proc.poll() is None and not started():
        time.sleep(0.0005)
    while proc.poll() is None:
        os.kill(proc.pid, signal.SIGSTOP)
        while not stopped(proc.pid):
            time.sleep(0.00005)
        if reached():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        os.kill(proc.pid, signal.SIGCONT)
    return False


def run_started(catalog: str, kind: str) -> Callable[[], bool]:
    """Whether a run of ``kind`` is recorded in the catalog (a SQLite file or a PostgreSQL URL)."""
    read = _reader(catalog, "SELECT COUNT(*) FROM action_runs WHERE kind = '" + kind + "'")

    def started() -> bool:
        rows = read()
        return bool(rows and rows[0][0])

    return started


JOURNAL = "SELECT r.kind, j.step, j.phase, j.outcome FROM journal j JOIN action_runs r ON r.id = j.run_id ORDER BY j.id"


def journal_rows(catalog: str) -> Callable[[], list[tuple[str, int, str, str]]]:
    """A reader of the whole journal (run kind, step, phase, outcome); an empty list while the file is busy."""
    return _reader(catalog, JOURNAL)


def _reader(catalog: str, query: str) -> Callable[[], list[Any]]:
    """A reader of ``query``'s rows over one read-only connection (closed with the reader); an empty
    list while a SQLite file is busy.

    Each read is a transaction of its own, so it sees every commit made before it, and a stepped
    process is stopped for 10 microseconds a SQLite read (opening a connection and parsing the
    schema again took 0.75 ms), a few hundred for a PostgreSQL one.
    """
    if is_postgresql(catalog):
        server = psycopg.connect(catalog, autocommit=True)
        server.read_only = True

        def read_server() -> list[Any]:
            return server.execute(query).fetchall()

        weakref.finalize(read_server, server.close)
        return read_server
    connection = sqlite3.connect(f"{Path(catalog).as_uri()}?mode=ro", uri=True, timeout=0)

    def read() -> list[Any]:
        try:
            return connection.execute(query).fetchall()
        except sqlite3.OperationalError:  # missing yet, or stopped half way through a commit: ask again
            return []

    weakref.finalize(read, connection.close)
    return read


def each_step_once(rows: list[tuple[str, int, str, str]], kind: str, steps: int, outcome: str, why: str) -> None:
    """Every step has exactly one *after* in runs of ``kind``, and it says ``outcome``; ``why`` explains a failure."""
    afters = Counter(step for k, step, phase, _o in rows if k == kind and phase == "after")
    assert sorted(afters) == list(range(steps)) and set(afters.values()) == {1}, f"{afters}: {why}"
    assert {o for k, _s, phase, o in rows if k == kind and phase == "after"} == {outcome}, why


def newest_run(tmp_path: Path, kind: str, catalog: str | None = None) -> tuple[str, str]:
    """The id and status of the newest run of ``kind``."""
    opened = open_catalog(catalog_of(tmp_path, catalog))
    try:
        run = [r for r in opened.action_runs() if r.kind == kind][-1]
        return run.id, run.status
    finally:
        opened.close()


def landed(rows: list[tuple[str, int, str, str]], kind: str) -> str:
    """Where a killed run of ``kind`` stopped, from its journal: for the failure message."""
    mine = [f"{phase} {step}" for k, step, phase, _o in rows if k == kind]
    return f"killed after: {', '.join(mine) or 'nothing journaled'}"


def empty_folders(root: Path) -> list[str]:
    """Folders under ``root`` with nothing in them."""
    return [str(Path(d).relative_to(root)) for d, dirs, files in os.walk(root) if not dirs and not files]


def prepared(scanned: Scanned, tmp_path: Path) -> tuple[Path, int]:
    """Write the approved plan to a file for the CLI and close the catalog; the plan file and its steps."""
    write_plan(scanned.plan, tmp_path / "plan.json")
    (tmp_path / "dam-dedupe.toml").write_text("", encoding="utf-8")
    scanned.catalog.close()
    return tmp_path / "plan.json", len(scanned.plan.steps)
