"""A small library with real image duplicates, scanned into a catalog, and helpers to compare trees.

Imported by the ``test_governance_*`` modules; not a conftest, so each module says what it uses.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dam_dedupe.adapters.local import SIDECAR_SUFFIX, LocalAdapter
from dam_dedupe.catalog import SqlCatalog, open_catalog
from dam_dedupe.config import Config, parse_config
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.conftest import picture, save

QUARANTINE = "_dam-dedupe-quarantine"


@dataclass
class Library:
    """A scanned library: its root, source URI, catalog, plugins and configuration."""

    root: Path
    uri: str
    catalog: SqlCatalog
    host: Host
    config: Config


def build_library(root: Path) -> None:
    """Four JPEG originals in a brand folder; byte-identical copies under other names and folders
    (Traditional Chinese and spaces included); one original without copies; a text file."""
    for n in range(4):
        original = save(picture(n), root / "品牌" / f"master_{n}.jpg", quality=90)
        data = original.read_bytes()
        (root / "Marketing 2026").mkdir(parents=True, exist_ok=True)
        (root / "Marketing 2026" / f"IMG_{4000 + n}.JPG").write_bytes(data)
        if n % 2 == 0:
            (root / "活動相片").mkdir(exist_ok=True)
            (root / "活動相片" / f"相片 {n}.jpg").write_bytes(data)
    save(picture(9), root / "unique.jpg")
    (root / "notes.txt").write_text("not an image\n", encoding="utf-8")


def make_library(tmp_path: Path, catalog: str | None = None) -> Library:
    """Build the library under ``tmp_path/lib``, scan it (exact matching) into the catalog at ``catalog``
    (a SQLite path or a PostgreSQL URL; by default ``tmp_path/catalog.sqlite``)."""
    root = tmp_path / "lib"
    build_library(root)
    config = parse_config({"matching": {"preset": "exact"}, "policy": {"authoritative": [(root / "品牌").as_uri()]}})
    opened = open_catalog(catalog or tmp_path / "catalog.sqlite")
    host = Host()
    run_scan([SourceSpec(root.as_uri())], opened, host, config, workers=1)
    return Library(root, root.as_uri(), opened, host, config)


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file under ``root``: its path relative to ``root``, and its path."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            yield str(path.relative_to(root)), path


def tree_state(root: Path) -> dict[str, str]:
    """Every file under ``root`` by relative path: the SHA-256 of its bytes (links: their target)."""
    return {
        rel: "link:" + os.readlink(path) if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
        for rel, path in _files(root)
    }


def tree_stamp(root: Path) -> dict[str, object]:
    """Every file under ``root`` by relative path: its size, modification time and inode (links: their
    target). Any change a step makes (a copy, a move, a link, a rewrite) shows in it, and it reads no
    file's bytes, so a test can take it at every stop of a process it steps."""
    stamp: dict[str, object] = {}
    for rel, path in _files(root):
        info = path.lstat()
        stamp[rel] = os.readlink(path) if path.is_symlink() else (info.st_size, info.st_mtime_ns, info.st_ino)
    return stamp


def tree_hash(root: Path) -> str:
    """One hash of the whole tree: paths and contents."""
    return hashlib.sha256(repr(sorted(tree_state(root).items())).encode()).hexdigest()


def tags_state(root: Path) -> dict[str, dict[str, str]]:
    """The store-level tags of every regular file, as the local adapter reads them (xattrs, else sidecars)."""
    adapter = LocalAdapter(SourceSpec(root.as_uri()))
    found = {}
    for rel, path in _files(root):
        if path.is_symlink() or path.name.endswith(SIDECAR_SUFFIX):
            continue
        record = adapter.stat(adapter.key_for(path))
        assert record is not None
        tags = adapter.get_tags(record)
        if tags:
            found[rel] = tags
    return found


def tags_of(root: Path, relative: str) -> dict[str, str]:
    """One file's tags, as the local adapter reads them."""
    adapter = LocalAdapter(SourceSpec(root.as_uri()))
    record = adapter.stat(adapter.key_for(root / relative))
    assert record is not None
    return adapter.get_tags(record)


def set_tags(root: Path, relative: str, tags: dict[str, str]) -> None:
    """Give one file these tags (a user's or another tool's), through the local adapter."""
    adapter = LocalAdapter(SourceSpec(root.as_uri()))
    record = adapter.stat(adapter.key_for(root / relative))
    assert record is not None
    adapter.set_tags(record, tags)
