"""From fingerprints in the catalog to stored clusters with canonicals and evidence."""

from __future__ import annotations

import hashlib
import logging
from array import array
from collections.abc import Callable, Iterator

from dam_dedupe.canonical import choose_canonical, make_rules
from dam_dedupe.catalog import Catalog, StoredCluster
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.matcher.compare import compare_many
from dam_dedupe.matcher.grouping import find_groups_streamed
from dam_dedupe.records import Cluster, Fingerprint, Member

log = logging.getLogger(__name__)

MatchProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` while matching: stage ``grouping`` (distinct images
placed in a group, many alone), then ``explaining`` (clusters whose members are compared with the canonical)."""


def cluster_id(members: list[Member]) -> str:
    """A stable id: derived from the smallest content hash among the members."""
    anchor = min(m.fingerprint.sha256 for m in members)
    return "c-" + hashlib.sha256(anchor.encode()).hexdigest()[:16]


def build_clusters(
    catalog: Catalog, config: Config, host: Host, progress: MatchProgress | None = None
) -> list[Cluster]:
    """Match every present image, choose canonicals, explain each member, store and announce the clusters.

    An object listed under two overlapping sources is one asset (by URI), not two copies.
    Fingerprints are streamed out of the catalog and only summarised; whole fingerprints with
    their thumbnails are loaded a batch of candidates at a time and one cluster at a time.
    ``progress``, when given, is told how matching goes on (a large library takes minutes).
    """
    ids = array("q")  # asset id by the index the matcher knows it by: 8 bytes an image

    def summaries() -> Iterator[Fingerprint]:
        for asset in catalog.images_streamed():
            if asset.fingerprint is not None:
                ids.append(asset.id)
                yield asset.fingerprint

    def load(indices: list[int]) -> dict[int, Fingerprint]:
        by_id = catalog.assets_by_id(ids[i] for i in indices)
        return {i: fp for i in indices if (fp := by_id[ids[i]].fingerprint) is not None}

    def grouping(done: int, total: int) -> None:
        if progress is not None:
            progress("grouping", done, total)

    settings = config.matching
    groups = find_groups_streamed(summaries(), settings, load, grouping)
    rules = make_rules(config.authoritative)
    clusters: list[Cluster] = []
    stored: list[StoredCluster] = []
    for done, group in enumerate(groups, start=1):
        if progress is not None:
            progress("explaining", done, len(groups))
        assets = catalog.assets_by_id(ids[i] for i in group)
        images = [assets[ids[i]] for i in group]
        members = [Member(asset.record, asset.fingerprint) for asset in images if asset.fingerprint is not None]
        cluster = Cluster(cluster_id(members), members)
        choose_canonical(cluster, config.policy, rules, host.hook)
        canonical = cluster.canonical
        assert canonical is not None
        explained = [Member(canonical.asset, canonical.fingerprint, "exact", {"relation": "canonical"})]
        others = [member for member in members if member is not canonical]
        comparisons = compare_many(canonical.fingerprint, [member.fingerprint for member in others], settings)
        for member, comparison in zip(others, comparisons, strict=True):
            if comparison is None:
                reason = "not a copy of the canonical under these settings"
                log.warning("%s left out of %s: %s", member.asset.uri, cluster.id, reason)
                continue
            explained.append(Member(member.asset, member.fingerprint, comparison.match, comparison.evidence))
        if len(explained) < 2:
            continue
        cluster.members, cluster.canonical = explained, explained[0]
        clusters.append(cluster)
        id_of = {asset.record.uri: asset.id for asset in images}
        stored.append(
            StoredCluster(
                cluster.id,
                id_of[canonical.asset.uri],
                cluster.canonical_reason,
                settings.preset,
                [(id_of[m.asset.uri], m.match, m.evidence) for m in explained],
            )
        )
    catalog.replace_clusters(stored)
    for cluster in clusters:
        host.hook.dam_dedupe_cluster_found(cluster=cluster)
    return clusters
