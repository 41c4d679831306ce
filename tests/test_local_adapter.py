"""The local adapter on hostile trees: odd names, links, loops, unreadable folders."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from dam_dedupe.adapters.local import LocalAdapter
from dam_dedupe.records import AssetRecord, ListingProblem, SourceSpec
from tests.conftest import picture, save


def listing(root: Path, **options: object) -> tuple[list[AssetRecord], list[ListingProblem]]:
    adapter = LocalAdapter(SourceSpec(root.as_uri(), options=tuple(options.items())))
    items = list(adapter.list_assets())
    return [i for i in items if isinstance(i, AssetRecord)], [i for i in items if isinstance(i, ListingProblem)]


def test_names_in_any_script_list_open_and_round_trip(tmp_path: Path) -> None:
    names = ["維港夜景 01.jpg", "spaces in name.jpg", "emoji 🙂📷.jpg", "Ελληνικά.jpg", "عربى.jpg"]
    for n, name in enumerate(names):
        save(picture(n), tmp_path / "子資料夾" / name)
    raw = os.fsencode(tmp_path) + b"/bad-\xff\xfe-utf8.jpg"
    with open(raw, "wb") as out:
        out.write((tmp_path / "子資料夾" / names[0]).read_bytes())

    records, problems = listing(tmp_path)

    assert problems == []
    assert len(records) == len(names) + 1
    adapter = LocalAdapter(SourceSpec(tmp_path.as_uri()))
    for record in records:
        path = adapter.path_for(record.key)
        assert path.exists(), record.key
        assert record.uri == path.resolve().as_uri()
        record.key.encode("ascii")  # keys are storable whatever the name's bytes
        with adapter.open(record) as stream:
            assert stream.read() == path.read_bytes()
    invalid = next(r for r in records if "bad-" in r.name)
    assert "\ufffd" in invalid.name
    assert invalid.uri.endswith("/bad-%FF%FE-utf8.jpg")


def test_symlinks_are_not_followed_by_default(tmp_path: Path) -> None:
    save(picture(1), tmp_path / "real" / "a.jpg")
    (tmp_path / "link-to-file.jpg").symlink_to(tmp_path / "real" / "a.jpg")
    (tmp_path / "link-to-dir").symlink_to(tmp_path / "real")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "missing.jpg")

    records, problems = listing(tmp_path)

    assert [r.name for r in records] == ["a.jpg"]
    assert problems == []


def test_followed_symlinks_survive_loops_and_report_broken_links(tmp_path: Path) -> None:
    save(picture(1), tmp_path / "real" / "a.jpg")
    (tmp_path / "real" / "loop").symlink_to(tmp_path)
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "missing.jpg")

    records, problems = listing(tmp_path, follow_symlinks=True)

    assert [r.name for r in records] == ["a.jpg"]
    reasons = sorted(p.reason for p in problems)
    assert reasons[0] == "broken symbolic link"
    assert "loop" in reasons[1]


def list_as_unprivileged_user(root: Path) -> list[str]:
    """List ``root`` in a forked child that dropped root's rights (root reads every folder)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, list, report through the pipe
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            items = LocalAdapter(SourceSpec(root.as_uri())).list_assets()
            lines = [i.name if isinstance(i, AssetRecord) else f"problem: {i.reason}" for i in items]
            os.write(write_end, json.dumps(lines).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_unreadable_folder_is_a_problem_and_the_listing_goes_on() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "share"
        save(picture(1), root / "open" / "a.jpg")
        save(picture(2), root / "closed" / "b.jpg")
        for folder in (Path(tmp), root, root / "open"):
            folder.chmod(0o755)
        (root / "closed").chmod(0o700 if os.geteuid() == 0 else 0o000)
        try:
            lines = list_as_unprivileged_user(root)
        finally:
            (root / "closed").chmod(0o700)
    assert lines == ["problem: cannot list folder: Permission denied", "a.jpg"]


def test_write_side_copy_move_delete_and_tags(tmp_path: Path) -> None:
    save(picture(3), tmp_path / "a.jpg")
    adapter = LocalAdapter(SourceSpec(tmp_path.as_uri()))
    record = adapter.stat("a.jpg")
    assert record is not None

    copy = adapter.copy(record, "quarantine/%E5%89%AF%E6%9C%AC.jpg")
    assert (tmp_path / "quarantine" / "副本.jpg").read_bytes() == (tmp_path / "a.jpg").read_bytes()
    adapter.set_tags(copy, {"cluster": "c-1", "role": "duplicate"})
    assert adapter.get_tags(copy) == {"cluster": "c-1", "role": "duplicate"}
    adapter.set_tags(copy, {"cluster": "c-2"})
    assert adapter.get_tags(copy) == {"cluster": "c-2"}

    moved = adapter.move(copy, "elsewhere/b.jpg")
    assert adapter.stat(copy.key) is None
    assert moved.size == record.size

    (tmp_path / "a.jpg").write_bytes(b"changed")
    with pytest.raises(Exception, match="changed since"):
        adapter.delete(record)
    assert (tmp_path / "a.jpg").exists()


def test_the_listing_shards_together_list_what_one_walk_lists_each_file_once(tmp_path: Path) -> None:
    for n, name in enumerate(["維港 01.jpg", "b/c/deep.jpg", "b/top of b.jpg", "部門 2/x.jpg", "a.jpg", "z/y.jpg"]):
        save(picture(n), tmp_path / name)
    raw = os.fsencode(tmp_path) + b"/bad-\xff-dir"
    os.mkdir(raw)
    with open(raw + b"/in bad.jpg", "wb") as out:
        out.write((tmp_path / "a.jpg").read_bytes())
    (tmp_path / "b" / "link to z").symlink_to(tmp_path / "z")  # not followed: in no shard
    adapter = LocalAdapter(SourceSpec(tmp_path.as_uri()))

    shards = adapter.listing_shards()
    sharded = [item for shard in shards or [] for item in adapter.list_shard(shard)]
    walked = list(adapter.list_assets())

    assert shards is not None and shards[0] == "" and len(shards) == 5  # the top's files, then 4 folders
    assert all(isinstance(item, AssetRecord) for item in sharded + walked)
    keys = [item.key for item in sharded if isinstance(item, AssetRecord)]
    assert sorted(keys) == sorted(item.key for item in walked if isinstance(item, AssetRecord))
    assert len(keys) == len(set(keys)) == 7
    assert LocalAdapter(SourceSpec(tmp_path.as_uri(), options=(("follow_symlinks", True),))).listing_shards() is None
