"""How the HTML report copes with a large library: size, build time, and load and filter time in Chromium.

Makes a synthetic catalog of N clusters (2 to 4 copies each, across three sources in two
jurisdictions, a tenth showing people, a twentieth licensed), writes the HTML report and
opens it in headless Chromium. Run from the repository root::

    .venv/bin/python -m benchmarks.report_10k --clusters 10000

It prints the figures; nothing is downloaded and nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from dam_dedupe.analysis import LICENSED, PERSONAL_DATA, Analysis
from dam_dedupe.catalog import SqliteCatalog, StoredCluster, open_catalog
from dam_dedupe.config import parse_config
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec
from dam_dedupe.report import ReportSettings, write_report
from tests.servers.chromium import Chromium, find_chromium

SOURCES = {
    "hk-marketing": ("file:///srv/hk-marketing", "HK", "external-facing"),
    "hk-archive": ("file:///srv/hk-archive", "HK", "archive"),
    "sg-finance": ("file:///srv/sg-finance", "SG", "internal"),
}


def thumbnail(rng: np.random.Generator) -> bytes:
    """A photo-like 32x32 greyscale thumbnail: smooth shapes plus a little noise."""
    coarse = rng.integers(0, 256, (4, 4)).astype(float)
    smooth = np.kron(coarse, np.ones((8, 8)))
    noisy = smooth + rng.normal(0, 6, (32, 32))
    return np.clip(noisy, 0, 255).astype(np.uint8).tobytes()


def fill_catalog(catalog: SqliteCatalog, clusters: int, seed: int = 7) -> None:
    """Write ``clusters`` synthetic clusters into ``catalog``."""
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    source_ids = {name: catalog.source_id(SourceSpec(uri, name)) for name, (uri, _r, _t) in SOURCES.items()}
    run = catalog.begin_run([uri for uri, _r, _t in SOURCES.values()])
    stored: list[StoredCluster] = []
    with catalog.transaction():
        for n in range(clusters):
            sha = f"{n:064x}"
            size = rng.randrange(80_000, 12_000_000)
            thumb = thumbnail(nprng)
            members = []
            for copy in range(rng.choice((2, 2, 2, 3, 3, 4))):
                name = rng.choice(list(SOURCES))
                key = f"campaign {n % 97}/IMG_{n:05d}{'' if copy == 0 else f' ({copy})'}.jpg"
                uri = f"{SOURCES[name][0]}/{key}"
                modified = datetime(2024, 1, 1 + copy, tzinfo=UTC)
                record = AssetRecord(SOURCES[name][0], key, uri, size, modified, name=key.rsplit("/", 1)[1])
                catalog.record_listed(source_ids[name], record, run)
                asset_id = catalog.conn.execute(
                    "SELECT id FROM assets WHERE source_id = ? AND key = ?", (source_ids[name], key)
                ).fetchone()[0]
                catalog.store_fingerprint(asset_id, Fingerprint(sha, size, 4000, 3000, "JPEG", thumbnail=thumb))
                analyses = {}
                if n % 10 == 0:
                    analyses["faces"] = Analysis(frozenset([PERSONAL_DATA]), {"faces": str(1 + n % 4)})
                if n % 20 == 5:
                    analyses["rights"] = Analysis(frozenset([LICENSED]), {"licensor": "Stock Agency Ltd"})
                catalog.store_analyses(asset_id, sha, analyses)
                members.append(asset_id)
            evidence: dict[str, object] = {"relation": "identical", "sha256": sha}
            stored.append(
                StoredCluster(
                    f"c-{n:016x}", members[0], "oldest copy", "balanced", [(m, "exact", evidence) for m in members]
                )
            )
    catalog.replace_clusters(stored)


def settings() -> ReportSettings:
    """Report settings naming each synthetic source's residency and tier."""
    sources = {
        name: {"uri": uri, "residency": residency, "risk_tier": tier}
        for name, (uri, residency, tier) in SOURCES.items()
    }
    return ReportSettings.from_config(parse_config({"sources": sources}))


def main() -> None:
    """Build the catalog, write the report, open it in Chromium, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dam-dedupe-bench-"))
    catalog = open_catalog(work / "catalog.sqlite")
    started = time.perf_counter()
    fill_catalog(catalog, args.clusters)
    filled = time.perf_counter()
    out = work / "report.html"
    write_report(catalog, "html", out, settings())
    written = time.perf_counter()
    members = sum(len(c.members) for c in catalog.clusters())
    catalog.close()
    print(f"clusters {args.clusters}, assets {members}")
    print(f"catalog filled in {filled - started:.1f} s; HTML report written in {written - filled:.1f} s")
    print(f"HTML size {out.stat().st_size / 1e6:.1f} MB")
    executable = find_chromium()
    if executable is None:
        print("Chromium not installed: no load figures")
        return
    browser = Chromium(executable)
    try:
        page = browser.new_page()
        t0 = time.perf_counter()
        page.navigate(out.as_uri())
        page.evaluate("window.damDedupeReport.ready")
        loaded = time.perf_counter()
        print(f"opened and first cards rendered in {loaded - t0:.2f} s")
        for label, script in (
            ("text search", "document.getElementById('f-text').value = 'IMG_0420'"),
            (
                "risk filter",
                "document.getElementById('f-text').value = ''; "
                "document.getElementById('f-flag').value = 'personal_data'",
            ),
            (
                "sort by reclaimable",
                "document.getElementById('f-flag').value = ''; document.getElementById('f-sort').value = 'reclaimable'",
            ),
        ):
            page.evaluate(script)
            t = time.perf_counter()
            shown = page.evaluate(
                "(() => { window.damDedupeReport.applyFilters();"
                " return document.getElementById('cluster-count').textContent; })()"
            )
            print(f"{label}: {time.perf_counter() - t:.3f} s ({shown})")
        t = time.perf_counter()
        for _ in range(10):
            page.evaluate("document.querySelector('#more-cards button').click()")
        print(f"10 more pages of cards: {time.perf_counter() - t:.3f} s")
        page.drain()
        print(f"console errors: {len(page.console_errors)}")
        page.close()
    finally:
        browser.stop()


if __name__ == "__main__":
    main()
