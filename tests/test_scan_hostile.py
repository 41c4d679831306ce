"""Scans on hostile trees and under faults: one object under two names, folders that cannot be listed,
two scans of one catalog at once, a worker killed by the kernel, files of unknown type.

The faults are real: a second source naming the same folder, a bind mount, a folder replaced by a
dangling link, a second process, a SIGKILL sent from outside to the worker reading a file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from dam_dedupe.adapters.local import LocalAdapter
from dam_dedupe.catalog import open_catalog
from dam_dedupe.catalog.migrations import MIGRATIONS
from dam_dedupe.config import Config
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.host import Host
from dam_dedupe.matcher import PRESETS
from dam_dedupe.records import AssetRecord, SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import FingerprintJob, run_scan
from tests.conftest import picture, save

EXACT = Config(matching=PRESETS["exact"])


def photos(root: Path, n: int = 3) -> list[Path]:
    return [save(picture(i), root / f"p{i}.jpg") for i in range(n)]


def listing_reasons(catalog_path: Path) -> list[str]:
    catalog = open_catalog(catalog_path)
    try:
        return [p.reason for p in catalog.problems() if p.scope == "listing"]
    finally:
        catalog.close()


# -- one object, one asset -------------------------------------------------------------------


def test_one_folder_named_by_two_sources_gives_one_asset_per_file(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "share"
    photos(root)
    (tmp_path / "alias").symlink_to(root)  # the same folder under a second name, as a second source
    catalog = open_catalog(catalog_location)

    summary = run_scan([SourceSpec(root.as_uri()), SourceSpec((tmp_path / "alias").as_uri())], catalog, Host(), EXACT)

    assert summary.listed == 3
    assert len(catalog.images()) == 3
    assert build_report(catalog)["clusters"] == []  # no file is its own duplicate
    reasons = [p.reason for p in catalog.problems()]
    assert sorted(reasons) == sorted(f"same file as {(root / f'p{i}.jpg').as_uri()}; recorded once" for i in range(3))
    for asset in catalog.images():
        st = os.stat(LocalAdapter(SourceSpec(root.as_uri())).path_for(asset.record.key))
        assert asset.record.object_id == f"{st.st_dev}:{st.st_ino}"  # the catalog gives it back

    # scanning the second source alone still does not make the files second assets
    alone = run_scan([SourceSpec((tmp_path / "alias").as_uri())], catalog, Host(), EXACT)
    assert alone.listed == 0 and len(catalog.images()) == 3
    catalog.close()


def test_a_hard_link_beside_its_file_is_one_asset_listed_in_the_same_batch(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "share"
    photos(root)
    os.link(root / "p1.jpg", root / "p1 linked.jpg")  # one inode, two names, one listing batch
    catalog = open_catalog(catalog_location)

    first = run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT)
    again = run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT)

    assert (first.listed, again.listed, again.unchanged) == (3, 3, 3)
    assert sorted(a.record.name for a in catalog.images()) == ["p0.jpg", "p1 linked.jpg", "p2.jpg"]  # listed first
    assert [p.reason for p in catalog.problems()] == [
        f"same file as {(root / 'p1 linked.jpg').as_uri()}; recorded once"
    ]
    assert build_report(catalog)["clusters"] == []
    catalog.close()


def test_a_renamed_file_stays_one_asset(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "share"
    photos(root)
    catalog = open_catalog(catalog_location)
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT)
    (root / "p0.jpg").rename(root / "renamed.jpg")  # same inode, new name

    summary = run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT)

    assert summary.gone == 1
    assert sorted(a.record.name for a in catalog.images()) == ["p1.jpg", "p2.jpg", "renamed.jpg"]
    assert catalog.problems() == []
    catalog.close()


def test_a_bind_mount_of_the_folder_gives_one_asset_per_file(tmp_path: Path, catalog_location: str) -> None:
    root, mounted = tmp_path / "share", tmp_path / "mounted"
    photos(root)
    mounted.mkdir()
    bound = subprocess.run(["mount", "--bind", str(root), str(mounted)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"mount --bind is not permitted here: {bound.stderr.strip()}")
    try:
        catalog = open_catalog(catalog_location)
        summary = run_scan([SourceSpec(root.as_uri()), SourceSpec(mounted.as_uri())], catalog, Host(), EXACT)
        assert summary.listed == 3
        assert build_report(catalog)["clusters"] == []
        assert all("same file as" in p.reason for p in catalog.problems()) and len(catalog.problems()) == 3
        catalog.close()
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


# -- partial listings ------------------------------------------------------------------------------


def test_a_folder_that_cannot_be_listed_leaves_its_assets_present(tmp_path: Path, catalog_location: str) -> None:
    root, target = tmp_path / "share", tmp_path / "nas-volume"
    photos(root / "open")
    photos(target, 2)
    (root / "mounted").symlink_to(target)  # a folder on another volume, reached through a link
    spec = SourceSpec(root.as_uri(), options=(("follow_symlinks", True),))
    catalog = open_catalog(catalog_location)
    assert run_scan([spec], catalog, Host(), EXACT).listed == 5
    target.rename(tmp_path / "unmounted")  # the volume goes away: the link dangles

    summary = run_scan([spec], catalog, Host(), EXACT)

    assert summary.gone == 0
    assert catalog.counts()["assets"] == 5 and catalog.counts()["gone"] == 0
    reasons = [p.reason for p in catalog.problems()]
    assert "broken symbolic link" in reasons
    assert "2 assets not listed by this scan were kept, not marked gone: 1 part(s) of it could not be listed" in reasons
    (tmp_path / "unmounted").rename(target)
    (root / "open" / "p0.jpg").unlink()
    assert run_scan([spec], catalog, Host(), EXACT).gone == 1  # a complete listing marks gone again
    catalog.close()


# -- one scan per catalog ---------------------------------------------------------------------------

PAUSED_SCAN = """
import sys
from dam_dedupe.catalog import open_catalog
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan

def pause(phase, done, total):  # a long scan: wait, mid-fingerprinting, until told to go on
    if done == 1:
        print("reading", flush=True)
        sys.stdin.readline()

summary = run_scan([SourceSpec(sys.argv[2])], open_catalog(sys.argv[1]), Host(), workers=1, progress=pause)
print("listed", summary.listed, flush=True)
"""


def test_a_second_scan_of_a_catalog_is_refused_while_one_runs(tmp_path: Path) -> None:
    root = tmp_path / "share"
    photos(root)
    catalog_path = tmp_path / "c.sqlite"  # a catalog file's lock (PostgreSQL's: tests/test_catalog_postgresql.py)
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_SCAN, str(catalog_path), root.as_uri()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert first.stdin is not None and first.stdout is not None
    try:
        assert first.stdout.readline().strip() == "reading"
        catalog = open_catalog(catalog_path)
        with pytest.raises(
            DamDedupeError, match=f"another scan of {catalog_path} is running since .*, pid {first.pid}"
        ):
            run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT)
        assert [run["status"] for run in catalog.runs()] == ["running"]  # the refused scan recorded nothing
    finally:
        first.stdin.write("go\n")
        first.stdin.close()
        out = first.stdout.read()
        first.wait(timeout=120)
    assert first.returncode == 0 and "listed 3" in out
    assert run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT).unchanged == 3  # free again
    catalog.close()


# -- a worker killed by the kernel ----------------------------------------------------------------

SCAN_IN_CHILD = """
import sys
from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.matcher import PRESETS
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan

s = run_scan([SourceSpec(sys.argv[2])], open_catalog(sys.argv[1]), Host(), Config(matching=PRESETS["exact"]), workers=2)
print("fingerprinted", s.fingerprinted, "errors", s.errors, flush=True)
"""


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``: the scan's workers are its children, or its fork server's."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found


def holds_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def scan_killing_readers_of(catalog_path: Path, root: Path, victim: Path) -> tuple[str, int]:
    """Scan in a child process, SIGKILLing (from outside) every worker that opens ``victim``; return output, kills."""
    scan = subprocess.Popen(
        [sys.executable, "-c", SCAN_IN_CHILD, str(catalog_path), root.as_uri()], stdout=subprocess.PIPE, text=True
    )
    kills = 0
    deadline = time.monotonic() + 300
    while scan.poll() is None and time.monotonic() < deadline:
        for worker in descendants(scan.pid):
            if holds_open(worker, victim):
                os.kill(worker, signal.SIGKILL)
                kills += 1
        time.sleep(0.002)
    out, _ = scan.communicate(timeout=60)
    assert scan.returncode == 0, out
    return out, kills


def test_a_worker_killed_while_reading_is_recorded_and_later_scans_complete(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "share"
    photos(root)
    victim = root / "huge.jpg"
    with victim.open("wb") as handle:
        handle.truncate(4 * 1024**3)  # sparse: slow to read through, no disk used
    catalog_path = catalog_location

    out, kills = scan_killing_readers_of(catalog_path, root, victim)

    assert kills >= 1 and "fingerprinted 3 errors 1" in out  # the pool was rebuilt; the other images were read
    catalog = open_catalog(catalog_path)
    [problem] = [p for p in catalog.problems() if p.scope == "asset"]
    assert problem.uri == victim.as_uri()
    assert (
        problem.reason
        == "the worker process reading it was killed (1 of 2 tries; out of memory?); read again by the next scan"
    )
    catalog.close()

    out, kills = scan_killing_readers_of(catalog_path, root, victim)  # tried again, killed again

    assert kills >= 1 and "fingerprinted 0 errors 1" in out
    catalog = open_catalog(catalog_path)
    [problem] = [p for p in catalog.problems() if p.scope == "asset"]
    assert problem.reason.endswith("(2 of 2 tries; out of memory?); not read again until it changes")
    summary = run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT, workers=2)
    assert (summary.fingerprinted, summary.unchanged) == (0, 4)  # not read again: the scan completes
    assert len(catalog.images()) == 3
    catalog.close()


# -- files of unknown type -----------------------------------------------------------------------


class CountingAdapter(LocalAdapter):
    """The local adapter, counting the bytes its streams hand out."""

    read_bytes = 0

    def open(self, record: AssetRecord) -> BinaryIO:
        stream = super().open(record)
        adapter = self

        class Counted:
            def read(self, n: int = -1) -> bytes:
                data = stream.read(n)
                adapter.read_bytes += len(data)
                return data

            def __enter__(self) -> Counted:
                return self

            def __exit__(self, *exc: object) -> None:
                stream.close()

        return Counted()  # type: ignore[return-value]


def test_a_file_of_unknown_type_is_judged_by_its_first_bytes_before_a_full_read(tmp_path: Path) -> None:
    root = tmp_path / "share"
    root.mkdir()
    (root / "archive.bin1").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 16 * 1024)  # a zip-like 4 MiB
    jpeg = save(picture(1, (2000, 1500)), root / "scan-0001.jpg", quality=95)
    jpeg.rename(root / "scan-0001")  # an image without an ending is still found by its content
    assert (root / "scan-0001").stat().st_size > 64 * 1024
    spec = SourceSpec(root.as_uri())
    records = {r.name: r for r in LocalAdapter(spec).list_assets() if isinstance(r, AssetRecord)}

    adapter = CountingAdapter(spec)
    unknown = FingerprintJob(spec, adapter)(1, records["archive.bin1"])
    assert (unknown.content, adapter.read_bytes) == ("skipped", 64)

    adapter = CountingAdapter(spec)
    found = FingerprintJob(spec, adapter)(2, records["scan-0001"])
    assert found.fingerprint is not None and found.fingerprint.format == "JPEG"
    assert adapter.read_bytes == 64 + records["scan-0001"].size


# -- the catalog ---------------------------------------------------------------------------------


def test_an_older_catalog_is_migrated_and_commits_are_durable(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, migration in enumerate(MIGRATIONS[:5]):
        conn.executescript(f"BEGIN; {migration} PRAGMA user_version = {number + 1}; COMMIT;")
    conn.close()
    root = tmp_path / "share"
    photos(root, 1)

    catalog = open_catalog(path)
    assert catalog.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT)
    [image] = catalog.images()
    st = (root / "p0.jpg").stat()
    assert image.record.object_id == f"{st.st_dev}:{st.st_ino}"
    found = catalog.asset_by_uri(image.record.uri)
    assert found is not None and found.record.object_id == image.record.object_id
    catalog.close()
