"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started with ``initdb`` and ``pg_ctl``.

The server runs in a temporary folder on a free loopback port with trust authentication,
and each test that asks for a catalog gets a new database in it. ``initdb`` refuses to
run as root, so as root the server runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

USER = "dd"


def postgres_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL's server programs, or ``None``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """One running server; :meth:`new_database` gives each test its own database."""

    bin: Path
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dd-pg-")))
    port: int = field(default_factory=_free_port)
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and the server refuse root
            command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in command)]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> None:
        """Create the cluster (fsync off: a test server need not survive a power cut) and start it."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        self.resume()

    def resume(self) -> None:
        """Start the server on its data folder (again, after :meth:`halt`)."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        data, log = str(self.folder / "data"), str(self.folder / "log")
        self._run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")

    def halt(self) -> None:
        """Stop the server at once, as a crash would (every connection dropped), keeping its data."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        self.halt()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database``."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"catalog_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def tamper(location: str, *statements: str) -> None:
    """Run SQL on a catalog behind dam-dedupe's back, as someone holding the file or the database can."""
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)
        return
    raw = sqlite3.connect(location, isolation_level=None)
    try:
        for sql in statements:
            raw.executescript(sql)
    finally:
        raw.close()


def drop_audit_guards(location: str) -> tuple[str, ...]:
    """The statements that remove the audit log's append-only triggers, in the catalog's dialect."""
    on = " ON audit_log" if location.startswith("postgresql://") else ""
    return tuple(f"DROP TRIGGER IF EXISTS {name}{on}" for name in ("audit_log_no_update", "audit_log_no_delete"))


def count_rows(location: str, table: str) -> int:
    """Rows in a catalog table as another process sees them now; 0 while the catalog or table is not there."""
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
                return 0
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
    if not Path(location).exists():
        return 0
    with sqlite3.connect(location) as raw:
        try:
            return int(raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:  # busy, or the table not created yet
            return 0


def schema_version(location: str) -> int:
    """The schema version a catalog records (SQLite: ``user_version``; PostgreSQL: the ``schema_version`` table)."""
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])  # type: ignore[index]
    with sqlite3.connect(location) as raw:
        return int(raw.execute("PRAGMA user_version").fetchone()[0])


def set_schema_version(location: str, version: int) -> None:
    """Record another schema version, as a newer dam-dedupe would leave the catalog."""
    if location.startswith("postgresql://"):
        tamper(location, f"UPDATE schema_version SET version = {version}")
    else:
        tamper(location, f"PRAGMA user_version = {version}")
