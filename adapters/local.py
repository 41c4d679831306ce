"""Local and network folders: ``file://`` URIs and plain paths.

Keys are the path relative to the scanned folder, percent-encoded from its raw bytes
(``urllib.parse.quote_from_bytes``), so that any name the file system holds, including
names that are not valid UTF-8, has an exact, storable key. Record URIs are
``Path.resolve().as_uri()``; a record's ``object_id`` is ``dev:inode``.

Symbolic links are not followed unless the source sets ``follow_symlinks = true``: a
link is not a copy, and the redirect action makes links. When they are followed, a
folder reached twice (a loop) is listed once and a broken link is reported.

Every write stays inside the root and follows no link, whatever ``follow_symlinks``
says: a key is resolved one folder at a time from a descriptor of the root
(``O_NOFOLLOW | O_DIRECTORY``), a link met on the way is refused with an error naming
it, folders are made one level at a time under their parent's descriptor. New files are
written whole to a temporary name beside the destination (``O_EXCL``), fsynced, linked
into place without replacing anything, and the folder is fsynced: after a crash the
destination holds nothing or the whole file, plus at most a temporary file that the next
write to that name removes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat as stat_mod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlsplit

from dam_dedupe import hookimpl
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import AssetError, AssetGone, SourceError, TransientError
from dam_dedupe.records import AssetRecord, ListingProblem, SourceSpec

XATTR_PREFIX = "user.dam_dedupe."
"""The product's own extended attributes on folders (:data:`MADE_XATTR`)."""
TAG_XATTR_PREFIX = "user."
"""A tag ``dam-dedupe.cluster`` is the extended attribute ``user.dam-dedupe.cluster`` (``getfattr -d FILE``)."""
LEGACY_TAG_PREFIX = XATTR_PREFIX
"""Where tags were kept before (``user.dam_dedupe.dam-dedupe.cluster``): still read, renamed when rewritten."""
SIDECAR_SUFFIX = ".dam-dedupe.json"
TEMP_PREFIX = ".dam-dedupe-part-"
"""A write in progress is ``TEMP_PREFIX`` + a hash of its destination's name, beside it: never listed,
and removed by the next write to that name if a crash left it."""

CHUNK = 1024 * 1024
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
"""``O_NONBLOCK``: a FIFO planted at a key must not hang the open (it is then refused: not a regular file);
reads of regular files ignore it."""
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
"""``link()`` errors of file systems without hard links (FAT, some SMB mounts): fall back to a checked rename."""
NO_XATTRS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}
TRANSIENT = {
    errno.EIO,
    errno.ETIMEDOUT,
    errno.ESTALE,
    errno.EHOSTDOWN,
    errno.EHOSTUNREACH,
    errno.ENOTCONN,
    errno.ECONNRESET,
    errno.EAGAIN,
    errno.EBUSY,
    errno.EINTR,
}
"""Errors of a network mount briefly away (or a busy file): a step that meets one may be tried again."""
MADE_XATTR = XATTR_PREFIX + "made"
"""Marks a folder a write made (the quarantine area, say), so that deletes remove it once empty; a user's
own folders are never removed."""


def path_of(uri: str) -> Path:
    """Return the folder a ``file://`` URI or a plain path names."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(os.fsdecode(unquote_to_bytes(parts.path)))
    return Path(uri)


def object_id(st: os.stat_result) -> str:
    """What the file system says is one file, whatever name reaches it: ``dev:inode``."""
    return f"{st.st_dev}:{st.st_ino}"


@dataclass(frozen=True, slots=True)
class _Walk:
    """A key resolved without following links: the open folders on the way (the root first) and the names."""

    fds: list[int]
    names: list[bytes]

    @property
    def parent(self) -> int:
        """The descriptor of the folder holding the key's last name."""
        return self.fds[-1]

    @property
    def name(self) -> bytes:
        """The key's last name."""
        return self.names[-1]


class LocalAdapter(SourceAdapter):
    """A folder tree on a local or mounted network file system."""

    scheme = "file"
    description = "local and network folders (file:// URIs and plain paths)"
    native_move = True

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
            etag=_etag(st),
            name=os.fsencode(path.name).decode("utf-8", "replace"),
            object_id=object_id(st),
        )

    # -- listing -------------------------------------------------------------------------

    def list_assets(self) -> Iterator[AssetRecord | ListingProblem]:
        """Walk the tree depth-first; unreadable folders and broken links become problems."""
        if not self.root.is_dir():
            raise SourceError(f"{self.root} is not a folder that can be read")
        seen_dirs: set[tuple[int, int]] = set()
        yield from self._walk(self.root, seen_dirs)

    def listing_shards(self) -> list[str] | None:
        """The files at the top of the tree (shard ``""``), then each top-level folder, by name: a share's
        departments are listed side by side on a cluster. ``None`` where links are followed: a link
        from one folder into another would be listed in both shards, where one walk lists it once."""
        if self.follow_symlinks:
            return None
        if not self.root.is_dir():
            raise SourceError(f"{self.root} is not a folder that can be read")
        with os.scandir(self.root) as it:
            folders = [e.name for e in it if e.is_dir(follow_symlinks=False) and not e.name.startswith(TEMP_PREFIX)]
        return ["", *sorted(folders, key=os.fsencode)]

    def list_shard(self, shard: str) -> Iterator[AssetRecord | ListingProblem]:
        """The top-level files (``""``), or everything under one top-level folder."""
        if not shard:
            yield from self._walk(self.root, set(), files_only=True)
        else:
            yield from self._walk(self.root / shard, set())

    def _walk(
        self, folder: Path, seen_dirs: set[tuple[int, int]], files_only: bool = False
    ) -> Iterator[AssetRecord | ListingProblem]:
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
            if entry.name.startswith(TEMP_PREFIX):
                continue  # a write a crash interrupted: never an asset
            try:
                if entry.is_symlink() and not self.follow_symlinks:
                    continue
                if entry.is_dir():
                    if not files_only:
                        yield from self._walk(path, seen_dirs)
                elif entry.is_file():
                    yield self.record_for(path, entry.stat())
                elif entry.is_symlink():
                    yield ListingProblem(path.as_uri(), "broken symbolic link")
            except OSError as exc:
                yield ListingProblem(path.as_uri(), f"cannot read: {exc.strerror}")

    # -- resolving keys without following links ----------------------------------------------

    @contextmanager
    def _resolve(self, key: str, create: bool = False) -> Iterator[_Walk]:
        """Open every folder on the way to ``key`` from the root, refusing links; ``create`` makes missing ones.

        Raises ``FileNotFoundError`` when a folder on the way is missing (and not created).
        """
        names = unquote_to_bytes(key).split(b"/")
        if any(name in (b"", b".", b"..") for name in names):
            raise AssetError(f"not a key under the root: {key!r}")
        try:
            fds = [os.open(self.root, DIR_FLAGS)]
        except OSError as exc:
            message = f"cannot open the scanned folder {self.root} (is it mounted?): {exc.strerror}"
            raise TransientError(message) from exc
        try:
            for depth, name in enumerate(names[:-1]):
                fds.append(self._enter(fds[-1], name, b"/".join(names[: depth + 1]), create))
            yield _Walk(fds, names)
        finally:
            for fd in fds:
                os.close(fd)

    def _enter(self, parent: int, name: bytes, rel: bytes, create: bool) -> int:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            _make_folder(parent, name)
            return self._enter(parent, name, rel, create=False)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                if _is_link(parent, name):
                    raise self._through_link(rel) from exc
                raise AssetError(f"{self._path(rel)} is not a folder") from exc
            raise

    def _path(self, rel: bytes) -> Path:
        return self.root / os.fsdecode(rel)

    def _through_link(self, rel: bytes) -> AssetError:
        """The refusal for a link met on the way to a write, saying where it leads."""
        link = self._path(rel)
        real = Path(os.path.realpath(link))
        if not real.is_relative_to(self.root):
            return AssetError(
                f"refusing to act through the symbolic link {link}: its real path {real} is outside the "
                f"scanned root {self.root}"
            )
        return AssetError(f"refusing to act through the symbolic link {link}: writes never follow links")

    def _open_file(self, walk: _Walk, rel: bytes) -> int:
        """Open the regular file at the end of ``walk`` for reading, refusing a link."""
        try:
            fd = os.open(walk.name, READ_FLAGS, dir_fd=walk.parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._through_link(rel) from exc
            raise
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise AssetError(f"{self._path(rel)} is not a regular file")
        return fd

    # -- reading -------------------------------------------------------------------------

    def open(self, record: AssetRecord) -> BinaryIO:
        """Open the file for reading (through links only when the source follows them)."""
        try:
            if self.follow_symlinks:
                return self.path_for(record.key).open("rb")
            with self._resolve(record.key) as walk:
                return os.fdopen(self._open_file(walk, walk_rel(walk)), "rb")
        except FileNotFoundError as exc:
            raise AssetGone("the file is gone") from exc
        except OSError as exc:
            raise _error("cannot open", exc) from exc

    def stat(self, key: str) -> AssetRecord | None:
        """The current record of a key, or ``None`` if no regular file is there.

        A link on the way is refused (``AssetError``) unless the source follows links.
        """
        path = self.path_for(key)
        try:
            if self.follow_symlinks:
                st = path.stat()
            else:
                with self._resolve(key) as walk:
                    st = os.stat(walk.name, dir_fd=walk.parent, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _error(f"cannot read {path}", exc) from exc
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return self.record_for(path, st)

    # -- write side ------------------------------------------------------------------------

    def get_tags(self, record: AssetRecord) -> dict[str, str]:
        """Tags from the ``user.*`` extended attributes (text values), else from the sidecar file."""
        with self._writing(record.key) as walk:
            sidecar = _read_file(walk.parent, walk.name + SIDECAR_SUFFIX.encode())
            if sidecar is not None:
                return dict(json.loads(sidecar.decode("utf-8")))
            fd = self._open_file(walk, walk_rel(walk))
            try:
                return _xattr_tags(fd)
            except OSError:
                return {}
            finally:
                os.close(fd)

    def tags_kept(self) -> str:
        """Extended attributes, or the sidecar file where the file system has none."""
        return f"extended attributes user.* (getfattr -d FILE), or a FILE{SIDECAR_SUFFIX} sidecar where there are none"

    def set_tags(self, record: AssetRecord, tags: Mapping[str, str]) -> None:
        """Write tags as extended attributes where the file system has them, else as a sidecar JSON file.

        Conditional: refused if the file is no longer the version ``record`` names.
        """
        with self._writing(record.key) as walk:
            fd = self._open_file(walk, walk_rel(walk))
            try:
                _check_version(record, os.fstat(fd), "its tags were not changed")
                _set_xattr_tags(fd, tags)
                return
            except OSError as exc:
                if exc.errno not in NO_XATTRS:
                    raise AssetError(f"cannot set tags: {exc.strerror}") from exc
            finally:
                os.close(fd)
            sidecar = walk.name + SIDECAR_SUFFIX.encode()
            if tags:
                data = json.dumps(dict(tags), ensure_ascii=False, indent=1).encode("utf-8")
                _replace_small_file(walk.parent, sidecar, data)
            else:
                _remove_sidecar(walk)

    def copy(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Copy bytes, mode, times and extended attributes to ``dest_key`` whole or not at all; never overwrite.

        Conditional on the version ``record`` names (size, modified time, inode).
        """
        with self._writing(record.key) as src:
            source_fd = self._open_file(src, walk_rel(src))
            try:
                source_st = os.fstat(source_fd)
                _check_version(record, source_st, "not copied")
                with self._writing(dest_key, create=True) as dest:
                    st = _write_new(dest, lambda fd: _copy_into(source_fd, source_st, fd), self._path(walk_rel(dest)))
                    _carry_sidecar(src, dest)
            finally:
                os.close(source_fd)
        return self.record_for(self.path_for(dest_key), st)

    def move(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Give the file the name ``dest_key`` (same inode, a link then an unlink); never overwrite.

        Conditional on the version ``record`` names. Safe to retry: a move interrupted after
        the link finishes, and one already done returns the moved file. Across file systems
        (a mount inside the root) it is a copy, then a delete of the original.
        """
        try:
            with self._writing(record.key) as src:
                source_st = _lstat(src)
                if source_st is not None:
                    _check_version(record, source_st, "not moved")
                    return self._move(record, src, source_st, dest_key)
        except AssetGone:
            pass
        with self._writing(dest_key) as dest:  # the source is gone: moved already, and the answer lost?
            dest_st = _lstat(dest)
            if dest_st is not None and record.object_id is not None and record.object_id == object_id(dest_st):
                return self.record_for(self._path(walk_rel(dest)), dest_st)
        raise AssetGone("the file is gone")

    def _move(self, record: AssetRecord, src: _Walk, source_st: os.stat_result, dest_key: str) -> AssetRecord:
        with self._writing(dest_key, create=True) as dest:
            dest_path = self._path(walk_rel(dest))
            dest_st = _lstat(dest)
            if dest_st is not None and not os.path.samestat(source_st, dest_st):
                raise AssetError(f"will not overwrite {dest_path.as_uri()}")
            if dest_st is None:  # else a move killed after its link: both names are the file, finish it
                try:
                    os.link(src.name, dest.name, src_dir_fd=src.parent, dst_dir_fd=dest.parent, follow_symlinks=False)
                except FileExistsError as exc:
                    raise AssetError(f"will not overwrite {dest_path.as_uri()}") from exc
                except OSError as exc:
                    if exc.errno == errno.EXDEV:  # a mount inside the root: a copy, then a delete
                        moved = self.copy(record, dest_key)
                        self.delete(record)
                        return moved
                    if exc.errno not in NO_HARD_LINKS:
                        raise _error(f"cannot move to {dest_path.as_uri()}", exc) from exc
                    os.rename(src.name, dest.name, src_dir_fd=src.parent, dst_dir_fd=dest.parent)
                os.fsync(dest.parent)
            _carry_sidecar(src, dest)
            if _lstat(src) is not None:
                os.unlink(src.name, dir_fd=src.parent)
            _remove_sidecar(src)
            os.fsync(src.parent)
            _remove_empty_folders(src)
            st = os.stat(dest.name, dir_fd=dest.parent, follow_symlinks=False)
        return self.record_for(dest_path, st)

    def delete(self, record: AssetRecord) -> dict[str, str]:
        """Remove the file if it is still the version ``record`` names, then the made folders it left empty.

        Idempotent: a file already gone is success. Folders that writes made (marked
        ``user.dam_dedupe.made``) and that are now empty are removed up to, not including,
        the root, so that undoing a quarantine leaves no empty folders behind; a user's own
        folders stay.
        """
        try:
            with self._writing(record.key) as walk:
                st = _lstat(walk)
                if st is None:
                    return {}
                if not stat_mod.S_ISREG(st.st_mode):
                    raise AssetError("the file changed since it was checked: no regular file is there now; not deleted")
                _check_version(record, st, "not deleted")
                os.unlink(walk.name, dir_fd=walk.parent)
                _remove_sidecar(walk)  # its tags, where the file system has no extended attributes
                os.fsync(walk.parent)
                _remove_empty_folders(walk)
        except AssetGone:
            return {}
        return {}

    def tidy(self, key: str) -> None:
        """Remove the made folders on the way to ``key`` that are empty, if no file is at ``key``."""
        with suppress(AssetGone), self._writing(key) as walk:
            if _lstat(walk) is None:
                _remove_empty_folders(walk)

    def write_object(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> AssetRecord:
        """Write a small file whole or not at all, never overwriting; ``metadata`` goes into its tags."""
        tags = dict(metadata or {})
        mode = 0o666 & ~_umask()

        def produce(fd: int) -> None:
            _write_all(fd, data)
            os.fchmod(fd, mode)
            try:
                _set_xattr_tags(fd, tags)
            except OSError as exc:
                if exc.errno not in NO_XATTRS:
                    raise

        with self._writing(key, create=True) as walk:
            st = _write_new(walk, produce, self._path(walk_rel(walk)))
        record = self.record_for(self.path_for(key), st)
        if tags and self.get_tags(record) != tags:  # no extended attributes here: a sidecar
            self.set_tags(record, tags)
        return record

    @contextmanager
    def _writing(self, key: str, create: bool = False) -> Iterator[_Walk]:
        """Resolve ``key`` for a write; a missing folder on the way means the file is gone (``AssetGone``)."""
        try:
            with self._resolve(key, create) as walk:
                yield walk
        except FileNotFoundError as exc:
            raise AssetGone(f"{self.path_for(key)} is gone") from exc
        except NotADirectoryError as exc:
            raise AssetError(f"{self.path_for(key)}: a folder on the way is not a folder") from exc
        except AssetError:
            raise
        except OSError as exc:
            raise _error(f"cannot write {self.path_for(key)}", exc) from exc

    # -- links: a local-only capability the redirect action uses -------------------------------

    def make_link(self, key: str, target_key: str, hard: bool = False) -> None:
        """Make ``key`` a link to ``target_key``: a relative symbolic link, or a hard link; never overwrite."""
        path, target = self.path_for(key), self.path_for(target_key)
        try:
            with self._writing(key, create=True) as walk:
                if hard:
                    with self._writing(target_key) as to:
                        os.link(to.name, walk.name, src_dir_fd=to.parent, dst_dir_fd=walk.parent, follow_symlinks=False)
                else:
                    os.symlink(os.path.relpath(target, path.parent), walk.name, dir_fd=walk.parent)
                os.fsync(walk.parent)
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
        with self._writing(key) as walk:
            os.unlink(walk.name, dir_fd=walk.parent)
            os.fsync(walk.parent)


# -- small file-system helpers ------------------------------------------------------------------


def _error(what: str, exc: OSError) -> AssetError:
    """An ``OSError`` as the contract's error: ``TransientError`` for one that may pass, else a final one."""
    kind = TransientError if exc.errno in TRANSIENT else AssetError
    return kind(f"{what}: {exc.strerror}")


def walk_rel(walk: _Walk) -> bytes:
    """The key's path relative to the root, as raw bytes."""
    return b"/".join(walk.names)


def _etag(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


def _check_version(record: AssetRecord, st: os.stat_result, consequence: str) -> None:
    """Refuse (``AssetError``) unless the file is the version ``record`` names: size, modified time and inode."""
    if (
        st.st_size != record.size
        or (record.etag is not None and _etag(st) != record.etag)
        or (record.object_id is not None and object_id(st) != record.object_id)
    ):
        raise AssetError(f"the file changed since it was checked; {consequence}")


def _is_link(parent: int, name: bytes) -> bool:
    try:
        return stat_mod.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _lstat(walk: _Walk) -> os.stat_result | None:
    try:
        return os.stat(walk.name, dir_fd=walk.parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _read_file(parent: int, name: bytes) -> bytes | None:
    """The bytes of a small regular file under ``parent`` (not through a link), or ``None`` if there is none."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _carry_sidecar(src: _Walk, dest: _Walk) -> None:
    """Give the file at ``dest`` the tags sidecar of the file at ``src``, if it has one."""
    data = _read_file(src.parent, src.name + SIDECAR_SUFFIX.encode())
    if data is not None:
        _replace_small_file(dest.parent, dest.name + SIDECAR_SUFFIX.encode(), data)


def _remove_sidecar(walk: _Walk) -> None:
    with suppress(FileNotFoundError):
        os.unlink(walk.name + SIDECAR_SUFFIX.encode(), dir_fd=walk.parent)


def _make_folder(parent: int, name: bytes) -> None:
    """Make folder ``name`` already marked as made by a write (so a delete may remove it once empty).

    It is made and marked under a temporary name, then renamed into place: a process killed
    in between leaves a temporary folder (never listed, removed by the next attempt), never an
    unmarked folder that would stay behind empty after undo.
    """
    temp = _temp_name(name)
    with suppress(FileNotFoundError):
        os.rmdir(temp, dir_fd=parent)  # left by an attempt that was killed
    os.mkdir(temp, dir_fd=parent)
    fd = os.open(temp, DIR_FLAGS, dir_fd=parent)
    try:
        with suppress(OSError):  # without extended attributes, a made folder stays when emptied
            os.setxattr(fd, MADE_XATTR, b"1")
    finally:
        os.close(fd)
    try:
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except OSError as exc:
        os.rmdir(temp, dir_fd=parent)
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):  # someone else made it meanwhile: use theirs
            raise
    os.fsync(parent)


def _temp_name(name: bytes) -> bytes:
    return TEMP_PREFIX.encode() + hashlib.sha256(name).hexdigest()[:16].encode()


def _write_new(walk: _Walk, produce: Callable[[int], None], path: Path) -> os.stat_result:
    """Create ``walk``'s file whole or not at all, never replacing one: temp, fsync, link, folder fsync.

    ``produce`` writes the content into the temporary file's descriptor.
    """
    parent, name, temp = walk.parent, walk.name, _temp_name(walk.name)
    if _lstat(walk) is not None:
        raise AssetError(f"will not overwrite {path.as_uri()}")
    with suppress(FileNotFoundError):
        os.unlink(temp, dir_fd=parent)  # what a killed write left
    fd = os.open(temp, NEW_FILE_FLAGS, 0o600, dir_fd=parent)
    try:
        produce(fd)
        os.fsync(fd)
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp, dir_fd=parent)
        raise
    os.close(fd)
    try:
        os.link(temp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS or _lstat(walk) is not None:
            os.unlink(temp, dir_fd=parent)
            if isinstance(exc, FileExistsError) or exc.errno in NO_HARD_LINKS:
                raise AssetError(f"will not overwrite {path.as_uri()}") from exc
            raise
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)  # checked free just above
    else:
        os.unlink(temp, dir_fd=parent)
    os.fsync(parent)
    return st


def _copy_into(source: int, source_st: os.stat_result, dest: int) -> None:
    """Copy the bytes, mode, extended attributes and times of an open file into another, as ``copy2`` did."""
    copied = 0
    while chunk := os.read(source, CHUNK):
        _write_all(dest, chunk)
        copied += len(chunk)
    now = os.fstat(source)
    if copied != source_st.st_size or _etag(now) != _etag(source_st):
        raise AssetError("the file changed while it was being copied; not copied")
    os.fchmod(dest, stat_mod.S_IMODE(source_st.st_mode))
    try:
        for attr in os.listxattr(source):
            try:
                os.setxattr(dest, attr, os.getxattr(source, attr))
            except OSError as exc:
                if exc.errno not in {*NO_XATTRS, errno.ENODATA, errno.EINVAL, errno.EACCES}:
                    raise
    except OSError as exc:
        if exc.errno not in NO_XATTRS:
            raise
    os.utime(dest, ns=(source_st.st_atime_ns, source_st.st_mtime_ns))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _tag_key(attr: str) -> str | None:
    """The tag an extended attribute holds, or ``None`` for one that is no tag (another namespace, a made mark)."""
    if attr == MADE_XATTR or not attr.startswith(TAG_XATTR_PREFIX):
        return None
    if attr.startswith(LEGACY_TAG_PREFIX):
        return attr[len(LEGACY_TAG_PREFIX) :]
    return attr[len(TAG_XATTR_PREFIX) :]


def _xattr_tags(fd: int) -> dict[str, str]:
    """The tags of an open file: its ``user.*`` attributes whose values are text (binary ones are not tags)."""
    tags: dict[str, str] = {}
    for attr in sorted(os.listxattr(fd), key=lambda a: a.startswith(LEGACY_TAG_PREFIX), reverse=True):
        key = _tag_key(attr)
        if key is not None:
            with suppress(UnicodeDecodeError):
                tags[key] = os.getxattr(fd, attr).decode("utf-8")  # a current name wins over a legacy one
    return tags


def _set_xattr_tags(fd: int, tags: Mapping[str, str]) -> None:
    """Make the tags of an open file exactly ``tags``; attributes with binary values are never touched."""
    shown = _xattr_tags(fd)
    for attr in os.listxattr(fd):
        key = _tag_key(attr)
        if key is not None and key in shown and (key not in tags or attr != TAG_XATTR_PREFIX + key):
            os.removexattr(fd, attr)
    for key, value in tags.items():
        os.setxattr(fd, TAG_XATTR_PREFIX + key, value.encode("utf-8"))


def _replace_small_file(parent: int, name: bytes, data: bytes) -> None:
    """Replace a small file (a tags sidecar) atomically: temp, fsync, rename over it, folder fsync."""
    temp = _temp_name(name)
    with suppress(FileNotFoundError):
        os.unlink(temp, dir_fd=parent)
    fd = os.open(temp, NEW_FILE_FLAGS, 0o666 & ~_umask(), dir_fd=parent)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if _is_link(parent, name):
        os.unlink(temp, dir_fd=parent)
        raise AssetError(f"refusing to replace the tags file {os.fsdecode(name)}: it is a symbolic link")
    os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    os.fsync(parent)


def _remove_empty_folders(walk: _Walk) -> None:
    """Remove the folders on ``walk``'s way that a write made and are now empty, deepest first, never the root."""
    for depth in range(len(walk.fds) - 1, 0, -1):
        try:
            os.getxattr(walk.fds[depth], MADE_XATTR)
            os.rmdir(walk.names[depth - 1], dir_fd=walk.fds[depth - 1])
        except OSError:
            return
        os.fsync(walk.fds[depth - 1])


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@hookimpl
def dam_dedupe_adapters() -> list[type[SourceAdapter]]:
    """Contribute the local folder adapter."""
    return [LocalAdapter]
