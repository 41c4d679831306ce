"""The same workflow on a SharePoint library (the Graph emulator over HTTPS on loopback).

Tags live in the library's ``DamDedupeTags`` column, copies are made server-side, stubs are
uploaded, and SharePoint never overwrites: the actions get through with the adapter contract alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import pytest

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import parse_config
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.governance_library import QUARANTINE, build_library
from tests.servers.graph import GraphEmulator, graph, graph_ca, graph_server, library_uri  # noqa: F401


def library_state(graph: GraphEmulator) -> dict[str, tuple[str, object]]:
    """Every file in the library by path: the SHA-256 of its content and its tag column."""
    lib = graph.library
    return {
        lib.path_of(item): (hashlib.sha256(item.content).hexdigest(), item.fields.get("DamDedupeTags"))
        for item in lib.items.values()
        if not item.folder
    }


@pytest.mark.parametrize(("action", "params"), [("tag", {}), ("quarantine", {"merge": "yes"}), ("redirect", {})])
def test_round_trip_on_sharepoint_leaves_every_file_as_it_was(
    graph: GraphEmulator, tmp_path: Path, action: str, params: dict[str, str]
) -> None:
    build_library(tmp_path / "lib")
    for path in sorted((tmp_path / "lib").rglob("*")):
        if path.is_file():
            graph.library.put(f"Photos/{path.relative_to(tmp_path / 'lib')}", path.read_bytes())
    graph.library.columns.add("DamDedupeTags")
    graph.library.at("Photos/Marketing 2026/IMG_4000.JPG").fields["DamDedupeTags"] = '{"photographer": "陳大文"}'
    root = library_uri("Photos")
    brand = f"{root}/{quote('品牌')}"
    config = parse_config({"matching": {"preset": "exact"}, "policy": {"authoritative": [brand]}})
    catalog, host = open_catalog(tmp_path / "catalog.sqlite"), Host()
    run_scan([SourceSpec(root)], catalog, host, config, workers=1)
    start = library_state(graph)

    plan = make_plan(catalog, host, config, action, params, Selection(), by="ana")
    approve(catalog, config, plan, by="lee", role="legal")
    report = apply_plan(catalog, host, config, plan, by="ana", out_dir=tmp_path)

    assert report.count("applied") == len(plan.steps) and len(plan.steps) >= 6, [r.reason for r in report.results]
    after = library_state(graph)
    duplicates = [f"/Photos/{s.target.key}" for s in plan.steps if s.role == "duplicate"]
    if action == "tag":
        assert all('"dam-dedupe.role": "duplicate"' in str(after[d][1]) for d in duplicates)
    elif action == "quarantine":
        assert not any(d in after for d in duplicates)
        assert len([p for p in after if p.startswith(f"/Photos/{QUARANTINE}/c-")]) == len(duplicates)
        assert "陳大文" in str(after["/Photos/品牌/master_0.jpg"][1])  # merged into the canonical
    else:
        assert all("dam-dedupe.redirect" in str(after[d][1]) for d in duplicates)

    undone = undo_run(catalog, host, config, report.run_id, by="ana")

    assert undone.count("undone") == len(plan.steps), [r.reason for r in undone.results]
    assert library_state(graph) == start
    catalog.close()
