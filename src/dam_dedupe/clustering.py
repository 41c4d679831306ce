"""From fingerprints in the catalog to stored clusters with canonicals and evidence."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from dam_dedupe.canonical import choose_canonical, make_rules
from dam_dedupe.catalog import Catalog, StoredCluster
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.matcher import compare, find_groups
from dam_dedupe.matcher.grouping import with_thumbnails
from dam_dedupe.records import Cluster, Member

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
    Thumbnails are loaded only for the images the matcher verifies and the clusters' members.
    ``progress``, when given, is told how matching goes on (a large library takes minutes).
    """
    listed = catalog.images(thumbnails=False)
    images = list({asset.record.uri: asset for asset in reversed(listed)}.values())[::-1]
    fingerprints = [asset.fingerprint for asset in images if asset.fingerprint is not None]
    settings = config.matching

    def thumbnails(indices: list[int]) -> dict[int, bytes]:
        by_id = catalog.thumbnails(images[i].id for i in indices)
        return {i: by_id[images[i].id] for i in indices if images[i].id in by_id}

    def grouping(done: int, total: int) -> None:
        if progress is not None:
            progress("grouping", done, total)

    groups = find_groups(fingerprints, settings, thumbnails, grouping)
    fingerprints = with_thumbnails(fingerprints, (i for group in groups for i in group), thumbnails)
    rules = make_rules(config.authoritative)
    clusters: list[Cluster] = []
    stored: list[StoredCluster] = []
    for done, group in enumerate(groups, start=1):
        if progress is not None:
            progress("explaining", done, len(groups))
        members = [Member(images[i].record, fingerprints[i]) for i in group]
        cluster = Cluster(cluster_id(members), members)
        choose_canonical(cluster, config.policy, rules, host.hook)
        canonical = cluster.canonical
        assert canonical is not None
        explained = [Member(canonical.asset, canonical.fingerprint, "exact", {"relation": "canonical"})]
        for member in members:
            if member is canonical:
                continue
            comparison = compare(canonical.fingerprint, member.fingerprint, settings)
            if comparison is None:
                reason = "not a copy of the canonical under these settings"
                log.warning("%s left out of %s: %s", member.asset.uri, cluster.id, reason)
                continue
            explained.append(Member(member.asset, member.fingerprint, comparison.match, comparison.evidence))
        if len(explained) < 2:
            continue
        cluster.members, cluster.canonical = explained, explained[0]
        clusters.append(cluster)
        ids = {images[i].record.uri: images[i].id for i in group}
        stored.append(
            StoredCluster(
                cluster.id,
                ids[canonical.asset.uri],
                cluster.canonical_reason,
                settings.preset,
                [(ids[m.asset.uri], m.match, m.evidence) for m in explained],
            )
        )
    catalog.replace_clusters(stored)
    for cluster in clusters:
        host.hook.dam_dedupe_cluster_found(cluster=cluster)
    return clusters
