"""The drive's folder tree as Graph's delta query reveals it, and the cursor that carries it between scans.

On SharePoint and OneDrive for Business, delta works only on a drive's root, and its
items carry ``parentReference.id`` but no path. So the adapter keeps every item's name
and parent by id, rebuilds paths from parents, and filters the root's delta down to
the scanned folder. The tree travels inside the :class:`~dam_dedupe.records.DeltaCursor`
value (compressed JSON), so the next scan can name the paths of items it is only told
the id of: deleted items, and the contents of folders that moved or were renamed.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

CURSOR_PREFIX = "graph-delta.v1:"


class Unresolved:
    """A path that cannot be named yet: some ancestor has not been seen."""


UNRESOLVED = Unresolved()


@dataclass(slots=True)
class Node:
    """One drive item as far as paths need it."""

    name: str
    parent: str | None
    folder: bool


@dataclass(slots=True)
class DriveTree:
    """Drive items by id, enough to name any item's path relative to a scope folder.

    Attributes:
        scope: the id of the scanned folder (the drive root for a whole library).
        nodes: items by id: every folder of the drive, and the files under the scope.
    """

    scope: str
    nodes: dict[str, Node] = field(default_factory=dict)

    def update(self, item: Mapping[str, Any]) -> None:
        """Record a (non-deleted) driveItem from a delta or children response."""
        parent = None if "root" in item else (item.get("parentReference") or {}).get("id")
        container = any(facet in item for facet in ("folder", "root", "package"))  # a package: a OneNote notebook
        self.nodes[str(item["id"])] = Node(str(item.get("name", "")), parent, container)

    def remove(self, item_id: str) -> None:
        """Forget an item (it was deleted)."""
        self.nodes.pop(item_id, None)

    def changes_place(self, item: Mapping[str, Any]) -> bool:
        """Whether a driveItem from a delta round has a new name or parent (was moved or renamed)."""
        node = self.nodes.get(str(item["id"]))
        parent = None if "root" in item else (item.get("parentReference") or {}).get("id")
        return node is not None and (node.name, node.parent) != (str(item.get("name", "")), parent)

    def is_folder(self, item_id: str) -> bool:
        """Whether a known item is a folder."""
        node = self.nodes.get(item_id)
        return node is not None and node.folder

    def path(self, item_id: str) -> str | Unresolved | None:
        """The item's path relative to the scope folder.

        Returns ``None`` when the item is outside the scope (or is the scope itself), and
        :data:`UNRESOLVED` when an ancestor is not known.
        """
        names: list[str] = []
        current: str | None = item_id
        seen: set[str] = set()
        while current != self.scope:
            if current is None:
                return None
            node = self.nodes.get(current)
            if node is None or current in seen:
                return UNRESOLVED
            seen.add(current)
            names.append(node.name)
            current = node.parent
        return "/".join(reversed(names)) or None

    def files_under(self, folder_id: str) -> Iterator[str]:
        """The ids of the known files anywhere below a folder."""
        children: dict[str, list[str]] = {}
        for item_id, node in self.nodes.items():
            if node.parent is not None:
                children.setdefault(node.parent, []).append(item_id)
        stack = [folder_id]
        while stack:
            for child in children.get(stack.pop(), ()):
                if self.nodes[child].folder:
                    stack.append(child)
                else:
                    yield child

    def pruned(self) -> DriveTree:
        """The tree without files outside the scope: all a later round needs."""
        inside: dict[str | None, bool] = {self.scope: True, None: False}

        def under_scope(folder_id: str | None) -> bool:
            chain: list[str | None] = []
            while folder_id not in inside:
                chain.append(folder_id)
                node = self.nodes.get(folder_id) if folder_id is not None else None
                folder_id = node.parent if node is not None and folder_id not in chain[:-1] else None
            for visited in chain:
                inside[visited] = inside[folder_id]
            return inside[folder_id]

        kept = {k: n for k, n in self.nodes.items() if n.folder or under_scope(n.parent)}
        return DriveTree(self.scope, kept)


@dataclass(frozen=True, slots=True)
class DeltaState:
    """What one scan leaves for the next: where the delta resumes and the tree so far.

    Attributes:
        delta_link: Graph's ``@odata.deltaLink``.
        drive_id: the drive listed.
        tree: the folder tree (and in-scope files) as of ``delta_link``.
    """

    delta_link: str
    drive_id: str
    tree: DriveTree

    def encode(self) -> str:
        """The cursor value: a prefix and zlib-compressed, base64url JSON."""
        nodes = {k: [n.parent, n.name, int(n.folder)] for k, n in self.tree.nodes.items()}
        body = {"link": self.delta_link, "drive": self.drive_id, "scope": self.tree.scope, "nodes": nodes}
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return CURSOR_PREFIX + base64.urlsafe_b64encode(zlib.compress(raw, 6)).decode("ascii")

    @classmethod
    def decode(cls, value: str) -> DeltaState | None:
        """Read a cursor value; ``None`` if it is not one this version wrote (the scan then starts afresh)."""
        if not value.startswith(CURSOR_PREFIX):
            return None
        try:
            body = json.loads(zlib.decompress(base64.urlsafe_b64decode(value[len(CURSOR_PREFIX) :])))
            nodes = {k: Node(str(name), parent, bool(folder)) for k, (parent, name, folder) in body["nodes"].items()}
            return cls(str(body["link"]), str(body["drive"]), DriveTree(str(body["scope"]), nodes))
        except (ValueError, KeyError, TypeError, zlib.error):
            return None
