"""Reviewers' decisions on clusters, exported by the HTML review and read by ``dam-dedupe plan --decisions``.

The file is JSON::

    {"exported_by": "Mei Ling Chan", "exported_at": "2026-11-25T09:30:00+08:00",
     "decisions": [
        {"cluster": "c-47dab28e9a1794a8", "decision": "not_duplicates"},
        {"cluster": "c-9581d82ed67d82e6", "decision": "exclude_member", "uri": "file:///…/IMG_4006.JPG"},
        {"cluster": "c-a4075b46efa81c6d", "decision": "canonical", "uri": "file:///…/相片 9 🙂.jpg"}]}

Cluster decisions ``exclude``, ``keep_all`` and ``not_duplicates`` leave the whole cluster
out of the plan; ``exclude_member`` leaves one copy alone; ``canonical`` makes another
member the copy to keep. The plan records the file's hash, who exported it and what each
decision did, so that sign-off covers the reviewers' choices too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dam_dedupe.errors import ConfigError

CLUSTER_DECISIONS = ("exclude", "keep_all", "not_duplicates")
MEMBER_DECISIONS = ("exclude_member", "canonical")


@dataclass(frozen=True, slots=True)
class Decision:
    """One reviewer decision: on a cluster, or on one member of it (``uri``)."""

    cluster: str
    decision: str
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


def read_decisions(path: Path) -> Decisions:
    """Read and check a decisions file; raise :class:`ConfigError` naming what is wrong."""
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except FileNotFoundError as exc:
        raise ConfigError(f"decisions file {path} does not exist") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"decisions file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("decisions"), list):
        raise ConfigError(f"decisions file {path} needs a 'decisions' list")
    exported_by = data.get("exported_by")
    if not isinstance(exported_by, str) or not exported_by.strip():
        raise ConfigError(f"decisions file {path} must say who exported it ('exported_by')")
    items = tuple(_decision(path, n, item) for n, item in enumerate(data["decisions"]))
    return Decisions(exported_by, str(data.get("exported_at", "")), items, hashlib.sha256(raw).hexdigest())


def _decision(path: Path, n: int, item: Any) -> Decision:
    where = f"decisions file {path}, decision {n + 1}"
    if not isinstance(item, dict) or not isinstance(item.get("cluster"), str):
        raise ConfigError(f"{where}: needs a 'cluster' id")
    kind = item.get("decision")
    if kind not in CLUSTER_DECISIONS + MEMBER_DECISIONS:
        raise ConfigError(f"{where}: 'decision' must be one of {list(CLUSTER_DECISIONS + MEMBER_DECISIONS)}")
    uri = item.get("uri")
    if kind in MEMBER_DECISIONS and not isinstance(uri, str):
        raise ConfigError(f"{where}: '{kind}' needs the member's 'uri'")
    return Decision(item["cluster"], kind, uri if isinstance(uri, str) else None)
