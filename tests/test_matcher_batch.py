"""Verifying many pairs at once gives the verdicts one pair at a time gives, and matching reads the
catalog in a stream: fingerprints without asset records, whole ones by id, clusters one at a time."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from dam_dedupe.catalog import open_catalog
from dam_dedupe.clustering import build_clusters
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.matcher import PRESETS, verify
from dam_dedupe.matcher.compare import compare, compare_pairs, copies_kept, judge, judge_many
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec
from tests.test_matcher_groups import ORIGINAL, SOURCE, fingerprint, scene, window

BALANCED = PRESETS["balanced"]
compare_module = importlib.import_module("dam_dedupe.matcher.compare")  # the package exports compare(), a function


def library() -> list[Fingerprint]:
    """Copies of one picture (re-encoded, resized, cropped 4% a side, greyscale, turned, brighter),
    a shifted view of it, a darker version and two other pictures."""
    small = ORIGINAL.resize((ORIGINAL.width // 2, ORIGINAL.height // 2), Image.Resampling.LANCZOS)
    return [
        fingerprint(ORIGINAL, quality=92),
        fingerprint(ORIGINAL, quality=55),
        fingerprint(small, quality=80),
        fingerprint(window(ORIGINAL, 0.04, 0.04, 0.92, 0.92), quality=85),
        fingerprint(ORIGINAL.convert("L"), quality=85),
        fingerprint(ORIGINAL.transpose(Image.Transpose.ROTATE_90), quality=85),
        fingerprint(ImageEnhance.Brightness(ORIGINAL).enhance(1.15), quality=85),
        fingerprint(window(SOURCE, 0.09, 0.02, 0.9, 0.9), quality=85),
        fingerprint(ImageEnhance.Brightness(ORIGINAL).enhance(0.35), quality=85),
        fingerprint(scene(2), quality=85),
        fingerprint(scene(3).resize((600, 600)), "PNG"),
    ]


def test_a_batch_of_pairs_gets_the_verdicts_each_pair_gets_alone() -> None:
    fingerprints = library()
    pairs = [
        (a, b, symmetry) for a, b in itertools.permutations(fingerprints, 2) for symmetry in ("identity", "rotate-90")
    ]
    together = judge_many(pairs, BALANCED)
    alone = [judge(a, b, symmetry, BALANCED) for a, b, symmetry in pairs]
    assert together == alone
    # Both verdicts, copies and not, are in the batch: it tests the two paths, not one.
    assert 10 < sum(verdict is not None for verdict in together) < len(pairs) - 10


def test_explaining_many_members_at_once_gives_each_member_its_own_evidence() -> None:
    canonical, *others = library()
    together = compare_pairs([(canonical, other) for other in others], BALANCED)
    assert together == [compare(canonical, other, BALANCED) for other in others]
    kinds = [None if found is None else found.match for found in together]
    assert kinds[:6] == ["near", "near", "near", "near", "transformed", "near"]
    assert kinds[6:] == [None, None, None, None]  # the shifted view, the dark version, two other pictures
    # Pairs of several clusters at once (each member against its own canonical) get the same answers.
    mixed = [(others[0], canonical), (others[4], others[1]), (others[7], canonical), (canonical, others[2])]
    assert compare_pairs(mixed, BALANCED) == [compare(a, b, BALANCED) for a, b in mixed]


def test_a_copy_verified_while_a_match_runs_is_explained_without_measuring_it_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    canonical, copy, *_ = library()
    measured: list[int] = []
    plain = compare_module.plain_verdicts

    def counting(pairs, chromas):  # type: ignore[no-untyped-def]
        measured.append(len(pairs))
        return plain(pairs, chromas)

    monkeypatch.setattr(compare_module, "plain_verdicts", counting)
    monkeypatch.setattr(compare_module, "_plain_kept", OrderedDict())
    monkeypatch.setattr(compare_module, "PLAIN_KEPT", 0)  # thousands of other pairs verified since
    with copies_kept():
        assert judge(canonical, copy, "identity", BALANCED) is not None
        explained = compare(canonical, copy, BALANCED)
    assert explained is not None and sum(measured) == 1
    # Once the match is over nothing is kept: the same pair is measured again.
    assert compare(canonical, copy, BALANCED) == explained and sum(measured) == 2


def test_the_evidence_of_a_kept_copy_is_what_measuring_it_again_gives() -> None:
    # a kept copy is stored packed; re-saved, greyscale and transformed copies must come back exactly
    canonical, *others = library()
    with copies_kept():
        judged = judge_many([(canonical, other, "identity") for other in others], BALANCED)
        kept = [compare(canonical, other, BALANCED) for other in others]
    assert sum(verdict is not None and not verdict.crop_searched for verdict in judged) >= 4
    assert kept == [compare(canonical, other, BALANCED) for other in others]


def catalog_with(tmp_path: Path, fingerprints: list[Fingerprint]):  # type: ignore[no-untyped-def]
    """A catalog listing each fingerprint as a file of its own, plus one listed twice (two sources)."""
    catalog = open_catalog(tmp_path / "catalog.db")
    root = "file:///srv/archive"
    run = catalog.begin_run([root])
    for source in (root, root + "/again"):
        source_id = catalog.source_id(SourceSpec(source, source))
        for n, fp in enumerate(fingerprints if source == root else fingerprints[:1]):
            record = AssetRecord(source, f"f{n}.jpg", f"{root}/f{n}.jpg", fp.size, None, name=f"f{n}.jpg")
            catalog.record_listed(source_id, record, run)
            with catalog.transaction():
                asset = catalog.asset_by_uri(record.uri)
                assert asset is not None
                catalog.store_fingerprint(asset.id, fp)
    return catalog


def test_matching_reads_fingerprints_as_a_stream_and_whole_ones_by_id(tmp_path: Path) -> None:
    fingerprints = library()
    catalog = catalog_with(tmp_path, fingerprints)
    streamed = list(catalog.fingerprints_streamed(chunk=3))
    assets = list(catalog.images_streamed(chunk=3))
    # The same images in the same order as the asset stream (one per URI), without thumbnails
    # (nor the reviewers' previews, which the catalog keeps apart).
    assert [asset_id for asset_id, _ in streamed] == [asset.id for asset in assets]
    stored = [dataclasses.replace(fp, preview=None) for fp in fingerprints]
    assert [fp for _, fp in streamed] == [dataclasses.replace(fp, thumbnail=None) for fp in stored]
    whole = catalog.fingerprints_by_id([asset_id for asset_id, _ in streamed[2:5]])
    assert list(whole.values()) == stored[2:5]
    catalog.close()


def test_clusters_are_stored_and_read_back_one_at_a_time_with_their_evidence(tmp_path: Path) -> None:
    catalog = catalog_with(tmp_path, library())
    matched = build_clusters(catalog, Config(), Host())
    stored = catalog.clusters()
    assert (matched.clusters, matched.copies) == (1, 6)  # the original and its six copies
    assert sorted(catalog.clusters_streamed(), key=lambda c: c.id) == sorted(stored, key=lambda c: c.id)
    (cluster,) = stored
    evidence = {asset_id: (match, found) for asset_id, match, found in cluster.members}
    assert evidence[cluster.canonical_asset_id] == ("exact", {"relation": "canonical"})
    relations = [
        found["relation"] for asset_id, (_, found) in evidence.items() if asset_id != cluster.canonical_asset_id
    ]
    assert any("greyscale" in relation for relation in relations)
    assert any("rotate-90" in relation or "rotate-270" in relation for relation in relations)
    catalog.close()


def test_crop_scores_from_sums_are_the_residuals_of_the_resampled_crops() -> None:
    """The crop search scores every candidate crop from sums without resampling the picture; each
    score must be the mean squared residual of that crop, resampled and normalised, against the
    other picture, along either axis and at both thumbnail sizes (else it picks another crop)."""
    rng = np.random.default_rng(7)
    for side in (32, 64):
        mats, _ = verify._resamplers(side)
        sums = verify._resampler_sums(side)
        big, target = rng.random((side, side)), verify._normalise(rng.random((side, side)))
        some = [0, 5, len(mats) // 2, len(mats) - 1]
        rows, columns = mats[3] @ big, big @ mats[7].T
        by_columns = verify._column_crop_scores(rows, target, sums)[some]
        by_rows = verify._row_crop_scores(columns, target, sums)[some]
        # A stack of pairs gets, row by row, the scores each pair gets alone.
        stacked = verify._column_crop_scores(np.stack([rows, columns]), np.stack([target, target]), sums)
        assert np.allclose(stacked[0][some], by_columns) and np.allclose(
            stacked[1], verify._column_crop_scores(columns, target, sums)
        )
        for k, score_columns, score_rows in zip(some, by_columns, by_rows, strict=True):
            direct_columns = ((verify._normalise(rows @ mats[k].T) - target) ** 2).mean()
            direct_rows = ((verify._normalise(mats[k] @ columns) - target) ** 2).mean()
            assert abs(score_columns - direct_columns) < 1e-4
            assert abs(score_rows - direct_rows) < 1e-4
