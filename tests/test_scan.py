"""Scanning a tree end to end: exact groups, errors, incremental rescans, gone assets, crashes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dam_dedupe.canonical import choose_canonical, make_rules
from dam_dedupe.catalog import open_catalog
from dam_dedupe.catalog.migrations import SCHEMA_VERSION
from dam_dedupe.config import Config, parse_config
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.fingerprint import FINGERPRINT_VERSION, fingerprint_stream
from dam_dedupe.host import Host
from dam_dedupe.matcher import PRESETS
from dam_dedupe.records import AssetRecord, Cluster, Member, SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan, start_workers_early
from tests.conftest import picture, run_cli, save
from tests.report_library import app13, iim
from tests.servers.postgres import count_rows, schema_version, set_schema_version

EXACT = Config(matching=PRESETS["exact"])


def build_tree(root: Path) -> dict[str, set[str]]:
    """Originals with byte-identical copies under other names; returns expected groups by original name."""
    groups: dict[str, set[str]] = {}
    for n in range(6):
        original = save(picture(n), root / "originals" / f"photo{n}.jpg", quality=90)
        names = {f"originals/photo{n}.jpg"}
        for m in range(n % 3):
            copy = root / ("副本" if m else "copies deep/x") / f"renamed {n}-{m}.jpeg"
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(original.read_bytes())
            names.add(str(copy.relative_to(root)))
        if len(names) > 1:
            groups[f"photo{n}.jpg"] = names
    # a re-encoded copy is not byte-identical: exact matching must not group it
    save(picture(0), root / "reencoded.jpg", quality=60)
    return groups


def clusters_by_path(report: dict, root: Path) -> set[frozenset[str]]:
    prefix = root.resolve().as_uri() + "/"
    return {
        frozenset(m["path"].removeprefix(prefix.replace("%20", " ")) for m in c["members"]) for c in report["clusters"]
    }


def test_exact_duplicates_grouped_whatever_their_names_with_no_false_group(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "tree"
    expected = build_tree(root)
    catalog = open_catalog(catalog_location)

    summary = run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT, workers=2)

    report = build_report(catalog)
    assert clusters_by_path(report, root) == {frozenset(v) for v in expected.values()}
    assert summary.errors == 0
    for cluster in report["clusters"]:
        assert {m["match"] for m in cluster["members"]} == {"exact"}
        assert len({m["sha256"] for m in cluster["members"]}) == 1
        assert sum(m["canonical"] for m in cluster["members"]) == 1
        assert cluster["canonical_reason"]
    assert report["summary"]["duplicate_copies"] == sum(len(v) - 1 for v in expected.values())


def test_damaged_and_non_image_files_are_errors_and_the_scan_completes(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "tree"
    good = save(picture(1), root / "good.jpg")
    (root / "copy.jpg").write_bytes(good.read_bytes())
    (root / "zero.jpg").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    (root / "letter.jpg").write_text("Dear team,", encoding="utf-8")
    (root / "minutes.docx").write_bytes(b"PK\x03\x04 a damaged document")
    save(picture(2), root / "no extension")  # recognised by content, not by name
    catalog = open_catalog(catalog_location)

    run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT, workers=1)

    report = build_report(catalog)
    reasons = {Path(e["path"]).name: e["reason"] for e in report["errors"]}
    assert set(reasons) == {"zero.jpg", "truncated.jpg", "corrupt.png", "letter.jpg", "minutes.docx"}
    assert "corrupt or truncated Office document" in reasons["minutes.docx"]  # its images are looked for
    assert "empty" in reasons["zero.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["letter.jpg"]
    assert report["summary"]["images"] == 3
    assert report["summary"]["clusters"] == 1


def test_second_scan_of_an_unchanged_tree_reads_no_bytes(
    tmp_path: Path, with_test_plugin: Path, catalog_location: str
) -> None:
    root = tmp_path / "tree"
    build_tree(root)
    reads = with_test_plugin / "reads.log"
    spec = SourceSpec("counting://" + str(root))
    catalog = open_catalog(catalog_location)

    first = run_scan([spec], catalog, Host(), EXACT, workers=2)
    first_reads = reads.read_text().splitlines()
    second = run_scan([spec], catalog, Host(), EXACT, workers=2)

    assert len(first_reads) == first.listed > 0
    assert reads.read_text().splitlines() == first_reads  # not one more read
    assert (second.fingerprinted, second.unchanged) == (0, first.listed)

    time.sleep(0.01)
    changed = root / "originals" / "photo1.jpg"
    save(picture(99), changed)
    third = run_scan([spec], catalog, Host(), EXACT, workers=1)
    assert third.fingerprinted == 1
    assert reads.read_text().splitlines()[len(first_reads) :] == ["originals/photo1.jpg"]


def test_workers_see_the_environment_as_it_is_when_the_scan_starts(
    tmp_path: Path, with_test_plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an embedding application may set credentials or endpoints between scans: the workers of each
    # scan must read with the values of its start, even once worker processes have been started before
    root = tmp_path / "tree"
    build_tree(root)
    spec = SourceSpec("counting://" + str(root))
    first = run_scan([spec], open_catalog(tmp_path / "first.sqlite"), Host(), EXACT, workers=2)
    later_reads = tmp_path / "later-reads.log"
    later_reads.touch()
    monkeypatch.setenv("DAM_TEST_READ_LOG", str(later_reads))

    later = run_scan([spec], open_catalog(tmp_path / "later.sqlite"), Host(), EXACT, workers=2)

    assert len((with_test_plugin / "reads.log").read_text().splitlines()) == first.fingerprinted > 0
    assert len(later_reads.read_text().splitlines()) == later.fingerprinted == first.fingerprinted


def test_workers_started_before_the_scan_reads_still_read_with_the_scans_environment(
    tmp_path: Path, with_test_plugin: Path, monkeypatch: pytest.MonkeyPatch, catalog_location: str
) -> None:
    # a scan starts the workers' fork server when its listing finds the first asset to read (so that its
    # imports overlap the listing): what the environment says by the time the scan reads must still count
    start_workers_early(2)
    reads = tmp_path / "reads-after-start.log"
    reads.touch()
    monkeypatch.setenv("DAM_TEST_READ_LOG", str(reads))
    root = tmp_path / "tree"
    build_tree(root)

    summary = run_scan([SourceSpec("counting://" + str(root))], open_catalog(catalog_location), Host(), EXACT, 2)

    assert len(reads.read_text().splitlines()) == summary.fingerprinted > 0


def test_store_hashes_find_candidates_without_reads_and_sha256_confirms_them(
    tmp_path: Path, with_test_plugin: Path, catalog_location: str
) -> None:
    root = tmp_path / "tree"
    original = save(picture(1), root / "a.jpg", quality=90)
    (root / "copy of a.jpg").write_bytes(original.read_bytes())
    # same size and first 64 bytes, one byte different: the weak store hash says "same", SHA-256 says no
    altered = bytearray(original.read_bytes())
    altered[len(altered) // 2] ^= 0xFF
    (root / "b.jpg").write_bytes(bytes(altered))
    different = save(picture(3, (200, 100)), root / "c.png", "PNG")
    assert (root / "b.jpg").read_bytes()[:64] == original.read_bytes()[:64]
    catalog = open_catalog(catalog_location)

    run_scan([SourceSpec("headhash://" + str(root))], catalog, Host(), EXACT, workers=1)

    reads = sorted((with_test_plugin / "reads.log").read_text().splitlines())
    assert reads == ["a.jpg", "b.jpg", "copy%20of%20a.jpg"]  # c.png has a unique store hash: never read
    assert different.name not in reads
    [cluster] = build_report(catalog)["clusters"]
    assert sorted(m["name"] for m in cluster["members"]) == ["a.jpg", "copy of a.jpg"]


def test_exact_mode_reads_assets_whose_store_hashes_cannot_be_compared(
    tmp_path: Path, with_test_plugin: Path, catalog_location: str
) -> None:
    original = save(picture(1), tmp_path / "store" / "a.jpg")
    save(picture(2), tmp_path / "store" / "unique.jpg", quality=50)
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "a copy.jpg").write_bytes(original.read_bytes())  # no store hash on local disk
    catalog = open_catalog(catalog_location)

    run_scan(
        [SourceSpec("headhash://" + str(tmp_path / "store")), SourceSpec((tmp_path / "disk").as_uri())],
        catalog,
        Host(),
        EXACT,
        workers=1,
    )

    [cluster] = build_report(catalog)["clusters"]
    assert sorted(m["name"] for m in cluster["members"]) == ["a copy.jpg", "a.jpg"]
    assert (with_test_plugin / "reads.log").read_text().splitlines() == ["a.jpg"]


def test_fingerprints_of_an_older_kind_are_made_again_by_the_next_scan(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "tree"
    build_tree(root)
    other = save(picture(50), tmp_path / "other" / "x.jpg").parent
    catalog = open_catalog(catalog_location)
    first = run_scan([SourceSpec(root.as_uri()), SourceSpec(other.as_uri())], catalog, Host(), EXACT, workers=1)
    catalog.conn.execute("UPDATE fingerprints SET version = 1")  # as an older dam-dedupe left them

    again = run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT, workers=1)

    assert again.fingerprinted == first.listed - 1
    assert {a.fingerprint.version for a in catalog.images() if a.fingerprint and a.record.source == root.as_uri()} == {
        FINGERPRINT_VERSION
    }
    assert build_report(catalog)["summary"]["images"] == first.listed  # the source not scanned keeps its image


def test_reread_reads_unchanged_images_again_so_an_analyser_installed_since_sees_them(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "tree"
    build_tree(root)
    spec = SourceSpec(root.as_uri())
    catalog = open_catalog(catalog_location)
    without = parse_config({"matching": {"preset": "exact"}, "analysis": {"disabled": ["faces", "rights"]}})
    first = run_scan([spec], catalog, Host(), without, workers=1)
    assert first.fingerprinted == first.listed and catalog.analyses() == {}

    again = run_scan([spec], catalog, Host(), EXACT, workers=1)  # face detection now on: nothing is read
    assert again.fingerprinted == 0 and catalog.analyses() == {}

    reread = run_scan([spec], catalog, Host(), EXACT, workers=1, reread=True)
    assert reread.fingerprinted == first.listed
    analysed = catalog.analyses()
    assert len(analysed) == first.listed and all("faces" in found for found in analysed.values())


def test_vanished_assets_are_marked_gone_not_dropped(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "tree"
    build_tree(root)
    catalog = open_catalog(catalog_location)
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT, workers=1)
    (root / "originals" / "photo2.jpg").unlink()

    summary = run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT, workers=1)

    assert summary.gone == 1
    gone = catalog.asset_by_uri((root / "originals" / "photo2.jpg").resolve().as_uri())
    assert gone is not None and gone.state.presence == "gone"
    assert build_report(catalog)["summary"]["gone"] == 1


def test_a_source_that_fails_is_recorded_and_other_sources_are_scanned(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "tree"
    build_tree(root)
    catalog = open_catalog(catalog_location)

    summary = run_scan(
        [SourceSpec("nosuch://x"), SourceSpec((tmp_path / "missing").as_uri()), SourceSpec(root.as_uri())],
        catalog,
        Host(),
        EXACT,
        workers=1,
    )

    report = build_report(catalog)
    reasons = [e["reason"] for e in report["errors"]]
    assert any("no installed adapter serves 'nosuch://'" in r for r in reasons)
    assert any("is not a folder" in r for r in reasons)
    assert report["summary"]["clusters"] == 4
    assert summary.errors == 2


def test_a_problem_fixed_since_the_last_scan_is_no_longer_reported(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "share"
    catalog = open_catalog(catalog_location)
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT, workers=1)
    assert [e["reason"] for e in build_report(catalog)["errors"]] == [
        f"listing stopped: {root} is not a folder that can be read"
    ]

    build_tree(root)
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), EXACT, workers=1)

    assert build_report(catalog)["errors"] == []


def test_crash_mid_scan_is_completed_by_the_next_scan(
    tmp_path: Path, with_test_plugin: Path, catalog_location: str
) -> None:
    root = tmp_path / "tree"
    for n in range(400):
        save(picture(n, (640, 480)), root / f"{n:03d}.png", "PNG")
    for n in range(0, 400, 40):
        (root / f"copy-{n:03d}.png").write_bytes((root / f"{n:03d}.png").read_bytes())
    cmd = [
        sys.executable,
        "-m",
        "dam_dedupe",
        "--catalog",
        catalog_location,
        "scan",
        "--preset",
        "exact",
        "--workers",
        "1",
        "counting://" + str(root),
    ]
    process = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 150:
        time.sleep(0.1)
        done = count_rows(catalog_location, "fingerprints")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 0 < done < 410, "the scan must be killed part-way through"
    reads_before = len((with_test_plugin / "reads.log").read_text().splitlines())

    run_cli("--catalog", catalog_location, "report", "--format", "json", "-o", "partial.json", cwd=tmp_path)
    run_cli(*cmd[3:], cwd=tmp_path)
    run_cli("--catalog", catalog_location, "report", "--format", "json", "-o", "r.json", cwd=tmp_path)

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["images"] == 410
    assert report["summary"]["clusters"] == 10
    reread = len((with_test_plugin / "reads.log").read_text().splitlines()) - reads_before
    assert reread <= 410 - done + 10  # at most what was not yet committed (plus an unfinished batch)


def test_catalog_schema_is_versioned_and_a_newer_catalog_is_refused(tmp_path: Path, catalog_location: str) -> None:
    open_catalog(catalog_location).close()
    assert schema_version(catalog_location) == SCHEMA_VERSION
    set_schema_version(catalog_location, SCHEMA_VERSION + 1)
    with pytest.raises(DamDedupeError, match="newer than this dam-dedupe"):
        open_catalog(catalog_location)


def test_policy_authoritative_then_resolution_with_reasons(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "tree"
    data = save(picture(5, (800, 600)), root / "approved" / "z.jpg").read_bytes()
    for name in ("a.jpg", "b/c.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    config = parse_config({"matching": {"preset": "exact"}, "policy": {"authoritative": [str(root / "approved")]}})
    catalog = open_catalog(catalog_location)

    run_scan([SourceSpec(root.as_uri())], catalog, Host(), config, workers=1)

    [cluster] = build_report(catalog)["clusters"]
    assert cluster["canonical"].endswith("/approved/z.jpg")
    assert cluster["canonical_reason"] == "it is in an authoritative location"

    config = parse_config({"matching": {"preset": "exact"}, "policy": {"canonical": ["shortest_path"]}})
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), config, workers=1)
    [cluster] = build_report(catalog)["clusters"]
    assert cluster["canonical"].endswith("/tree/a.jpg")
    assert cluster["canonical_reason"] == "shortest path"


def test_policy_metadata_prefers_the_copy_carrying_iptc_fields(tmp_path: Path) -> None:
    pixels = picture(3)
    plain, tagged = io.BytesIO(), io.BytesIO()
    pixels.save(plain, "JPEG", quality=90)
    pixels.save(tagged, "JPEG", quality=90, extra=app13(iim(80, "Jane Photographer") + iim(116, "© 2026 Brand")))
    members = []
    for name, data in (("a-plain.jpg", plain.getvalue()), ("b-tagged.jpg", tagged.getvalue())):
        record = AssetRecord(source="file:///lib", key=name, uri=f"file:///lib/{name}", size=len(data), name=name)
        members.append(Member(record, fingerprint_stream(io.BytesIO(data))))
    assert members[1].fingerprint.metadata_fields == members[0].fingerprint.metadata_fields + 1

    cluster = Cluster("c-1", members)
    choose_canonical(cluster, ["metadata"], make_rules([]))

    assert cluster.canonical is members[1]
    assert cluster.canonical_reason == "richest metadata (1 fields against 0)"


def test_files_no_image_by_name_are_marked_skipped_without_a_read(
    tmp_path: Path, with_test_plugin: Path, catalog_location: str
) -> None:
    root = tmp_path / "tree"
    save(picture(1), root / "photo.jpg")
    for n in range(3):
        (root / "notes").mkdir(parents=True, exist_ok=True)
        (root / "notes" / f"會議記錄 {n}.txt").write_text("minutes\n", encoding="utf-8")
    catalog = open_catalog(catalog_location)
    spec = SourceSpec("counting://" + str(root))

    summary = run_scan([spec], catalog, Host(), EXACT, workers=1)

    assert (summary.listed, summary.skipped, summary.fingerprinted) == (4, 3, 1)
    assert catalog.counts()["skipped"] == 3 and catalog.pending_count(catalog.source_id(spec)) == 0
    assert (with_test_plugin / "reads.log").read_text().splitlines() == ["photo.jpg"]  # the notes were never opened
    catalog.close()
