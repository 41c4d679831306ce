"""Reviewers' decisions exported from the HTML report: read, used by plans, kept in the catalog.

The file the report exports (read by ``dam-dedupe plan --decisions FILE`` and
``dam-dedupe decisions import FILE``)::

    {"exported_by": "A. Reviewer", "exported_at": "2026-11-25T09:30:00Z",
     "decisions": [{"cluster": "c-…", "decision": "exclude"},
                   {"cluster": "c-…", "decision": "canonical", "uri": "file:///…"}]}

``decision`` is ``exclude``, ``keep_all``, ``not_duplicates`` (the whole cluster) or
``exclude_member``, ``canonical`` (one member, named by ``uri``). A plan records the file's
SHA-256, who exported it and what each decision did, so that sign-off covers the reviewers'
choices too. Imported decisions are stored with the cluster's members (URI and SHA-256 of
each) as they were, and stand until a member changes, joins or leaves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from dam_dedupe.catalog import Catalog, DecisionKind, ReviewDecision
from dam_dedupe.errors import ConfigError

KINDS: tuple[str, ...] = get_args(DecisionKind)
CLUSTER_DECISIONS = ("exclude", "keep_all", "not_duplicates")
MEMBER_DECISIONS = ("exclude_member", "canonical")


@dataclass(frozen=True, slots=True)
class Decision:
    """One reviewer decision: on a cluster, or on one member of it (``uri``)."""

    cluster: str
    decision: DecisionKind
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class Decisions:
    """A decisions file as read: who exported it, when, its decisions and the file's SHA-256."""

    exported_by: str
    exported_at: str
    items: tuple[Decision, ...]
    sha256: str

    def for_cluster(self, cluster_id: str) -> list[Decision]:
        """The decisions about one cluster, in file order."""
        return [d for d in self.items if d.cluster == cluster_id]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import stored and what it refused, with the reason for each refusal."""

    stored: int
    refused: tuple[tuple[Decision, str], ...]


def read_decisions(path: str | Path) -> Decisions:
    """Read and check a decisions file; raise :class:`~dam_dedupe.errors.ConfigError` naming what is wrong."""
    try:
        raw = Path(path).read_bytes()
        doc: Any = json.loads(raw)
    except FileNotFoundError as exc:
        raise ConfigError(f"decisions file {path} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"decisions file {path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("decisions"), list):
        raise ConfigError(f"{path}: expected an object with a 'decisions' list, as the HTML report exports")
    by, at = doc.get("exported_by"), doc.get("exported_at")
    if not isinstance(by, str) or not by.strip() or not isinstance(at, str) or not at:
        raise ConfigError(f"{path}: 'exported_by' (the reviewer's name) and 'exported_at' are required")
    items = tuple(_decision(path, number, item) for number, item in enumerate(doc["decisions"], 1))
    return Decisions(by.strip(), at, items, hashlib.sha256(raw).hexdigest())


def _decision(path: str | Path, number: int, item: Any) -> Decision:
    if not isinstance(item, dict) or not isinstance(item.get("cluster"), str):
        raise ConfigError(f"{path}: decision {number} needs a 'cluster' id")
    kind, uri = item.get("decision"), item.get("uri")
    if kind not in KINDS:
        raise ConfigError(f"{path}: decision {number} is {kind!r}; known: {', '.join(KINDS)}")
    if kind in MEMBER_DECISIONS and not isinstance(uri, str):
        raise ConfigError(f"{path}: decision {number} ({kind}) needs the member's 'uri'")
    return Decision(item["cluster"], kind, uri if kind in MEMBER_DECISIONS else None)


def import_decisions(catalog: Catalog, decisions: Decisions) -> ImportResult:
    """Store the decisions that fit the catalog's current clusters, with each cluster's member contents.

    A decision is refused when its cluster no longer exists (rescanned since the report)
    or names a URI that is not a member. Stored decisions replace earlier ones on the
    same clusters.
    """
    contents = catalog.cluster_contents()
    stored: list[ReviewDecision] = []
    refused: list[tuple[Decision, str]] = []
    for entry in decisions.items:
        if entry.cluster not in contents:
            refused.append((entry, "no such cluster in the catalog now (was it rescanned since the report?)"))
        elif entry.uri is not None and entry.uri not in {uri for uri, _sha in contents[entry.cluster]}:
            refused.append((entry, f"{entry.uri} is not a member of {entry.cluster}"))
        else:
            stored.append(
                ReviewDecision(
                    entry.cluster,
                    entry.decision,
                    entry.uri,
                    contents[entry.cluster],
                    decisions.exported_by,
                    decisions.exported_at,
                )
            )
    catalog.replace_decisions(stored)
    return ImportResult(len(stored), tuple(refused))
