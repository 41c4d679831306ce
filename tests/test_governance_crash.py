"""A run killed in the middle is finished by running the same command again, with no step done twice.

The process really dies: ``DAM_DEDUPE_TEST_CRASH_AFTER=N`` makes ``python -m dam_dedupe apply``
call ``os._exit`` at its N-th checkpoint (three per step: after the step's *before* is
committed, after the store was changed, after its *after* is committed), so nothing is
flushed, rolled back or cleaned up.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from dam_dedupe.catalog import open_catalog
from dam_dedupe.governance import Selection, approve, make_plan, write_plan
from dam_dedupe.governance.runner import CRASH_ENV
from tests.conftest import run_cli
from tests.governance_library import QUARANTINE, make_library, tree_state


def prepare(tmp_path: Path, action: str, params: dict[str, str]) -> tuple[Path, dict[str, str], int]:
    """A scanned library and an approved plan file; returns the plan file, the tree before and the step count."""
    lib = make_library(tmp_path)
    (tmp_path / "dam-dedupe.toml").write_text("", encoding="utf-8")
    plan = make_plan(lib.catalog, lib.host, lib.config, action, params, Selection(), by="ana")
    approve(lib.catalog, lib.config, plan, by="lee", role="legal")
    write_plan(plan, tmp_path / "plan.json")
    lib.catalog.close()
    return tmp_path / "plan.json", tree_state(lib.root), len(plan.steps)


def dam(tmp_path: Path, *args: str, crash_after: int = 0) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_after:
        env[CRASH_ENV] = str(crash_after)
    result = run_cli("--catalog", str(tmp_path / "catalog.sqlite"), *args, cwd=tmp_path, check=False, env=env)
    return result.returncode, result.stdout + result.stderr


def journal_of(tmp_path: Path, kind: str) -> tuple[str, list[tuple[int, str, str]], int]:
    """The newest run of ``kind``: its id, its journal (step, phase, outcome) and its number of audited steps."""
    catalog = open_catalog(tmp_path / "catalog.sqlite")
    try:
        run = [r for r in catalog.action_runs() if r.kind == kind][-1]
        entries = [(e.step, e.phase, e.outcome) for e in catalog.journal(run.id)]
        audited = sum(1 for a in catalog.audit_entries() if a.run_id == run.id and a.event == "step")
        return run.id, entries, audited
    finally:
        catalog.close()


def assert_each_step_done_once(entries: list[tuple[int, str, str]], steps: int, outcome: str) -> None:
    afters = Counter(step for step, phase, _o in entries if phase == "after")
    assert sorted(afters) == list(range(steps)) and set(afters.values()) == {1}
    assert {o for _s, phase, o in entries if phase == "after"} == {outcome}


@pytest.mark.parametrize(
    ("action", "params", "crash_after"),
    [
        ("quarantine", {}, 4),  # step 1 journaled as begun, nothing done yet
        ("quarantine", {}, 5),  # step 1 done in the store, its "after" never written
        ("quarantine", {}, 6),  # step 1 complete
        ("redirect", {"pointer": "symlink"}, 5),  # copy verified, original removed, link made, "after" lost
        ("redirect", {"pointer": "stub"}, 8),
    ],
)
def test_killed_apply_is_finished_by_running_apply_again(tmp_path: Path, action: str, params: dict[str, str],
                                                         crash_after: int) -> None:  # fmt: skip
    plan_file, start, steps = prepare(tmp_path, action, params)
    root = tmp_path / "lib"

    code, out = dam(tmp_path, "apply", str(plan_file), "--out-dir", str(tmp_path), crash_after=crash_after)
    assert code == 70, out
    _run, entries, _audited = journal_of(tmp_path, "apply")
    in_doubt = {s for s, p, _o in entries if p == "before"} - {s for s, p, _o in entries if p == "after"}
    assert bool(in_doubt) == (crash_after % 3 != 0)

    code, out = dam(tmp_path, "apply", str(plan_file), "--out-dir", str(tmp_path))
    assert code == 0, out
    assert "continuing interrupted run" in out

    run_id, entries, audited = journal_of(tmp_path, "apply")
    assert_each_step_done_once(entries, steps, "applied")
    assert audited == steps
    after = tree_state(root)
    moved = [p for p in start if p not in after or after[p] != start[p]]
    held = Counter(p.split("/", 2)[2] for p in after if p.startswith(QUARANTINE + "/c-"))
    assert set(held) == set(moved) and set(held.values()) == {1}  # every duplicate held exactly once
    for path in moved:
        assert after[held_path(after, path)] == start[path]

    code, out = dam(tmp_path, "undo", run_id, crash_after=5)
    assert code == 70, out
    code, out = dam(tmp_path, "undo", run_id)
    assert code == 0 and "continuing interrupted undo" in out, out
    _undo, entries, _audited = journal_of(tmp_path, "undo")
    assert_each_step_done_once(entries, steps, "undone")
    assert tree_state(root) == start


def held_path(tree: dict[str, str], original: str) -> str:
    return next(p for p in tree if p.startswith(QUARANTINE + "/c-") and p.split("/", 2)[2] == original)
