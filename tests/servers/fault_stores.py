"""Each store behind a :class:`~tests.servers.fault_proxy.FaultProxy`, with one small library to act on.

A :class:`FaultStore` makes a fresh store holding :func:`small_library` (a new bucket or container,
a reset SharePoint tenant), says how the product is pointed at it through the proxy (environment
variables a user would set for a gateway) and lists the store *directly*, bypassing the proxy, as
``{key: SHA-256}``, so that a test compares the store before and after with nothing in between.
Helpers here also scan, plan and approve, and check that no object's bytes were lost.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from dam_dedupe.catalog import SqliteCatalog, open_catalog
from dam_dedupe.config import Config, parse_config
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from dam_dedupe.governance.plan import Plan
from dam_dedupe.governance.runner import RunReport
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.conftest import picture
from tests.servers.fault_proxy import FaultProxy, Write

QUARANTINE = "_dam-dedupe-quarantine"


def jpeg(seed: int) -> bytes:
    """A distinct small JPEG (about 2 KB) per seed."""
    out = io.BytesIO()
    picture(seed, (64, 48)).save(out, "JPEG", quality=85)
    return out.getvalue()


def small_library(copies: int = 1) -> dict[str, bytes]:
    """An original in the authoritative ``品牌`` folder, ``copies`` exact copies elsewhere (1 or 2), one unique image.

    A quarantine or redirect plan on it has one step per copy, in one cluster.
    """
    original = jpeg(11)
    places = ["Marketing 2026/IMG_1.JPG", "活動相片/相片 1.jpg"][:copies]
    return {"品牌/master_1.jpg": original, **dict.fromkeys(places, original), "unique.jpg": jpeg(13)}


def sha256(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


class FaultStore(Protocol):
    """One kind of store, reached by the product through the proxy and by the test directly."""

    prefix: str
    """The library's key prefix in :meth:`state` (``lib/`` on object stores, ``/Photos/`` on SharePoint)."""

    def fresh(self) -> None:
        """Make a new, empty store and put :func:`small_library` in it under :attr:`prefix`."""

    def root_uri(self) -> str:
        """The library's source URI for the product."""

    def authoritative_uri(self) -> str:
        """The URI of the library's authoritative folder (``品牌``)."""

    def state(self) -> dict[str, str]:
        """Every object in the store, by key, as the SHA-256 of its bytes (read directly, not via the proxy)."""


@dataclass
class Scanned:
    """A scanned library and an approved plan for it."""

    catalog: SqliteCatalog
    host: Host
    config: Config
    plan: Plan


def scan_and_approve(
    store: FaultStore, tmp_path: Path, action: str, params: Mapping[str, str], catalog_at: str | None = None
) -> Scanned:
    """Scan the store's library (exact matching) into the catalog at ``catalog_at`` (default:
    ``catalog.sqlite`` in ``tmp_path``), then make and approve a plan of ``action``."""
    config = parse_config({"matching": {"preset": "exact"}, "policy": {"authoritative": [store.authoritative_uri()]}})
    catalog, host = open_catalog(catalog_at or tmp_path / "catalog.sqlite"), Host()
    run_scan([SourceSpec(store.root_uri())], catalog, host, config, workers=1)
    plan = make_plan(catalog, host, config, action, dict(params), Selection(), by="ana")
    approve(catalog, config, plan, by="lee", role="legal")
    return Scanned(catalog, host, config, plan)


def quarantined_as(key: str, prefix: str) -> str | None:
    """The original key (relative to the library) a quarantine copy at ``key`` holds, or ``None``.

    The area sits under the library (``lib/_dam-dedupe-quarantine/c-ID/KEY``) or, where a store's
    keys are whole names, at its root (``_dam-dedupe-quarantine/c-ID/lib/KEY`` on Azure).
    """
    head, found, tail = key.partition(f"{QUARANTINE}/c-")
    if not found or "/" not in tail:
        return None
    original = tail.split("/", 1)[1]
    return original.removeprefix(prefix.lstrip("/")) if not head else original


def lost_objects(start: Mapping[str, str], now: Mapping[str, str], prefix: str) -> list[str]:
    """The objects of ``start`` whose bytes are neither at their key nor in a quarantine copy of that key."""
    lost = []
    for key, digest in start.items():
        relative = key.removeprefix(prefix)
        held = [k for k in now if quarantined_as(k, prefix) == relative]
        if now.get(key) != digest and not any(now[k] == digest for k in held):
            lost.append(key)
    return lost


def held_copies(now: Mapping[str, str], prefix: str, originals: Iterable[str]) -> list[str]:
    """The original keys (relative to the library) of ``originals`` held in quarantine, once per copy."""
    wanted = {key.removeprefix(prefix) for key in originals}
    return sorted(o for k in now if (o := quarantined_as(k, prefix)) in wanted)


# -- the stores ------------------------------------------------------------------------------


class S3Store:
    """A fresh moto bucket per library; the product goes through the proxy (``AWS_ENDPOINT_URL``)."""

    prefix = "lib/"

    def __init__(self, admin: Any, versioned: bool = False) -> None:
        self.admin = admin
        self.versioned = versioned
        self.bucket = ""

    def fresh(self) -> None:
        self.bucket = f"f-{uuid.uuid4().hex[:16]}"
        self.admin.create_bucket(Bucket=self.bucket)
        if self.versioned:
            self.admin.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        for key, data in small_library().items():
            self.admin.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def root_uri(self) -> str:
        return f"s3://{self.bucket}/lib"

    def authoritative_uri(self) -> str:
        return f"s3://{self.bucket}/lib/品牌"

    def state(self) -> dict[str, str]:
        state = {}
        for page in self.admin.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for entry in page.get("Contents", []):
                body = self.admin.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
                state[entry["Key"]] = sha256(body)
        return state


class AzureStore:
    """A fresh Azurite container per library; the product's connection string names the proxy."""

    prefix = "lib/"

    def __init__(self, service: Any, account: str) -> None:
        self.service = service
        self.account = account
        self.container: Any = None

    def fresh(self) -> None:
        self.container = self.service.create_container(f"f{uuid.uuid4().hex[:16]}")
        for key, data in small_library().items():
            self.container.upload_blob(self.prefix + key, data)

    def root_uri(self) -> str:
        return f"azure://{self.account}/{self.container.container_name}/lib"

    def authoritative_uri(self) -> str:
        return f"{self.root_uri()}/品牌"

    def state(self) -> dict[str, str]:
        return {
            blob.name: sha256(self.container.download_blob(blob.name).readall()) for blob in self.container.list_blobs()
        }


class GraphStore:
    """The emulated SharePoint library, reset per library; Graph calls go through the proxy."""

    prefix = "/Photos/"

    def __init__(self, emulator: Any, library_uri: str) -> None:
        self.emulator = emulator
        self.library_uri = library_uri

    def fresh(self) -> None:
        self.emulator.reset()
        self.emulator.library.columns.add("DamDedupeTags")  # where the adapter keeps tags
        for key, data in small_library().items():
            self.emulator.library.put(f"Photos/{key}", data)

    def root_uri(self) -> str:
        return f"{self.library_uri}/Photos"

    def authoritative_uri(self) -> str:
        return f"{self.root_uri()}/{quote('品牌')}"

    def state(self) -> dict[str, str]:
        library = self.emulator.library
        return {library.path_of(item): sha256(item.content) for item in library.items.values() if not item.folder}


# -- one lost answer, then resume and undo ------------------------------------------------------


def apply_to_the_end(s: Scanned, out_dir: Path, report: RunReport) -> RunReport:
    """Run ``apply`` again, as the docs tell a user, while steps of ``report`` are left undone."""
    for _again in range(2):
        if report.count("applied") == len(s.plan.steps):
            break
        try:
            report = apply_plan(s.catalog, s.host, s.config, s.plan, by="ana", out_dir=out_dir)
        except DamDedupeError as exc:
            raise AssertionError(f"apply again refused to continue the run: {exc}") from exc
    return report


def undo_to_the_end(s: Scanned, run_id: str) -> RunReport:
    """Undo the run, and run ``undo`` again while steps are left."""
    report = undo_run(s.catalog, s.host, s.config, run_id, by="ana")
    for _again in range(2):
        if report.count("undone") == len(report.results):
            break
        try:
            report = undo_run(s.catalog, s.host, s.config, run_id, by="ana")
        except DamDedupeError as exc:
            raise AssertionError(f"undo again refused to continue: {exc}") from exc
    return report


def clean_writes(
    store: FaultStore, proxy: FaultProxy, tmp_path: Path, action: str, params: Mapping[str, str]
) -> list[Write]:
    """The writes a fault-free apply and undo of ``action`` make, in order (apply's first)."""
    store.fresh()
    s = scan_and_approve(store, tmp_path, action, params)
    try:
        proxy.reset()
        report = apply_plan(s.catalog, s.host, s.config, s.plan, by="ana", out_dir=tmp_path)
        assert report.count("applied") == len(s.plan.steps) == 1, [r.reason for r in report.results]
        undone = undo_run(s.catalog, s.host, s.config, report.run_id, by="ana")
        assert undone.count("undone") == 1, [r.reason for r in undone.results]
        return list(proxy.writes)
    finally:
        s.catalog.close()


def lose_one_answer(
    store: FaultStore, proxy: FaultProxy, tmp_path: Path, action: str, params: Mapping[str, str], index: int, how: str
) -> None:
    """Apply and undo on a fresh store with the ``index``-th write's answer lost; assert nothing is lost
    after apply (and its resume) and the store is exactly as before after undo (and its resume).

    ``index`` counts the writes of apply and then undo, as :func:`clean_writes` lists them.
    """
    store.fresh()
    s = scan_and_approve(store, tmp_path, action, params)
    try:
        start = store.state()
        duplicates = sorted(
            step.target.key.removeprefix(store.prefix.lstrip("/")) for step in s.plan.steps if step.role == "duplicate"
        )
        proxy.reset()
        proxy.lose_answer(index, how)
        report = apply_plan(s.catalog, s.host, s.config, s.plan, by="ana", out_dir=tmp_path)
        lost = proxy.writes[index - 1] if index <= len(proxy.writes) else f"write {index} (never made)"
        seen = f"with the answer to {lost} lost ({how})"
        assert not lost_objects(start, store.state(), store.prefix), f"bytes lost after apply {seen}"
        report = apply_to_the_end(s, tmp_path, report)
        now = store.state()
        assert not lost_objects(start, now, store.prefix), f"bytes lost after apply again {seen}"
        assert report.count("applied") == len(s.plan.steps), f"apply {seen}: {[r.reason for r in report.results]}"
        assert held_copies(now, store.prefix, start) == duplicates, f"quarantine copies after apply {seen}"
        undone = undo_to_the_end(s, report.run_id)
        assert undone.count("undone") == len(undone.results), f"undo {seen}: {[r.reason for r in undone.results]}"
        assert store.state() == start, f"the store after undo {seen}"
    finally:
        s.catalog.close()
