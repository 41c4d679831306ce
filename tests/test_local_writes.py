"""The local adapter's writes on hostile trees: planted links, links followed by a scan, crashes mid-write.

Every write stays inside the scanned root and follows no link; new files appear whole or
not at all; deletes are conditional and idempotent; moves keep the inode.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dam_dedupe.adapters.local import SIDECAR_SUFFIX, TEMP_PREFIX, LocalAdapter
from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import parse_config
from dam_dedupe.errors import AssetError, AssetGone
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan
from dam_dedupe.host import Host
from dam_dedupe.records import AssetRecord, SourceSpec
from dam_dedupe.scan import run_scan
from tests.conftest import picture, save
from tests.governance_library import QUARANTINE, make_library, tree_state


def adapter_for(root: Path, **options: object) -> LocalAdapter:
    return LocalAdapter(SourceSpec(root.as_uri(), options=tuple(options.items())))


def record_of(adapter: LocalAdapter, key: str) -> AssetRecord:
    record = adapter.stat(key)
    assert record is not None, key
    return record


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links not followed) and its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if not p.is_symlink() else "link"
        for p in sorted(folder.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A scanned root with one image, and a folder outside it holding a file an attacker wants."""
    root, outside = tmp_path / "share", tmp_path / "outside"
    save(picture(1), root / "photos" / "a.jpg")
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside the root")
    return root, outside


def test_a_link_planted_at_the_destination_is_not_written_through(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    adapter = adapter_for(root)
    (root / "q").mkdir()
    (root / "q" / "a.jpg").symlink_to(outside / "secret.txt")
    (root / "q" / "b.jpg").symlink_to(outside / "new.jpg")  # dangling: a create would land outside
    before = digest(outside)

    for key in ("q/a.jpg", "q/b.jpg"):
        with pytest.raises(AssetError, match="will not overwrite"):
            adapter.copy(record_of(adapter, "photos/a.jpg"), key)
        with pytest.raises(AssetError, match="will not overwrite"):
            adapter.write_object(key, b"stub")

    assert digest(outside) == before
    assert not [p for p in (root / "q").iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_linked_folder_on_the_way_is_refused_and_nothing_lands_outside(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    adapter = adapter_for(root)
    (root / QUARANTINE).symlink_to(outside)
    before = digest(outside)
    original = record_of(adapter, "photos/a.jpg")

    with pytest.raises(AssetError, match=f"symbolic link {root / QUARANTINE}: its real path {outside}") as exc:
        adapter.copy(original, f"{QUARANTINE}/photos/a.jpg")
    assert "outside the scanned root" in str(exc.value)
    with pytest.raises(AssetError, match="symbolic link"):
        adapter.move(original, f"{QUARANTINE}/a.jpg")
    with pytest.raises(AssetError, match="symbolic link"):
        adapter.write_object(f"{QUARANTINE}/manifests/1.json", b"{}")
    with pytest.raises(AssetError, match="symbolic link"):
        adapter.stat(f"{QUARANTINE}/secret.txt")

    assert digest(outside) == before
    assert (root / "photos" / "a.jpg").exists()


def test_apply_with_a_planted_quarantine_link_moves_nothing_out_of_the_root(tmp_path: Path) -> None:
    lib = make_library(tmp_path)
    outside = tmp_path / "attacker"
    outside.mkdir()
    (lib.root / QUARANTINE).symlink_to(outside)
    start = tree_state(lib.root)
    plan = make_plan(lib.catalog, lib.host, lib.config, "quarantine", None, Selection(), by="ana")
    approve(lib.catalog, lib.config, plan, by="lee", role="legal")

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, out_dir=tmp_path)

    assert list(outside.rglob("*")) == []
    assert tree_state(lib.root) == start  # every duplicate is still in place
    assert report.count("applied") == 0
    lib.catalog.close()


def test_with_followed_links_apply_may_not_act_on_a_file_outside_the_root(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    save(picture(2), outside / "linked" / "b.jpg")
    (root / "elsewhere").symlink_to(outside / "linked")
    adapter = adapter_for(root, follow_symlinks=True)
    listed = {r.key for r in adapter.list_assets() if isinstance(r, AssetRecord)}
    assert listed == {"photos/a.jpg", "elsewhere/b.jpg"}  # the scan reads through the link
    before = digest(outside)
    record = record_of(adapter, "elsewhere/b.jpg")

    for act in (
        lambda: adapter.copy(record, "q/b.jpg"),
        lambda: adapter.delete(record),
        lambda: adapter.move(record, "q/b.jpg"),
        lambda: adapter.set_tags(record, {"role": "duplicate"}),
    ):
        with pytest.raises(AssetError, match="outside the scanned root"):
            act()

    assert digest(outside) == before
    assert not (root / "q").exists()


def test_apply_refuses_a_duplicate_a_followed_link_leads_outside_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "share", tmp_path / "elsewhere"
    canonical = save(picture(4), root / "brand" / "master.jpg")
    outside.mkdir()
    (outside / "copy.jpg").write_bytes(canonical.read_bytes())
    (root / "linked").symlink_to(outside)
    config = parse_config(
        {
            "matching": {"preset": "exact"},
            "policy": {"authoritative": [(root / "brand").as_uri()]},
            "sources": {"share": {"uri": root.as_uri(), "follow_symlinks": True}},
        }
    )
    catalog = open_catalog(tmp_path / "c.sqlite")
    run_scan([config.sources["share"]], catalog, Host(), config, workers=1)
    plan = make_plan(catalog, Host(), config, "quarantine", None, Selection(), by="ana")
    assert [s.target.key for s in plan.steps] == ["linked/copy.jpg"]  # the scan read through the link
    approve(catalog, config, plan, by="lee", role="legal")
    before = digest(outside)

    report = apply_plan(catalog, Host(), config, plan, out_dir=tmp_path)

    [result] = report.results
    assert result.outcome != "applied" and "outside the scanned root" in result.reason
    assert digest(outside) == before and (root / "linked").is_symlink()
    assert not (root / QUARANTINE / "linked").exists()
    catalog.close()


def test_copy_is_whole_keeps_mode_times_and_attributes_and_never_overwrites(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    source = root / "photos" / "a.jpg"
    source.chmod(0o640)
    os.utime(source, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    os.setxattr(source, "user.photographer", "陳大文".encode())
    adapter = adapter_for(root)

    copy = adapter.copy(record_of(adapter, "photos/a.jpg"), "q/deep/a.jpg")

    dest = root / "q" / "deep" / "a.jpg"
    assert dest.read_bytes() == source.read_bytes()
    assert dest.stat().st_mtime_ns == 1_500_000_000_987_654_321
    assert dest.stat().st_mode & 0o777 == 0o640
    assert os.getxattr(dest, "user.photographer").decode() == "陳大文"
    assert (
        copy.object_id == f"{dest.stat().st_dev}:{dest.stat().st_ino}" != record_of(adapter, "photos/a.jpg").object_id
    )
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.jpg"]  # no temporary file left
    with pytest.raises(AssetError, match="will not overwrite"):
        adapter.copy(record_of(adapter, "photos/a.jpg"), "q/deep/a.jpg")


def test_delete_is_conditional_idempotent_and_removes_only_the_folders_writes_made(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    adapter = adapter_for(root)
    original = record_of(adapter, "photos/a.jpg")
    copy = adapter.copy(original, f"{QUARANTINE}/run/photos/a.jpg")

    # replaced by a file of the same size and modified time: only the inode tells
    st = (root / "photos" / "a.jpg").stat()
    (root / "photos" / "new").write_bytes((root / "photos" / "a.jpg").read_bytes())
    os.utime(root / "photos" / "new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(root / "photos" / "new", root / "photos" / "a.jpg")
    with pytest.raises(AssetError, match="changed since it was checked"):
        adapter.delete(original)
    assert (root / "photos" / "a.jpg").exists()

    assert adapter.delete(copy) == {}
    assert adapter.delete(copy) == {}  # a retry after a lost answer: gone is success
    assert not (root / QUARANTINE).exists()  # the folders the copy made are gone with it
    assert adapter.delete(record_of(adapter, "photos/a.jpg")) == {}
    assert (root / "photos").is_dir()  # the user's own folder stays, empty


def test_tidy_removes_the_made_folders_a_killed_removal_left_empty_and_never_a_users(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    adapter = adapter_for(root)
    copy = adapter.copy(record_of(adapter, "photos/a.jpg"), f"{QUARANTINE}/c-1/活動相片/a.jpg")
    os.unlink(root / QUARANTINE / "c-1" / "活動相片" / "a.jpg")  # killed after the unlink, before the folders went
    assert (root / QUARANTINE / "c-1" / "活動相片").is_dir()
    adapter.tidy(copy.key)
    assert not (root / QUARANTINE).exists()
    adapter.tidy(copy.key)  # again, the folders gone too: nothing to do
    (root / "own" / "sub").mkdir(parents=True)
    adapter.tidy("own/sub/x.jpg")
    assert (root / "own" / "sub").is_dir()  # a user's empty folder stays
    kept = adapter.copy(record_of(adapter, "photos/a.jpg"), f"{QUARANTINE}/c-2/a.jpg")
    adapter.tidy(kept.key)
    assert (root / QUARANTINE / "c-2" / "a.jpg").exists()  # a key that holds a file is left as it is


def test_move_keeps_the_inode_never_overwrites_and_is_safe_to_retry(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    adapter = adapter_for(root)
    assert adapter.native_move
    (root / "taken.jpg").write_bytes(b"someone else's")
    original = record_of(adapter, "photos/a.jpg")

    with pytest.raises(AssetError, match="will not overwrite"):
        adapter.move(original, "taken.jpg")
    assert (root / "taken.jpg").read_bytes() == b"someone else's"

    # a move killed after its link: both names are the one file; a retry finishes it
    os.link(root / "photos" / "a.jpg", root / "half.jpg")
    moved = adapter.move(original, "half.jpg")
    assert moved.object_id == original.object_id
    assert not (root / "photos" / "a.jpg").exists()
    # the answer lost, the move asked again: it is done
    assert adapter.move(original, "half.jpg").object_id == original.object_id
    inner = adapter.move(moved, "made/inner.jpg")
    assert adapter.move(moved, "made/inner.jpg").object_id == inner.object_id == original.object_id
    adapter.move(inner, "out.jpg")
    assert not (root / "made").exists()  # the folder the move made went with it
    assert adapter.move(inner, "out.jpg").object_id == original.object_id  # asked again: done
    os.mkfifo(root / "pipe.jpg")  # a FIFO planted at a key does not hang a write: it is no regular file
    with pytest.raises(AssetError, match="not a regular file"):
        adapter.copy(AssetRecord(root.as_uri(), "pipe.jpg", "", 0), "q/pipe.jpg")
    with pytest.raises(AssetGone):
        adapter.move(original, "elsewhere.jpg")


def test_tags_kept_in_a_sidecar_go_with_copies_and_moves_and_leave_with_deletes(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    adapter = adapter_for(root)
    sidecar = root / "photos" / ("a.jpg" + SIDECAR_SUFFIX)  # as on a file system without extended attributes
    sidecar.write_text('{"photographer": "陳大文"}', encoding="utf-8")
    original = record_of(adapter, "photos/a.jpg")

    copy = adapter.copy(original, "q/a.jpg")
    assert adapter.get_tags(copy) == {"photographer": "陳大文"}
    moved = adapter.move(copy, "r/a.jpg")
    assert adapter.get_tags(moved) == {"photographer": "陳大文"}
    assert not (root / "q").exists()  # the sidecar left with the file, and the made folder with both

    adapter.delete(original)
    assert not sidecar.exists()


COPY_IN_CHILD = """
import sys
from dam_dedupe.adapters.local import LocalAdapter
from dam_dedupe.records import SourceSpec
adapter = LocalAdapter(SourceSpec(sys.argv[1]))
while True:  # copy until killed: every copy goes to a fresh name
    for n in range(1000000):
        adapter.copy(adapter.stat("big.bin"), f"q/copy-{n}.bin")
"""


def test_a_write_killed_midway_leaves_no_partial_file(tmp_path: Path) -> None:
    root = tmp_path / "share"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    child = subprocess.Popen([sys.executable, "-c", COPY_IN_CHILD, root.as_uri()])
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # kill while a temporary file is part written
            temps = [p for p in (root / "q").glob(TEMP_PREFIX + "*")] if (root / "q").exists() else []
            if temps and 0 < temps[0].stat().st_size < 64 * 1024 * 1024:
                break
            time.sleep(0.001)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()

    whole = (root / "big.bin").read_bytes()
    copies = [p for p in (root / "q").iterdir() if not p.name.startswith(TEMP_PREFIX)]
    assert all(p.read_bytes() == whole for p in copies)  # every name holds the whole file
    assert len([p for p in (root / "q").iterdir() if p.name.startswith(TEMP_PREFIX)]) == 1
    adapter = adapter_for(root)
    assert {r.key for r in adapter.list_assets() if isinstance(r, AssetRecord)} == {
        "big.bin",
        *(f"q/{p.name}" for p in copies),
    }  # the leftover is never listed
    n = len(copies)
    adapter.copy(record_of(adapter, "big.bin"), f"q/copy-{n}.bin")  # the next write to that name cleans up
    assert (root / "q" / f"copy-{n}.bin").read_bytes() == whole
    assert not [p for p in (root / "q").iterdir() if p.name.startswith(TEMP_PREFIX)]
