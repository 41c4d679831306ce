"""``dam-dedupe apply`` and ``undo`` on S3 killed with SIGKILL at each write, then run again: nothing is lost.

The fault proxy in front of moto holds the N-th write, before moto sees it or after moto
answered but before the answer is relayed, and the test kills the process (SIGKILL, from
outside) while it waits, so the kill lands exactly at that write: a step begun but its copy
not made, a copy made but its answer never read, an original removed but the removal never
journaled, every step done but the manifest's answer lost. The local-folder counterpart, at
step boundaries, is ``tests/test_governance_crash.py``.

Each case then runs the same command again and checks that every step is recorded done
exactly once and the duplicate is held exactly once with its bytes; then ``undo`` is killed
at the same write and run again, and the bucket must hold the same keys with the same bytes
as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.servers.fault_kill import dam, each_step_once, finish, journal_rows, kill_when, newest_run, prepared
from tests.servers.fault_proxy import S3_ERROR, FaultProxy, running_proxy
from tests.servers.fault_stores import S3Store, held_copies, lost_objects, scan_and_approve
from tests.servers.s3 import aws_variables, moto_endpoint  # noqa: F401


@pytest.fixture(scope="module")
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:  # noqa: F811
    """The fault proxy in front of moto, for the CLI processes' ``AWS_ENDPOINT_URL``."""
    with running_proxy(moto_endpoint, error=S3_ERROR) as proxy:
        yield proxy


@pytest.fixture
def s3_store(moto_endpoint: str, proxy: FaultProxy, tmp_path: Path) -> Iterator[tuple[S3Store, dict[str, str]]]:  # noqa: F811
    """A fresh bucket with the small library; the environment of a CLI process pointed at the proxy."""
    admin = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )
    store = S3Store(admin)
    store.fresh()
    variables = aws_variables(proxy.endpoint, str(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | variables
    with pytest.MonkeyPatch.context() as patch:  # the scan in this process goes through the proxy too
        for name, value in variables.items():
            patch.setenv(name, value)
        yield store, env


def kill_at_write(
    tmp_path: Path, proxy: FaultProxy, env: dict[str, str], index: int, after_answer: bool, *args: str
) -> str:
    """Run the CLI with the proxy holding its ``index``-th write; SIGKILL it there. Returns the held write."""
    proxy.reset()
    hold = proxy.hold(index, after_answer=after_answer)
    proc = dam(tmp_path, *args, env=env)
    try:
        assert kill_when(proc, hold.reached.is_set), f"the run ended before write {index}: {finish(proc)}"
    finally:
        hold.release()
    return str(hold.write or f"write {index} (held before moto saw it)")


@pytest.mark.parametrize(
    ("index", "after_answer"),
    [(1, False), (1, True), (2, True), (3, True)],
    ids=["copy-before-the-server", "copy-before-the-answer", "delete-before-the-answer", "manifest-before-the-answer"],
)
def test_s3_apply_and_undo_killed_at_a_write_finish_when_run_again(
    s3_store: tuple[S3Store, dict[str, str]], proxy: FaultProxy, tmp_path: Path, index: int, after_answer: bool
) -> None:
    store, env = s3_store
    plan_file, steps = prepared(scan_and_approve(store, tmp_path, "quarantine", {}), tmp_path)
    start = store.state()
    rows = journal_rows(str(tmp_path / "catalog.sqlite"))

    held = kill_at_write(tmp_path, proxy, env, index, after_answer, "apply", str(plan_file), "--out-dir", str(tmp_path))
    assert not lost_objects(start, store.state(), store.prefix), f"apply killed at {held}"
    proxy.reset()
    code, out = finish(dam(tmp_path, "apply", str(plan_file), "--out-dir", str(tmp_path), env=env))
    assert code == 0 and "continuing interrupted run" in out, f"apply killed at {held}: {out}"
    each_step_once(rows(), "apply", steps, "applied", f"{held}: {out}")
    after = store.state()
    assert not lost_objects(start, after, store.prefix), f"apply killed at {held}"
    assert held_copies(after, store.prefix, start) == ["Marketing 2026/IMG_1.JPG"]

    run_id = newest_run(tmp_path, "apply")[0]
    held = kill_at_write(tmp_path, proxy, env, index, after_answer, "undo", run_id)
    assert not lost_objects(start, store.state(), store.prefix), f"undo killed at {held}"
    proxy.reset()
    code, out = finish(dam(tmp_path, "undo", run_id, env=env))
    assert code == 0 and "continuing interrupted undo" in out, f"undo killed at {held}: {out}"
    each_step_once(rows(), "undo", steps, "undone", f"{held}: {out}")
    assert store.state() == start, f"undo killed at {held}"


def test_s3_a_clean_round_trip_makes_three_writes_each_way(
    s3_store: tuple[S3Store, dict[str, str]], proxy: FaultProxy, tmp_path: Path
) -> None:
    """The cases above kill at every write: a copy, a delete and the manifest, each way."""
    store, env = s3_store
    plan_file, _steps = prepared(scan_and_approve(store, tmp_path, "quarantine", {}), tmp_path)
    proxy.reset()
    code, out = finish(dam(tmp_path, "apply", str(plan_file), "--out-dir", str(tmp_path), env=env))
    assert code == 0 and proxy.write_count() == 3, (out, [str(w) for w in proxy.writes])
    proxy.reset()
    code, out = finish(dam(tmp_path, "undo", newest_run(tmp_path, "apply")[0], env=env))
    assert code == 0 and proxy.write_count() == 3, (out, [str(w) for w in proxy.writes])
