"""From fingerprints in the catalog to stored clusters with canonicals and evidence."""

from __future__ import annotations

import hashlib
import logging
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import cast

from dam_dedupe.canonical import Rule, choose_canonical, make_rules
from dam_dedupe.catalog import Catalog, StoredCluster
from dam_dedupe.config import Config
from dam_dedupe.derivatives import derivative_relation
from dam_dedupe.host import Host
from dam_dedupe.matcher.compare import compare_pairs, copies_kept
from dam_dedupe.matcher.grouping import IndexFactory, Verifier, find_groups_streamed
from dam_dedupe.matcher.neighbours import CandidateIndex
from dam_dedupe.records import Cluster, Fingerprint, MatchKind, Member

log = logging.getLogger(__name__)

MatchProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` while matching: stage ``grouping`` (distinct images
placed in a group, many alone), then ``explaining`` (clusters whose members are compared with the canonical)."""

CANONICAL: dict[str, object] = {"relation": "canonical"}
"""The evidence stored for a cluster's canonical."""
EXPLAINED_AT_ONCE = 512
"""Members whose thumbnails are loaded and compared with their canonicals at once: those of many
small clusters together (a library has thousands of them, and each call has its cost), those of the
most-copied image a part at a time (it may have thousands of copies, and a thumbnail is 4 KiB)."""


def cluster_id(members: list[Member]) -> str:
    """A stable id: derived from the smallest content hash among the members."""
    anchor = min(m.fingerprint.sha256 for m in members)
    return "c-" + hashlib.sha256(anchor.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Matched:
    """What a match found: clusters stored, and the copies in them besides the canonicals."""

    clusters: int
    copies: int


def build_clusters(
    catalog: Catalog,
    config: Config,
    host: Host,
    progress: MatchProgress | None = None,
    index: IndexFactory = CandidateIndex,
    verifier: Verifier | None = None,
) -> Matched:
    """Match every present image, choose canonicals, explain each member, store and announce the clusters.

    An object listed under two overlapping sources is one asset (by URI), not two copies.
    Memory stays flat however large the library: only the hash codes the index needs are held
    (:func:`~dam_dedupe.matcher.grouping.find_groups_streamed`); whole fingerprints with their
    thumbnails are loaded a batch of candidates at a time and one cluster at a time, and each
    cluster is stored as soon as it is explained, then read back one at a time for the
    ``dam_dedupe_cluster_found`` listeners (if a plugin listens and does not decline, see
    :meth:`~dam_dedupe.host.Host.listened`).
    ``progress``, when given, is told how matching goes on (a large library takes minutes).
    ``index`` builds the candidate index: in this process, or sharded over a Dask cluster
    (:class:`~dam_dedupe.dask_index.DaskIndex`), with the same clusters either way; ``verifier``, when
    given, verifies the candidate pairs (:class:`~dam_dedupe.dask_verify.DaskVerifier`: over the
    cluster), again with the same clusters.
    """
    ids = array("q")  # asset id by the index the matcher knows it by: 8 bytes an image

    def summaries() -> Iterator[Fingerprint]:
        for asset_id, fingerprint in catalog.fingerprints_streamed():
            ids.append(asset_id)
            yield fingerprint

    def load(indices: list[int]) -> dict[int, Fingerprint]:
        by_id = catalog.fingerprints_by_id(ids[i] for i in indices)
        return {i: by_id[ids[i]] for i in indices if ids[i] in by_id}

    def grouping(done: int, total: int) -> None:
        if progress is not None:
            progress("grouping", done, total)

    counts = [0, 0]

    def explained() -> Iterator[StoredCluster]:
        rules = make_rules(config.authoritative)
        done = 0
        for chunk in _chunks(groups):
            for stored in _explained(catalog, config, host, [[ids[i] for i in group] for group in chunk], rules):
                counts[0] += 1
                counts[1] += len(stored.members) - 1
                yield stored
            done += len(chunk)
            if progress is not None:
                progress("explaining", done, len(groups))

    with catalog.match_lock(), copies_kept():  # copies_kept: a member is not measured again against its verifier
        groups = find_groups_streamed(summaries(), config.matching, load, grouping, index, verifier)
        catalog.replace_clusters(explained())
    if host.listened("dam_dedupe_cluster_found"):
        for stored in catalog.clusters_streamed():
            host.hook.dam_dedupe_cluster_found(cluster=_announced(catalog, stored))
    return Matched(*counts)


def _chunks(groups: list[list[int]]) -> Iterator[list[list[int]]]:
    """Consecutive groups with at most ``EXPLAINED_AT_ONCE`` members in all (a larger group alone)."""
    chunk: list[list[int]] = []
    size = 0
    for group in groups:
        if chunk and size + len(group) > EXPLAINED_AT_ONCE:
            yield chunk
            chunk, size = [], 0
        chunk.append(group)
        size += len(group)
    if chunk:
        yield chunk


def _explained(
    catalog: Catalog, config: Config, host: Host, groups: list[list[int]], rules: dict[str, Rule]
) -> list[StoredCluster]:
    """Groups (of asset ids) as stored clusters: each one's canonical chosen, every other member
    explained against it (those that are not a copy of it under the settings left out), a group
    left out when none is left.

    The canonicals are chosen from the members without their thumbnails, and the thumbnails are
    loaded ``EXPLAINED_AT_ONCE`` members at a time, as the comparisons need them."""
    settings = config.matching
    assets = catalog.assets_by_id((asset_id for group in groups for asset_id in group), thumbnails=False)
    clusters: list[tuple[Cluster, int, list[tuple[int, str, dict[str, object]]]]] = []
    asked: list[tuple[int, int, Member]] = []  # (cluster, asset id, member) for every member but the canonicals
    for group in groups:
        images = [assets[asset_id] for asset_id in group]
        members = [Member(asset.record, asset.fingerprint) for asset in images if asset.fingerprint is not None]
        cluster = Cluster(cluster_id(members), members)
        choose_canonical(cluster, config.policy, rules, host.hook)
        canonical = cluster.canonical
        assert canonical is not None
        id_of = {asset.record.uri: asset.id for asset in images}
        canonical_id = id_of[canonical.asset.uri]
        clusters.append((cluster, canonical_id, [(canonical_id, "exact", CANONICAL)]))
        asked += [(len(clusters) - 1, id_of[m.asset.uri], m) for m in members if m is not canonical]
    for start in range(0, len(asked), EXPLAINED_AT_ONCE):
        part = asked[start : start + EXPLAINED_AT_ONCE]
        thumbnails = catalog.thumbnails({clusters[n][1] for n, _, _ in part} | {asset_id for _, asset_id, _ in part})
        pairs = []
        for n, asset_id, member in part:
            cluster, canonical_id, _ = clusters[n]
            assert cluster.canonical is not None
            whole = replace(cluster.canonical.fingerprint, thumbnail=thumbnails.get(canonical_id))
            pairs.append((whole, replace(member.fingerprint, thumbnail=thumbnails.get(asset_id))))
        for (n, asset_id, member), comparison in zip(part, compare_pairs(pairs, settings), strict=True):
            cluster, _, explained = clusters[n]
            if comparison is None:
                reason = "not a copy of the canonical under these settings"
                log.warning("%s left out of %s: %s", member.asset.uri, cluster.id, reason)
                continue
            canonical = cluster.canonical
            assert canonical is not None
            match, evidence = derivative_relation(
                canonical.fingerprint, member.fingerprint, comparison.match, comparison.evidence
            )
            explained.append((asset_id, match, evidence))
    return [
        StoredCluster(cluster.id, explained[0][0], cluster.canonical_reason, settings.preset, explained)
        for cluster, _, explained in clusters
        if len(explained) > 1
    ]


def _announced(catalog: Catalog, stored: StoredCluster) -> Cluster:
    """A stored cluster as the ``dam_dedupe_cluster_found`` hook is told of it, canonical first."""
    assets = catalog.assets_by_id(asset_id for asset_id, _, _ in stored.members)
    canonical: list[Member] = []
    others: list[Member] = []
    for asset_id, match, evidence in stored.members:
        asset = assets[asset_id]
        assert asset.fingerprint is not None
        member = Member(asset.record, asset.fingerprint, cast(MatchKind, match), evidence)
        (canonical if asset_id == stored.canonical_asset_id else others).append(member)
    return Cluster(stored.id, canonical + others, canonical[0], stored.canonical_reason)
