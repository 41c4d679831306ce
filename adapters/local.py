"""Local and network folders: ``file://`` URIs and plain paths.

Keys are the path relative to the scanned folder, percent-encoded from its raw bytes
(``urllib.parse.quote_from_bytes``), so that any name the file system holds, including
names that are not valid UTF-8, has an exact, storable key. Record URIs are
``Path.resolve().as_uri()``.

Symbolic links are not followed unless the source sets ``follow_symlinks = true``: a
link is not a copy, and the redirect action makes links. When they are followed, a
folder reached twice (a loop) is listed once and a broken link is reported.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat as stat_mod
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlsplit

from dam_dedupe import hookimpl
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import AssetError, AssetGone, SourceError
from dam_dedupe.records import AssetRecord, ListingProblem, SourceSpec

XATTR_PREFIX = "user.dam_dedupe."
SIDECAR_SUFFIX = ".dam-dedupe.json"


def path_of(uri: str) -> Path:
    """Return the folder a ``file://`` URI or a plain path names."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(os.fsdecode(unquote_to_bytes(parts.path)))
    return Path(uri)


class LocalAdapter(SourceAdapter):
    """A folder tree on a local or mounted network file system."""

    scheme = "file"
    description = "local and network folders (file:// URIs and plain paths)"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.root = path_of(spec.uri).resolve()
        self.follow_symlinks = bool(spec.option("follow_symlinks", False))

    # -- keys and paths -----------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The absolute path of a key."""
        return self.root / os.fsdecode(unquote_to_bytes(key))

    def key_for(self, path: Path) -> str:
        """The key of an absolute path under the root."""
        return quote_from_bytes(os.fsencode(path.relative_to(self.root)), safe="/")

    def record_for(self, path: Path, st: os.stat_result) -> AssetRecord:
        """Build the record of one file from its ``stat``."""
        return AssetRecord(
            source=self.spec.uri,
            key=self.key_for(path),
            uri=path.as_uri(),
            size=st.st_size,
            modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
            etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
            name=os.fsencode(path.name).decode("utf-8", "replace"),
        )

    # -- listing -------------------------------------------------------------------------

    def list_assets(self) -> Iterator[AssetRecord | ListingProblem]:
        """Walk the tree depth-first; unreadable folders and broken links become problems."""
        if not self.root.is_dir():
            raise SourceError(f"{self.root} is not a folder that can be read")
        seen_dirs: set[tuple[int, int]] = set()
        yield from self._walk(self.root, seen_dirs)

    def _walk(self, folder: Path, seen_dirs: set[tuple[int, int]]) -> Iterator[AssetRecord | ListingProblem]:
        try:
            st = folder.stat()
        except OSError as exc:
            yield ListingProblem(folder.as_uri(), f"cannot read folder: {exc.strerror}")
            return
        if (st.st_dev, st.st_ino) in seen_dirs:
            yield ListingProblem(folder.as_uri(), "folder reached twice through a symbolic link (loop); listed once")
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            yield ListingProblem(folder.as_uri(), f"cannot list folder: {exc.strerror}")
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_symlink() and not self.follow_symlinks:
                    continue
                if entry.is_dir():
                    yield from self._walk(path, seen_dirs)
                elif entry.is_file():
                    yield self.record_for(path, entry.stat())
                elif entry.is_symlink():
                    yield ListingProblem(path.as_uri(), "broken symbolic link")
            except OSError as exc:
                yield ListingProblem(path.as_uri(), f"cannot read: {exc.strerror}")

    # -- reading -------------------------------------------------------------------------

    def open(self, record: AssetRecord) -> BinaryIO:
        """Open the file for reading."""
        try:
            return self.path_for(record.key).open("rb")
        except FileNotFoundError as exc:
            raise AssetGone("the file is gone") from exc
        except OSError as exc:
            raise AssetError(f"cannot open: {exc.strerror}") from exc

    def stat(self, key: str) -> AssetRecord | None:
        """The current record of a key, or ``None`` if no regular file is there."""
        path = self.path_for(key)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return self.record_for(path, st)

    # -- write side ------------------------------------------------------------------------

    def get_tags(self, record: AssetRecord) -> dict[str, str]:
        """Tags from extended attributes (``user.dam_dedupe.*``), else from the sidecar file."""
        path = self.path_for(record.key)
        sidecar = _sidecar(path)
        if sidecar.exists():
            return dict(json.loads(sidecar.read_text(encoding="utf-8")))
        try:
            names = os.listxattr(path)
        except OSError:
            return {}
        return {
            name[len(XATTR_PREFIX) :]: os.getxattr(path, name).decode("utf-8")
            for name in names
            if name.startswith(XATTR_PREFIX)
        }

    def set_tags(self, record: AssetRecord, tags: Mapping[str, str]) -> None:
        """Write tags as extended attributes where the file system has them, else as a sidecar JSON file."""
        path = self.path_for(record.key)
        try:
            for name in os.listxattr(path):
                if name.startswith(XATTR_PREFIX) and name[len(XATTR_PREFIX) :] not in tags:
                    os.removexattr(path, name)
            for key, value in tags.items():
                os.setxattr(path, XATTR_PREFIX + key, value.encode("utf-8"))
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)):
                raise AssetError(f"cannot set tags: {exc.strerror}") from exc
        sidecar = _sidecar(path)
        if tags:
            sidecar.write_text(json.dumps(dict(tags), ensure_ascii=False, indent=1), encoding="utf-8")
        else:
            sidecar.unlink(missing_ok=True)

    def copy(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Copy bytes and times to ``dest_key``, creating folders; never overwrite."""
        src, dest = self.path_for(record.key), self.path_for(dest_key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise AssetError(f"will not overwrite {dest.as_uri()}")
        shutil.copy2(src, dest)
        return self.record_for(dest, dest.stat())

    def move(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Move within the tree (a rename on one file system); never overwrite."""
        src, dest = self.path_for(record.key), self.path_for(dest_key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise AssetError(f"will not overwrite {dest.as_uri()}")
        shutil.move(src, dest)
        return self.record_for(dest, dest.stat())

    def delete(self, record: AssetRecord) -> dict[str, str]:
        """Remove the file, refusing if it changed since ``record`` was taken."""
        current = self.stat(record.key)
        if current is None:
            raise AssetGone("the file is gone")
        if (current.size, current.etag) != (record.size, record.etag):
            raise AssetError("the file changed since it was checked; not deleted")
        self.path_for(record.key).unlink()
        return {}

    def write_object(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> AssetRecord:
        """Write a small file; ``metadata`` goes into its tags."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        record = self.record_for(path, path.stat())
        if metadata:
            self.set_tags(record, metadata)
        return record

    # -- links: a local-only capability the redirect action uses -------------------------------

    def make_link(self, key: str, target_key: str, hard: bool = False) -> None:
        """Make ``key`` a link to ``target_key``: a relative symbolic link, or a hard link; never overwrite."""
        path, target = self.path_for(key), self.path_for(target_key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if hard:
                os.link(target, path)
            else:
                os.symlink(os.path.relpath(target, path.parent), path)
        except OSError as exc:
            raise AssetError(f"cannot link {path.as_uri()} to {target.as_uri()}: {exc.strerror}") from exc

    def is_link_to(self, key: str, target_key: str) -> bool:
        """``True`` if ``key`` is a symbolic link resolving to ``target_key``, or a hard link to the same file."""
        path, target = self.path_for(key), self.path_for(target_key)
        try:
            st = path.lstat()
            if stat_mod.S_ISLNK(st.st_mode):
                return path.resolve() == target.resolve()
            target_st = target.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (target_st.st_dev, target_st.st_ino)

    def remove_link(self, key: str, target_key: str) -> None:
        """Remove ``key`` if it is a link to ``target_key`` (never a file holding its own bytes)."""
        if not self.is_link_to(key, target_key):
            raise AssetError(f"{self.path_for(key).as_uri()} is not a link to {self.path_for(target_key).as_uri()}")
        self.path_for(key).unlink()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


@hookimpl
def dam_dedupe_adapters() -> list[type[SourceAdapter]]:
    """Contribute the local folder adapter."""
    return [LocalAdapter]
