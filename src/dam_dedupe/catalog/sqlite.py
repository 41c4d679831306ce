"""The embedded catalog: one SQLite file.

It runs in WAL mode so that a scan killed at any moment leaves every committed batch
intact; the next scan reads only what was not fingerprinted yet. ``synchronous = FULL``
makes every commit durable, not only atomic: the governance journal a power cut must not
lose (what was copied where) is written through the same connection.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from dam_dedupe.catalog.migrations import migrate
from dam_dedupe.catalog.sql import Connection, SqlCatalog, _now
from dam_dedupe.errors import DamDedupeError


def _lock_file(fd: int, wait: bool = False) -> None:
    """Take an exclusive lock on an open file; without ``wait``, ``OSError`` if another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)


class SqliteCatalog(SqlCatalog):
    """The :class:`~dam_dedupe.catalog.base.Catalog` on a SQLite file."""

    HASH_ALGORITHM = "substr(store_hash, 1, instr(store_hash, ':'))"

    def __init__(self, path: str | Path) -> None:
        self.path = self.location = str(path)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn)
        self.sqlite = conn
        super().__init__(cast(Connection, conn))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic, durable batch."""
        self.sqlite.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.sqlite.execute("ROLLBACK")
            self._rolled_back()
            raise
        self.sqlite.execute("COMMIT")
        self._committed()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read from one state of the file: a WAL reader keeps the snapshot its first read saw."""
        self.sqlite.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            self.sqlite.execute("COMMIT")

    @contextmanager
    def scan_lock(self, sources: Sequence[str]) -> Iterator[None]:
        """Hold an OS file lock on ``CATALOG.scan.lock``: one scan at a time per catalog file.

        Two scans at once would each mark gone what only the other had listed, and SQLite
        takes one writer at a time anyway. The lock file names the holder's pid and start
        time for the refusal; the OS releases the lock when the holder dies, so a killed
        scan never blocks the next one.
        """
        path = Path(self.path + ".scan.lock")
        with path.open("a+b") as handle:
            try:
                _lock_file(handle.fileno())
            except OSError as exc:
                handle.seek(0)
                pid, since = ([*handle.read().decode("utf-8", "replace").split(), "?", "?"])[:2]
                raise DamDedupeError(
                    f"another scan of {self.path} is running since {since}, pid {pid}; wait for it to finish"
                ) from exc
            handle.truncate(0)
            handle.write(f"{os.getpid()} {_now()}\n".encode())
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)

    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """Hold an OS file lock on ``CATALOG.runs.lock``: one ``apply`` or ``undo`` at a time per catalog.

        The OS releases it when the process dies, so an interrupted run can always be resumed;
        a second run meanwhile is refused with a clear message instead of racing on the same steps.
        """
        path = Path(self.path + ".runs.lock")
        with path.open("a+b") as handle:
            try:
                _lock_file(handle.fileno())
            except OSError as exc:
                raise DamDedupeError(
                    f"another apply or undo is running on this catalog (lock {path}); wait for it to finish"
                ) from exc
            yield

    @contextmanager
    def match_lock(self) -> Iterator[None]:
        """Hold an OS file lock on ``CATALOG.match.lock``, waiting for it: ``match`` or ``sources forget``
        rebuilding clusters while a scan rebuilds them would store whichever finished last."""
        with Path(self.path + ".match.lock").open("a+b") as handle:
            _lock_file(handle.fileno(), wait=True)
            yield

    def _trigger_names(self) -> set[str]:
        return {row[0] for row in self.sqlite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}

    def change_marker(self) -> tuple[object, ...]:
        """The images' change marker (:meth:`SqlCatalog.change_marker`), read again only after a commit.

        Reading the tables costs about 40 ms at 100k assets, so it is done only when something was
        committed since the last call: SQLite's ``data_version`` (other connections' commits) or this
        connection's ``total_changes`` (its own) moved. Asking every few seconds is then nearly free.
        """
        committed = (self.sqlite.execute("PRAGMA data_version").fetchone()[0], self.sqlite.total_changes)
        cached = getattr(self, "_change_marker", None)
        if cached is not None and cached[0] == committed:
            return cached[1]
        marker = super().change_marker()
        self._change_marker = (committed, marker)
        return marker
