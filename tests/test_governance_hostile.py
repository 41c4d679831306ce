"""Nothing lost on local folders when the tree or the world changes under a plan.

Real conditions, made from outside the product: a canonical overwritten between plan and
apply, one folder reached through a bind mount under a second source URI, a canonical
that may not be linked to (``chattr +i``, the kind of lock a backup or retention tool sets).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

import pytest

from dam_dedupe.action import ActionStep, ExpectedAsset, StepSkipped
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.adapters.local import LocalAdapter
from dam_dedupe.catalog import open_catalog
from dam_dedupe.catalog.base import AssetState, CatalogAsset, StoredCluster
from dam_dedupe.config import parse_config
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from dam_dedupe.governance.apply import _check_state
from dam_dedupe.governance.plan import Plan
from dam_dedupe.governance.planner import _Planner
from dam_dedupe.host import Host
from dam_dedupe.plugins.quarantine import QuarantineAction, move_to_quarantine, restore_from_quarantine
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec
from dam_dedupe.scan import run_scan
from tests.governance_library import QUARANTINE, Library, build_library, make_library, tags_state, tree_state


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    library = make_library(tmp_path)
    yield library
    library.catalog.close()


def approved(lib: Library, action: str, params: dict[str, str] | None = None) -> Plan:
    plan = make_plan(lib.catalog, lib.host, lib.config, action, params, Selection(), by="ana")
    approve(lib.catalog, lib.config, plan, by="lee", role="legal")
    return plan


def every_bytes(root: Path) -> set[str]:
    """The SHA-256 of every regular file under ``root``, wherever it now sits (quarantine included)."""
    return {h for h in tree_state(root).values() if not h.startswith("link:")}


def test_a_canonical_overwritten_with_same_size_content_leaves_its_copies_alone(lib: Library, tmp_path: Path) -> None:
    plan = approved(lib, "quarantine")
    canonical = lib.root / "品牌" / "master_0.jpg"
    canonical.write_bytes(bytes(reversed(canonical.read_bytes())))  # same size; a local file has no store hash
    start = tree_state(lib.root)

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    in_cluster = [r for r in report.results if r.step.canonical.key.endswith("master_0.jpg")]
    assert len(in_cluster) == 2
    assert all(r.outcome == "skipped" and "now holds other content" in r.reason for r in in_cluster)
    after = tree_state(lib.root)
    assert all(after[unquote(r.step.target.key)] == start[unquote(r.step.target.key)] for r in in_cluster)
    assert report.count("applied") == len(plan.steps) - 2


@pytest.fixture(params=["bind mount", "symlinked scope"])
def second_name(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The library at ``lib`` and the same folder again at ``mirror``: mounted a second time (skipped where mounts
    are refused), or a symbolic link the second source's URI names."""
    root, mirror = tmp_path / "lib", tmp_path / "mirror"
    build_library(root)
    if request.param == "symlinked scope":
        mirror.symlink_to(root, target_is_directory=True)
        yield root, mirror
        return
    mirror.mkdir()
    mounted = (
        shutil.which("mount") is not None
        and not subprocess.run(["mount", "--bind", root, mirror], capture_output=True).returncode
    )
    if not mounted:
        pytest.skip("bind mounts need mount(8) and CAP_SYS_ADMIN")
    try:
        yield root, mirror
    finally:
        subprocess.run(["umount", mirror], check=True)


def test_one_folder_under_two_source_uris_never_loses_its_canonical(
    second_name: tuple[Path, Path], tmp_path: Path
) -> None:
    root, mirror = second_name
    config = parse_config(
        {
            "sources": {"lib": {"uri": str(root)}, "mirror": {"uri": str(mirror)}},
            "matching": {"preset": "exact"},
            "policy": {"authoritative": [(root / "品牌").as_uri()]},
        }
    )
    catalog, host = open_catalog(tmp_path / "catalog.sqlite"), Host()
    run_scan(list(config.sources.values()), catalog, host, config, workers=1)
    start, start_bytes = tree_state(root), every_bytes(root)
    plan = make_plan(catalog, host, config, "quarantine", {}, Selection(), by="ana")
    approve(catalog, config, plan, by="lee", role="legal")

    report = apply_plan(catalog, host, config, plan, by="ana", out_dir=tmp_path)

    after = tree_state(root)
    for canonical in {unquote(s.canonical.key) for s in plan.steps}:
        assert after.get(canonical) == start[canonical], (canonical, [r.reason for r in report.results])
    assert every_bytes(root) >= start_bytes  # every image's bytes still exist
    undone = undo_run(catalog, host, config, report.run_id, by="ana")
    assert not undone.count("failed"), [r.reason for r in undone.results]
    assert {k: v for k, v in tree_state(root).items() if not k.startswith(QUARANTINE)} == start
    catalog.close()


@pytest.fixture
def immutable(lib: Library) -> Iterator[Path]:
    """The canonical of the first cluster, locked with ``chattr +i`` (skipped where the file system refuses)."""
    path = lib.root / "品牌" / "master_1.jpg"
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", path], capture_output=True).returncode:
        pytest.skip("needs chattr and a file system with the immutable attribute")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", path], check=True)


def test_a_redirect_that_cannot_make_its_pointer_removes_nothing_and_undo_restores_all(
    lib: Library, immutable: Path, tmp_path: Path
) -> None:
    start, start_tags = tree_state(lib.root), tags_state(lib.root)
    plan = approved(lib, "redirect", {"pointer": "hardlink"})
    locked = [s for s in plan.steps if unquote(s.canonical.key) == "品牌/master_1.jpg"]

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    outcomes = {r.step.index: r for r in report.results}
    assert locked and all(outcomes[s.index].outcome == "failed" for s in locked)
    after = tree_state(lib.root)
    for step in locked:  # the pointer could not be made, so the copy was never removed
        assert after[unquote(step.target.key)] == start[unquote(step.target.key)]
    subprocess.run(["chattr", "-i", immutable], check=True)
    undone = undo_run(lib.catalog, lib.host, lib.config, report.run_id, by="ana")
    assert not undone.count("failed"), [r.reason for r in undone.results]
    assert tree_state(lib.root) == start
    assert tags_state(lib.root) == start_tags


# -- one object is never its own duplicate: records as an adapter with object ids gives them ------------


def _asset(asset_id: int, key: str, object_id: str | None, source: str = "file:///srv/a") -> CatalogAsset:
    record = AssetRecord(source, key, f"{source}/{key}", 10, object_id=object_id)
    return CatalogAsset(asset_id, 1, record, Fingerprint("ab" * 32, 10, 1, 1, "JPEG"), AssetState("present", "image"))


def test_the_planner_never_plans_the_canonicals_own_object_under_another_uri() -> None:
    assets = {
        1: _asset(1, "brand/a.jpg", "64769:42"),
        2: _asset(2, "brand/a.jpg", "64769:42", source="file:///mnt/a"),  # the same file through a bind mount
        3: _asset(3, "copies/a.jpg", "64769:43"),
    }
    stored = StoredCluster("c-1", 1, "authoritative", "exact", [(1, "exact", {}), (2, "exact", {}), (3, "exact", {})])
    planner = _Planner(QuarantineAction(QuarantineAction.check_params({})), Selection(), None, {})

    choice = planner.choose(stored, assets)

    assert choice is not None and [d.key for d in choice.duplicates] == ["copies/a.jpg"]
    reason = "the same object as its canonical file:///srv/a/brand/a.jpg, under another URI"
    assert planner.excluded == [{"cluster": "c-1", "uri": "file:///mnt/a/brand/a.jpg", "reason": reason}]


class _Listed(SourceAdapter):
    """A store whose ``stat`` answers from a fixed listing, as an adapter with object ids would."""

    scheme = "listed"

    def __init__(self, records: dict[str, AssetRecord]) -> None:
        super().__init__(SourceSpec("listed://x"))
        self.records = records

    def list_assets(self) -> Iterator[Any]:
        yield from self.records.values()

    def open(self, record: AssetRecord) -> BinaryIO:
        raise NotImplementedError

    def stat(self, key: str) -> AssetRecord | None:
        return self.records.get(key)


class _Pool:
    def __init__(self, adapter: SourceAdapter) -> None:
        self._adapter = adapter

    def adapter(self, source: str) -> SourceAdapter:
        return self._adapter

    def progress(self, step: ActionStep, part: str, detail: Any) -> None:
        """Nothing to journal outside a run."""


def test_apply_refuses_a_step_whose_store_now_says_its_copy_and_canonical_are_one_object() -> None:
    canonical = ExpectedAsset("listed://x", "a.jpg", "listed://x/a.jpg", "ab" * 32, 10)
    duplicate = dataclasses.replace(canonical, key="A.JPG", uri="listed://x/A.JPG")  # a case-insensitive share
    step = ActionStep(0, "quarantine", "quarantine", "c-1", "duplicate", duplicate, canonical, {})
    one = {k: AssetRecord("listed://x", k, f"listed://x/{k}", 10, object_id="share:7") for k in ("a.jpg", "A.JPG")}
    two = {k: dataclasses.replace(r, object_id=f"share:{n}") for n, (k, r) in enumerate(one.items())}

    _check_state(_Pool(_Listed(two)), step)  # two objects: the step may go on
    with pytest.raises(StepSkipped, match="same object as its canonical"):
        _check_state(_Pool(_Listed(one)), step)


def test_plans_written_before_object_ids_still_read() -> None:
    old = {"source": "file:///srv", "key": "a.jpg", "uri": "file:///srv/a.jpg", "sha256": "ab" * 32, "size": 3}
    assert ExpectedAsset.from_json(old).object_id is None


def test_a_redirect_whose_staged_pointer_key_is_occupied_removes_nothing(lib: Library, tmp_path: Path) -> None:
    plan = approved(lib, "redirect", {"pointer": "stub"})
    blocked = plan.steps[0]
    staged = lib.root / unquote(blocked.params["quarantine_key"] + ".dam-dedupe-pointer")
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"someone else's file\n")
    start = tree_state(lib.root)

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    result = next(r for r in report.results if r.step.index == blocked.index)
    assert result.outcome == "failed" and "occupied" in result.reason
    after = tree_state(lib.root)
    assert after[unquote(blocked.target.key)] == start[unquote(blocked.target.key)]  # never removed
    assert unquote(blocked.params["quarantine_key"]) not in after  # and never copied
    assert after[str(staged.relative_to(lib.root))] == start[str(staged.relative_to(lib.root))]
    undone = undo_run(lib.catalog, lib.host, lib.config, report.run_id, by="ana")
    assert not undone.count("failed"), [r.reason for r in undone.results]
    assert tree_state(lib.root) == start


@pytest.fixture
def undeletable(lib: Library) -> Iterator[Path]:
    """A duplicate locked with ``chattr +i``: readable, but no one may remove it (skipped where refused)."""
    path = lib.root / "Marketing 2026" / "IMG_4002.JPG"
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", path], capture_output=True).returncode:
        pytest.skip("needs chattr and a file system with the immutable attribute")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", path], check=True)


def test_a_copy_is_removed_again_only_once_its_locked_original_is_verified_in_place(
    lib: Library, undeletable: Path, tmp_path: Path
) -> None:
    start = tree_state(lib.root)
    plan = approved(lib, "quarantine")
    locked = next(s for s in plan.steps if unquote(s.target.key) == "Marketing 2026/IMG_4002.JPG")

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)

    assert next(r for r in report.results if r.step.index == locked.index).outcome == "failed"
    after = tree_state(lib.root)
    assert after["Marketing 2026/IMG_4002.JPG"] == start["Marketing 2026/IMG_4002.JPG"]
    assert unquote(locked.params["quarantine_key"]) not in after  # its copy went, as its original stayed intact
    subprocess.run(["chattr", "-i", undeletable], check=True)
    undo_run(lib.catalog, lib.host, lib.config, report.run_id, by="ana")
    assert tree_state(lib.root) == start


class _MovingLocal(LocalAdapter):
    """The local adapter with its rename declared a native move, as a store that moves items natively does."""

    native_move = True


def test_where_the_store_moves_natively_quarantine_and_undo_keep_the_object_itself(lib: Library) -> None:
    adapter = _MovingLocal(SourceSpec(lib.uri))
    plan = approved(lib, "quarantine")
    step = plan.steps[0]
    path = lib.root / unquote(step.target.key)
    inode, data = path.stat().st_ino, path.read_bytes()
    parts: list[str] = []

    copy, _removal = move_to_quarantine(adapter, step, lambda part, _detail: parts.append(part))

    assert parts == ["moved"] and not path.exists()
    assert (lib.root / unquote(copy.key)).stat().st_ino == inode  # the same object, moved, not a copy
    restore_from_quarantine(adapter, step, {"incomplete": "interrupted", "moved": {}, "tags": None})
    assert path.stat().st_ino == inode and path.read_bytes() == data
    assert not (lib.root / unquote(copy.key)).exists()
