"""``dam-dedupe apply`` and ``undo`` on a local folder, killed with SIGKILL at step boundaries, then run again.

The process really dies, killed from outside as the kernel or an operator would kill it, so
nothing is flushed, rolled back or cleaned up. The test steps it (SIGCONT, SIGSTOP) once its
run has started and, while it is stopped, reads the catalog's journal over a read-only
connection and the folder's files; it kills the process at the N-th boundary seen: a step's
*before* committed, the step's first change in the folder, its *after* committed (three per
step, six in the plan). On a busy machine the process may get a little further between two
stops (a case names where it landed when it fails); every landing must be safe.

Each case then runs the same command again and checks that every step is recorded done
exactly once and every duplicate is held exactly once with its bytes; then ``undo`` is killed
at the same boundary and run again, and the tree must be exactly as before (paths, bytes,
links), with no empty folders and no quarantine area left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.governance_library import tree_stamp, tree_state
from tests.servers.fault_kill import (
    dam,
    each_step_once,
    empty_folders,
    finish,
    journal_rows,
    kill_at_boundary,
    landed,
    newest_run,
    prepared,
    run_started,
)
from tests.servers.fault_stores import QUARANTINE, held_copies, lost_objects, scan_and_approve, small_library


class LocalFolder:
    """The small library in a local folder, for :func:`scan_and_approve`."""

    prefix = ""

    def __init__(self, root: Path) -> None:
        self.root = root

    def fresh(self) -> None:
        for key, data in small_library(copies=2).items():
            (self.root / key).parent.mkdir(parents=True, exist_ok=True)
            (self.root / key).write_bytes(data)

    def root_uri(self) -> str:
        return self.root.as_uri()

    def authoritative_uri(self) -> str:
        return (self.root / "品牌").as_uri()

    def state(self) -> dict[str, str]:
        return tree_state(self.root)

    def stamp(self) -> dict[str, object]:
        return tree_stamp(self.root)


def boundary(
    rows: Callable[[], list[tuple[str, int, str, str]]], tree: Callable[[], dict[str, object]], kind: str, n: int
) -> Callable[[], bool]:
    """Whether the ``n``-th boundary (from 1) of the run of ``kind`` is reached; three per step, in order:
    its *before* committed, its first change in the tree, its *after* committed."""
    step, which = divmod(n - 1, 3)
    seen: dict[str, dict[str, object]] = {}

    def reached() -> bool:
        journal = rows()
        if not journal:
            return False
        done = sum(1 for r in journal if r[0] == kind)
        if which != 1 or done != 2 * step + 1:
            return done >= 2 * step + 1 + (which > 0)
        if "at_before" not in seen:  # the first stop after its before: the tree as the step found it
            seen["at_before"] = tree()
            return False
        return tree() != seen["at_before"]

    return reached


PLANS = {"quarantine": {}, "redirect": {"pointer": "symlink"}}


@pytest.mark.parametrize("n", range(1, 7))  # every boundary of the two-step plan
@pytest.mark.parametrize("action", ["quarantine", "redirect"])
def test_local_apply_and_undo_killed_at_a_step_boundary_finish_when_run_again(
    tmp_path: Path, action: str, n: int, catalog_location: str
) -> None:
    # On PostgreSQL the killed process's connection drops mid-transaction: the server rolls it back and
    # releases its locks, as SQLite's journal does for a killed writer.
    catalog = catalog_location
    folder = LocalFolder(tmp_path / "lib")
    folder.fresh()
    plan_file, steps = prepared(scan_and_approve(folder, tmp_path, action, PLANS[action], catalog), tmp_path)
    assert steps == 2  # six boundaries
    start = folder.state()
    rows = journal_rows(catalog)
    duplicates = sorted(k for k in start if not k.startswith(("品牌/", "unique")))

    proc = dam(tmp_path, "apply", str(plan_file), "--out-dir", str(tmp_path), catalog=catalog)
    started = run_started(catalog, "apply")
    assert kill_at_boundary(proc, started, boundary(rows, folder.stamp, "apply", n)), f"ended first: {finish(proc)}"
    where = landed(rows(), "apply")
    assert not lost_objects(start, folder.state(), ""), where
    out = "killed after the run finished"  # a busy machine may let it run to the end before the kill
    if newest_run(tmp_path, "apply", catalog)[1] == "running":
        code, out = finish(dam(tmp_path, "apply", str(plan_file), "--out-dir", str(tmp_path), catalog=catalog))
        assert code == 0 and "continuing interrupted run" in out, f"{where}: {out}"
    each_step_once(rows(), "apply", steps, "applied", f"{where}: {out}")
    after = folder.state()
    assert not lost_objects(start, after, "") and held_copies(after, "", start) == duplicates, f"{where}: {after}"

    run_id = newest_run(tmp_path, "apply", catalog)[0]
    proc = dam(tmp_path, "undo", run_id, catalog=catalog)
    started = run_started(catalog, "undo")
    assert kill_at_boundary(proc, started, boundary(rows, folder.stamp, "undo", n)), f"ended first: {finish(proc)}"
    where = landed(rows(), "undo")
    assert not lost_objects(start, folder.state(), ""), where
    out = "killed after the run finished"
    if newest_run(tmp_path, "undo", catalog)[1] == "running":
        code, out = finish(dam(tmp_path, "undo", run_id, catalog=catalog))
        assert code == 0 and "continuing interrupted undo" in out, f"{where}: {out}"
    each_step_once(rows(), "undo", steps, "undone", f"{where}: {out}")
    assert folder.state() == start, where
    assert not empty_folders(folder.root), f"{where}; left behind: {empty_folders(folder.root)}"
    assert not (folder.root / QUARANTINE).exists(), where
