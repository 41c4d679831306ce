"""The SQLite catalog's schema, as an ordered list of migrations.

The schema version is SQLite's ``user_version``. Opening a catalog applies every
migration above its version, each in its own transaction; a catalog newer than this
code is refused rather than damaged. Append migrations; never edit a released one.
"""

from __future__ import annotations

import sqlite3

from dam_dedupe.errors import DamDedupeError

MIGRATIONS: list[str] = [
    # 1: sources, scan runs, assets, fingerprints, problems, clusters.
    """
    CREATE TABLE sources (
        id INTEGER PRIMARY KEY,
        uri TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        cursor TEXT
    );
    CREATE TABLE scan_runs (
        id INTEGER PRIMARY KEY,
        started TEXT NOT NULL,
        finished TEXT,
        status TEXT NOT NULL,
        sources TEXT NOT NULL,
        listed INTEGER NOT NULL DEFAULT 0,
        fingerprinted INTEGER NOT NULL DEFAULT 0,
        unchanged INTEGER NOT NULL DEFAULT 0,
        gone INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE assets (
        id INTEGER PRIMARY KEY,
        source_id INTEGER NOT NULL REFERENCES sources(id),
        key TEXT NOT NULL,
        uri TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        modified TEXT,
        store_hash TEXT,
        etag TEXT,
        version_id TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'present' CHECK (state IN ('present', 'gone')),
        content TEXT NOT NULL DEFAULT 'pending'
            CHECK (content IN ('pending', 'image', 'not_image', 'skipped', 'error')),
        error TEXT,
        error_retry INTEGER NOT NULL DEFAULT 0,
        first_seen_run INTEGER NOT NULL,
        last_seen_run INTEGER NOT NULL,
        gone_run INTEGER,
        UNIQUE (source_id, key)
    );
    CREATE INDEX assets_by_content ON assets (content, state);
    CREATE INDEX assets_by_store_hash ON assets (store_hash);
    CREATE TABLE fingerprints (
        asset_id INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        format TEXT NOT NULL,
        metadata_fields INTEGER NOT NULL DEFAULT 0,
        perceptual TEXT NOT NULL DEFAULT '{}',
        thumbnail BLOB
    );
    CREATE INDEX fingerprints_by_sha256 ON fingerprints (sha256);
    CREATE TABLE problems (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES scan_runs(id),
        source_id INTEGER NOT NULL REFERENCES sources(id),
        uri TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE clusters (
        id TEXT PRIMARY KEY,
        canonical_asset_id INTEGER NOT NULL REFERENCES assets(id),
        canonical_reason TEXT NOT NULL,
        preset TEXT NOT NULL
    );
    CREATE TABLE cluster_members (
        cluster_id TEXT NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
        asset_id INTEGER NOT NULL REFERENCES assets(id),
        match TEXT NOT NULL,
        evidence TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (cluster_id, asset_id)
    );
    """,
    # 2: the governance workflow: registered plans, sign-offs, apply/undo runs, their step
    # journal, and the chained audit log (append-only: triggers refuse UPDATE and DELETE).
    """
    CREATE TABLE plans (
        id TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        created TEXT NOT NULL,
        created_by TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE signoffs (
        id INTEGER PRIMARY KEY,
        plan_id TEXT NOT NULL REFERENCES plans(id),
        signed_by TEXT NOT NULL,
        role TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        at TEXT NOT NULL
    );
    CREATE TABLE action_runs (
        id TEXT PRIMARY KEY,
        plan_id TEXT NOT NULL REFERENCES plans(id),
        kind TEXT NOT NULL CHECK (kind IN ('apply', 'undo')),
        undoes TEXT REFERENCES action_runs(id),
        started TEXT NOT NULL,
        started_by TEXT NOT NULL,
        finished TEXT,
        status TEXT NOT NULL CHECK (status IN ('running', 'finished'))
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES action_runs(id),
        step INTEGER NOT NULL,
        phase TEXT NOT NULL CHECK (phase IN ('before', 'after')),
        outcome TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}',
        at TEXT NOT NULL,
        UNIQUE (run_id, step, phase)
    );
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        event TEXT NOT NULL,
        plan_id TEXT NOT NULL DEFAULT '',
        run_id TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}',
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 3: what analyser plugins found in each image (tied to the content they saw),
    # reviewers' decisions imported from the HTML report (tied to the cluster's contents),
    # and an index the report's per-asset cluster lookups need.
    """
    CREATE TABLE analyses (
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        analyser TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '[]',
        facts TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        PRIMARY KEY (asset_id, analyser)
    );
    CREATE TABLE review_decisions (
        id INTEGER PRIMARY KEY,
        cluster_id TEXT NOT NULL,
        decision TEXT NOT NULL
            CHECK (decision IN ('exclude', 'keep_all', 'not_duplicates', 'exclude_member', 'canonical')),
        uri TEXT,
        members TEXT NOT NULL,
        decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        imported_at TEXT NOT NULL
    );
    CREATE INDEX review_decisions_by_cluster ON review_decisions (cluster_id);
    CREATE INDEX cluster_members_by_asset ON cluster_members (asset_id);
    """,
    # 4: indexes for large catalogs (measured on 100k assets): looking an asset up by URI
    # scanned every asset, and the report's "problems of each source's latest run" looked
    # for the latest run once per problem row, without an index (20k problems: 22 s).
    """
    CREATE INDEX assets_by_uri ON assets (uri);
    CREATE INDEX problems_by_source_run ON problems (source_id, run_id);
    """,
    # 5: how each fingerprint was made, so that scans can renew fingerprints of an older kind.
    """
    ALTER TABLE fingerprints ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    """,
    # 6: what the store says is one object (so that one object reached under two URIs is one
    # asset), and how often a worker died reading an asset (retried a bounded number of times).
    """
    ALTER TABLE assets ADD COLUMN object_id TEXT;
    ALTER TABLE assets ADD COLUMN worker_crashes INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX assets_by_object_id ON assets (object_id) WHERE object_id IS NOT NULL;
    """,
    # 7: a source an admin forgot (``dam-dedupe sources forget``): left out of reports until scanned again.
    """
    ALTER TABLE sources ADD COLUMN forgotten TEXT;
    """,
    # 8: a small colour preview of each fingerprinted image, for reviewers (the report).
    """
    ALTER TABLE fingerprints ADD COLUMN preview BLOB;
    """,
    # service: the DAM integration service's bearer tokens (a SHA-256 of each, never the token), the DAM
    # assets ingested by webhook (once per asset id and version), and outgoing webhook events that
    # could not be delivered (the dead letters).
    """
    CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created TEXT NOT NULL,
        last_used TEXT,
        revoked TEXT
    );
    CREATE TABLE dam_ingests (
        dam_asset_id TEXT NOT NULL,
        version TEXT NOT NULL,
        uri TEXT NOT NULL,
        sha256 TEXT,
        ingested TEXT NOT NULL,
        PRIMARY KEY (dam_asset_id, version)
    );
    CREATE TABLE webhook_dead_letters (
        id INTEGER PRIMARY KEY,
        subscriber TEXT NOT NULL,
        event TEXT NOT NULL,
        body TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        failed TEXT NOT NULL
    );
    """,
    # formats: images inside documents (a deck's media part, a PDF page's image), each an asset
    # of its own tied to its document's asset; and how many pages, frames or layers a file holds.
    """
    CREATE TABLE embedded (
        asset_id INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
        container_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        part TEXT NOT NULL,
        UNIQUE (container_id, part)
    );
    ALTER TABLE fingerprints ADD COLUMN frames INTEGER NOT NULL DEFAULT 1;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the catalog's schema up to :data:`SCHEMA_VERSION`."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DamDedupeError(
            f"this catalog has schema version {version}, newer than this dam-dedupe understands "
            f"({SCHEMA_VERSION}); upgrade dam-dedupe"
        )
    for number in range(version, SCHEMA_VERSION):
        conn.executescript(f"BEGIN; {MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;")
