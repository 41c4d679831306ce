"""The shape of real archives: one photograph re-saved many times is one cluster, each copy explained
against the canonical; matching shows its progress on a terminal and nowhere else."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from PIL import Image

from dam_dedupe import clustering
from dam_dedupe.catalog import open_catalog
from dam_dedupe.clustering import build_clusters
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.matcher import compare, formation, grouping
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.conftest import run_cli

skimage = pytest.importorskip("skimage")

COPIES = 90


def photograph(name: str = "chelsea.png") -> Image.Image:
    """One of scikit-image's sample photographs, as RGB."""
    with Image.open(Path(skimage.data_dir) / name) as img:
        return img.convert("RGB")


def resave_copies(img: Image.Image, folder: Path, count: int, seed: int = 13) -> None:
    """``count`` re-saved copies as departments make them: random size 30-100%, JPEG quality
    50-95, one in ten PNG and one in ten WebP, under other names in other folders."""
    rng = random.Random(seed)
    for n in range(count):
        scale = rng.uniform(0.3, 1.0)
        copy = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        path = folder / f"dept-{n % 7}" / f"campaign visual ({n})"
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = rng.random()
        if kind < 0.8:
            copy.save(path.with_suffix(".jpg"), "JPEG", quality=rng.randint(50, 95))
        elif kind < 0.9:
            copy.save(path.with_suffix(".png"), "PNG")
        else:
            copy.save(path.with_suffix(".webp"), "WEBP", quality=rng.randint(50, 95))


def test_many_copies_of_one_photograph_are_one_cluster_explained_against_the_canonical(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    resave_copies(photograph(), root, COPIES)
    catalog = open_catalog(tmp_path / "catalog.db")
    seen: list[tuple[str, int, int]] = []
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), Config(), workers=2, matching=lambda *a: seen.append(a))

    clusters = catalog.clusters()
    assert len(clusters) == 1
    cluster = clusters[0]
    assert len(cluster.members) == COPIES
    fingerprints = {asset.id: asset.fingerprint for asset in catalog.images()}
    canonical = fingerprints[cluster.canonical_asset_id]
    assert canonical is not None
    for asset_id, match, evidence in cluster.members:
        if asset_id == cluster.canonical_asset_id:
            assert evidence == {"relation": "canonical"}
            continue
        member = fingerprints[asset_id]
        assert member is not None
        # What the report shows for each copy is its comparison with the canonical, not with
        # whichever member happened to admit it into the group.
        expected = compare(canonical, member, Config().matching)
        assert expected is not None and match == expected.match
        assert evidence == json.loads(json.dumps(expected.evidence))
    assert ("grouping", COPIES, COPIES) in seen and seen[-1] == ("explaining", 1, 1)
    catalog.close()


def test_copies_of_two_photographs_stay_two_clusters(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    resave_copies(photograph("chelsea.png"), root / "cat", 30, seed=1)
    resave_copies(photograph("coffee.png"), root / "coffee", 30, seed=2)
    catalog = open_catalog(tmp_path / "catalog.db")
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), Config(), workers=2)
    uris = {asset.id: asset.record.uri for asset in catalog.images(thumbnails=False)}
    clusters = [
        {uris[asset_id].split("/archive/")[1].split("/")[0] for asset_id, _, _ in c.members} for c in catalog.clusters()
    ]
    assert sorted(len(c.members) for c in catalog.clusters()) == [30, 30]
    assert sorted(clusters, key=sorted) == [{"cat"}, {"coffee"}]
    catalog.close()


def test_matching_in_small_parts_finds_the_same_clusters_and_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memory stays bounded because thumbnails are loaded a part at a time, while groups form
    # and while a cluster is explained; how large the parts are must not change what is found.
    root = tmp_path / "archive"
    resave_copies(photograph("chelsea.png"), root / "cat", 20, seed=1)
    resave_copies(photograph("coffee.png"), root / "coffee", 20, seed=2)
    catalog = open_catalog(tmp_path / "catalog.db")
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), Config(), workers=2)
    whole = catalog.clusters()
    assert sorted(len(c.members) for c in whole) == [20, 20]

    monkeypatch.setattr(formation, "PREPARE_LIMIT", 3)
    monkeypatch.setattr(grouping, "LOADED", 3)
    monkeypatch.setattr(clustering, "EXPLAINED_AT_ONCE", 4)
    asked: list[int] = []
    thumbnails = catalog.thumbnails

    def counted(asset_ids: Iterable[int]) -> dict[int, bytes]:
        wanted = list(asset_ids)
        asked.append(len(wanted))
        return thumbnails(wanted)

    monkeypatch.setattr(catalog, "thumbnails", counted)
    # Every pair measured afresh from the thumbnails loaded for it, none from the verdicts kept.
    verdicts = sys.modules["dam_dedupe.matcher.compare"]
    for kept, limit in (("_plain_kept", "PLAIN_KEPT"), ("_searched_kept", "SEARCHED_KEPT")):
        monkeypatch.setattr(verdicts, kept, type(getattr(verdicts, kept))())
        monkeypatch.setattr(verdicts, limit, 1)
    build_clusters(catalog, Config(), Host())
    assert catalog.clusters() == whole
    assert asked and max(asked) <= 4 + 1  # a part of the members and the canonical
    catalog.close()


def test_match_progress_is_shown_on_a_terminal_only(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    resave_copies(photograph(), root, 6)
    run_cli("scan", str(root), "--workers", "1", cwd=tmp_path)
    piped = run_cli("match", cwd=tmp_path)
    assert "matching:" not in piped.stderr and "1 clusters" in piped.stdout
    # On a terminal (a pseudo-terminal here) the same command shows the stage, done/total and rate.
    leader, follower = os.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "dam_dedupe", "match"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=follower
    ) as process:
        os.close(follower)
        shown = b""
        while chunk := _read(leader):
            shown += chunk
        process.wait(timeout=60)
    os.close(leader)
    assert b"matching: grouping 6/6" in shown and b"matching: explaining 1/1" in shown and b"/s)" in shown


def _read(fd: int) -> bytes:
    """What a pseudo-terminal has to read, or nothing once its writer has closed it."""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def test_matching_streams_one_asset_per_uri_when_sources_overlap(tmp_path: Path) -> None:
    # The same file listed under two sources (a folder and its parent) is one asset, not two
    # copies of itself; the catalog streams it once, in chunks of any size.
    root = tmp_path / "archive"
    pictures = [photograph(name) for name in ("chelsea.png", "coffee.png", "astronaut.png")]
    for n, picture in enumerate(pictures):
        picture.save(_mkdir(root) / f"photo{n}.jpg", "JPEG", quality=90)
    (_mkdir(root / "shared") / "photo0 copy.jpg").write_bytes((root / "photo0.jpg").read_bytes())
    catalog = open_catalog(tmp_path / "catalog.db")
    sources = [SourceSpec(root.as_uri()), SourceSpec((root / "shared").as_uri())]
    run_scan(sources, catalog, Host(), Config(), workers=1)

    listed = catalog.images(thumbnails=False)
    assert len(listed) == 4  # one object (dev:inode) seen under both sources is recorded once
    assert any("same file as" in p.reason for p in catalog.problems())
    first_by_uri = {}
    for asset in listed:
        first_by_uri.setdefault(asset.record.uri, asset.id)
    for chunk in (1, 2, 2000):
        streamed = [asset.id for asset in catalog.images_streamed(chunk)]
        assert streamed == sorted(first_by_uri.values())
    (cluster,) = catalog.clusters()
    assert len(cluster.members) == 2
    catalog.close()


def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
