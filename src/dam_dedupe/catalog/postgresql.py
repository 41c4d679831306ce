"""The shared catalog: a PostgreSQL database (``--catalog postgresql://…``).

Several admins and scheduled jobs use one catalog at once: scans of different sources
run side by side, each source under a session advisory lock (PostgreSQL releases it when
the connection ends, so a killed scan never blocks the next); matching takes another, so
clusters are rebuilt by one matcher at a time; ``apply`` and ``undo`` take a third. Plans
read their clusters from one ``REPEATABLE READ`` snapshot. The audit log is append-only by
trigger. Passwords belong in ``~/.pgpass`` or ``PGPASSWORD``, not in the URL: the URL is
shown in messages with any password masked (:func:`redacted`).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dam_dedupe.catalog.postgresql_schema import SCHEMA_VERSION, migrate
from dam_dedupe.catalog.sql import SqlCatalog
from dam_dedupe.errors import DamDedupeError, MissingExtra

SCHEMES = ("postgresql://", "postgres://")

LOCKS = 0x44414D01
"""The first key of the catalog's advisory locks (two-key form); the second names what is locked."""
RUNS, MATCH = 1, 2
"""Second keys: ``apply``/``undo`` runs and matching. A source's scan lock uses ``hashtext(uri)``."""


def is_postgresql(location: str) -> bool:
    """Whether a catalog location names a PostgreSQL database rather than a SQLite file."""
    return location.startswith(SCHEMES)


def redacted(location: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _row_factory(cursor: Any) -> Any:
    """psycopg row factory: rows read by position or column name, as the shared queries expect."""
    names = {column.name: n for n, column in enumerate(cursor.description or ())}

    class PgRow(tuple[Any, ...]):
        def __getitem__(self, key: Any) -> Any:
            return super().__getitem__(names[key] if isinstance(key, str) else key)

        def keys(self) -> list[str]:
            return list(names)

    return PgRow


def _placeholders(sql: str) -> str:
    """The shared queries' ``?`` placeholders in psycopg's ``%s`` style (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection behind the DB-API calls the shared queries make (``execute`` with ``?``)."""

    def __init__(self, conn: Any) -> None:
        self.pg = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        """Run one statement (placeholders ``?``); return its cursor."""
        if not parameters:
            return self.pg.execute(sql)
        return self.pg.execute(_placeholders(sql), tuple(parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        """Run one statement once per row of parameters (psycopg pipelines them)."""
        cursor = self.pg.cursor()
        cursor.executemany(_placeholders(sql), [tuple(row) for row in parameters])
        return cursor

    def close(self) -> None:
        """Close the connection."""
        self.pg.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def lost_server(exc: BaseException) -> str | None:
    """The one-line message for a PostgreSQL server that failed under a command (gone, restarted, out of
    connections), or ``None`` when ``exc`` is something else."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.OperationalError):
        return None
    return (
        f"the catalog's PostgreSQL server failed: {_first_line(exc)}; what was committed before is kept, "
        "so run the command again once the server is back"
    )


def connect(location: str) -> Any:
    """A psycopg connection in autocommit, named for ``pg_stat_activity`` (host and pid: who holds a lock)."""
    try:
        import psycopg
    except ImportError as exc:
        raise MissingExtra("postgresql", "psycopg") from exc
    try:
        return psycopg.connect(
            location,
            autocommit=True,
            row_factory=_row_factory,
            application_name=f"dam-dedupe {socket.gethostname()} pid {os.getpid()}"[:63],
        )
    except psycopg.Error as exc:
        raise DamDedupeError(f"cannot open the catalog {redacted(location)}: {_first_line(exc)}") from exc


class PostgresCatalog(SqlCatalog):
    """The :class:`~dam_dedupe.catalog.base.Catalog` in a PostgreSQL database."""

    HASH_ALGORITHM = "split_part(store_hash, ':', 1)"

    def __init__(self, location: str) -> None:
        self.location = location
        self.pg = connect(location)
        try:
            migrate(self.pg)
        except sys.modules["psycopg"].errors.InsufficientPrivilege as exc:
            self.pg.close()
            raise DamDedupeError(
                f"cannot bring the catalog {redacted(location)} to schema version {SCHEMA_VERSION}: "
                f"{_first_line(exc)}; open it once as the database's owner"
            ) from exc
        super().__init__(PgConnection(self.pg))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic, durable batch."""
        try:
            with self.pg.transaction():
                yield
        except BaseException:
            self._rolled_back()
            raise
        self._committed()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read from one ``REPEATABLE READ`` snapshot: a scan committing meanwhile is not half seen."""
        with self.pg.transaction():
            self.pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield

    def _holder(self, key: int) -> str:
        """Who holds the advisory lock ``(LOCKS, key)``: the connection's name and since when."""
        row = self.pg.execute(
            "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.granted",
            (LOCKS, key & 0xFFFFFFFF),
        ).fetchone()
        if row is None:
            return "a session now gone"
        # another role's session shows its name but not its start to a role without pg_read_all_stats
        since = f", connected since {row[1]:%Y-%m-%d %H:%M:%S%z}" if row[1] is not None else ""
        return f"{row[0] or 'a session of another program'}{since}"

    def _try_lock(self, key: int) -> bool:
        return bool(self.pg.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCKS, key)).fetchone()[0])

    def _unlock(self, key: int) -> None:
        self.pg.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCKS, key))

    @contextmanager
    def scan_lock(self, sources: Sequence[str]) -> Iterator[None]:
        """Hold one advisory lock per source: scans of different sources run at once, two of one source do not.

        Two scans of one source would each mark gone what only the other had listed. Locks are
        taken in URI order and released together; a source already locked refuses the scan,
        naming the session that holds it.
        """
        held: list[int] = []
        try:
            for uri in sorted(set(sources)):
                key = int(self.pg.execute("SELECT hashtext(%s)", (uri,)).fetchone()[0])
                if not self._try_lock(key):
                    raise DamDedupeError(
                        f"another scan of {uri} is running on this catalog ({self._holder(key)}); wait for it to finish"
                    )
                held.append(key)
            yield
        finally:
            for key in held:
                self._unlock(key)

    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """Hold the advisory lock for ``apply`` and ``undo``: one run at a time per catalog, refused, not queued."""
        if not self._try_lock(RUNS):
            raise DamDedupeError(
                f"another apply or undo is running on this catalog ({self._holder(RUNS)}); wait for it to finish"
            )
        try:
            yield
        finally:
            self._unlock(RUNS)

    @contextmanager
    def match_lock(self) -> Iterator[None]:
        """Wait for, then hold, the matching lock: the matcher that starts last reads every committed image."""
        self.pg.execute("SELECT pg_advisory_lock(%s, %s)", (LOCKS, MATCH))
        try:
            yield
        finally:
            self._unlock(MATCH)

    def _trigger_names(self) -> set[str]:
        rows = self.pg.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass")
        return {row[0] for row in rows}
