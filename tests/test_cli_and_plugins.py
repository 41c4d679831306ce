"""The command line as an admin uses it, and the plugin contract as a vendor uses it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.hookspecs import hookimpl
from dam_dedupe.host import Host, make_plugin_manager
from dam_dedupe.matcher import PRESETS
from dam_dedupe.records import Cluster, SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.conftest import picture, run_cli, save
from tests.report_library import embedded_data


def test_demo_then_reports_in_every_format(tmp_path: Path) -> None:
    result = run_cli("demo", cwd=tmp_path)
    assert "report:" in result.stdout
    html = (tmp_path / "dam-dedupe-report.html").read_text(encoding="utf-8")
    assert "<html" in html and "<svg" in html  # the summary charts
    members = [m for c in embedded_data(html)["clusters"] for m in c["members"]]
    assert any("維港夜景" in m["path"] for m in members) and all(m["t"] >= 0 for m in members)  # with thumbnails

    assert not (tmp_path / "dam-dedupe.sqlite").exists()  # the demo keeps to a catalog of its own
    run_cli("--catalog", "dam-dedupe-demo.sqlite", "report", "--format", "json", "-o", "r.json", cwd=tmp_path)
    run_cli("--catalog", "dam-dedupe-demo.sqlite", "report", "--format", "csv", "-o", "r.csv", cwd=tmp_path)

    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["schema"].startswith("dam-dedupe/report/")
    assert report["summary"]["clusters"] >= 8
    assert {Path(e["path"]).name for e in report["errors"]} >= {"empty.jpg", "truncated.jpg", "notes.jpg"}
    brand = (tmp_path / "dam-dedupe-sample" / "品牌").resolve().as_uri()
    exact = [c for c in report["clusters"] if all(m["match"] == "exact" for m in c["members"])]
    assert exact and all(c["canonical"].startswith(brand) for c in exact)
    for cluster in report["clusters"]:
        assert {"id", "canonical", "members"} <= set(cluster)
        for member in cluster["members"]:
            assert {"uri", "size", "sha256", "match"} <= set(member)
            assert member["uri"] == Path(member["path"].removeprefix("file://")).resolve().as_uri()
    with (tmp_path / "r.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    members = sum(len(c["members"]) for c in report["clusters"])
    assert sum(r["role"] in ("canonical", "duplicate") for r in rows) == members
    assert sum(r["role"] == "error" for r in rows) == len(report["errors"])


def test_html_report_escapes_names_from_the_store(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    data = save(picture(1), root / "a.jpg").read_bytes()
    (root / "<img src=x onerror=alert(1)>.jpg").write_bytes(data)
    run_cli("--catalog", "c.sqlite", "scan", "--workers", "1", str(root), cwd=tmp_path)
    run_cli("--catalog", "c.sqlite", "report", "--format", "html", "-o", "r.html", cwd=tmp_path)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<img src=x onerror" not in html  # the page shows it as text: tests/test_report_html.py
    names = [m["name"] for c in embedded_data(html)["clusters"] for m in c["members"]]
    assert "<img src=x onerror=alert(1)>.jpg" in names


def test_a_missing_sdk_is_a_clear_message_naming_the_install_command(tmp_path: Path, with_test_plugin: Path) -> None:
    listing = run_cli("plugins", cwd=tmp_path)
    assert "needs-sdk://" in listing.stdout
    assert "needs: pip install 'dam-dedupe[needs-sdk]'" in listing.stdout
    assert "file://" in listing.stdout and "[ready]" in listing.stdout

    scanned = run_cli("--catalog", "c.sqlite", "scan", "needs-sdk://anything", cwd=tmp_path, check=False)
    assert scanned.returncode == 3  # a source failed: a nightly job must notice
    report = run_cli("--catalog", "c.sqlite", "report", "--format", "json", "-o", "-.json", cwd=tmp_path)
    assert "Traceback" not in scanned.stderr + report.stderr
    errors = json.loads((tmp_path / "-.json").read_text())["errors"]
    assert errors == [
        {
            "uri": "needs-sdk://anything",
            "path": "needs-sdk://anything",
            "reason": "the 'some-cloud-sdk' package is not installed. "
            "Install it with: pip install 'dam-dedupe[needs-sdk]'",
            "scope": "listing",
        }
    ]


def test_bad_configuration_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "dam-dedupe.toml").write_text("[matching]\npreset = 'sloppy'\n", encoding="utf-8")
    result = run_cli("plugins", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "unknown matching preset 'sloppy'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_third_party_plugin_loads_through_its_entry_point_and_its_hooks_run(
    tmp_path: Path, with_test_plugin: Path
) -> None:
    host = Host()
    assert host.plugin_name(next(p for p in host.pm.get_plugins() if p.__name__ == "dam_dedupe_testplugin")) == (
        "testplugin"
    )
    assert {"file", "counting", "needs-sdk"} <= set(host.adapters)

    root = tmp_path / "tree"
    data = save(picture(4, (640, 480)), root / "a-original.jpg").read_bytes()
    for name in ("staging/aaa.jpg", "zz/chosen-copy.jpg", "b.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    catalog = open_catalog(tmp_path / "c.sqlite")
    summary = run_scan([SourceSpec("counting://" + str(root))], catalog, host, Config(matching=PRESETS["exact"]), 1)

    [cluster] = build_report(catalog)["clusters"]
    assert cluster["canonical"].endswith("/zz/chosen-copy.jpg")
    assert cluster["canonical_reason"] == "chosen by a plugin: named chosen- by the vendor's rule"
    events = (with_test_plugin / "events.log").read_text().splitlines()
    assert events == [f"cluster {cluster['id']} 4", f"scan {summary.run_id} listed=4 fingerprinted=4"]


def test_a_veto_keeps_a_member_from_being_canonical(tmp_path: Path, with_test_plugin: Path) -> None:
    root = tmp_path / "tree"
    data = save(picture(4), root / "staging" / "a.jpg").read_bytes()
    (root / "longer-name-b.jpg").write_bytes(data)
    catalog = open_catalog(tmp_path / "c.sqlite")
    config = Config(matching=PRESETS["exact"], policy=("shortest_path",))
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), config, 1)

    [cluster] = build_report(catalog)["clusters"]
    assert cluster["canonical"].endswith("/longer-name-b.jpg")
    assert "vetoed by plugins (in the staging folder)" in cluster["canonical_reason"]


class Listener:
    """A DAM integration that says whether it wants the cluster events, and records those it is told of."""

    def __init__(self, wants: bool) -> None:
        self.wants = wants
        self.told: list[int] = []

    @hookimpl
    def dam_dedupe_listens(self, event: str) -> bool:
        return self.wants or event != "dam_dedupe_cluster_found"

    @hookimpl
    def dam_dedupe_cluster_found(self, cluster: Cluster) -> None:
        self.told.append(len(cluster.members))


def test_a_listener_that_declines_the_cluster_events_is_not_told_and_one_that_wants_them_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./dam-dedupe.toml: the built-in webhooks plugin has no subscriber and declines
    root = tmp_path / "tree"
    save(picture(4, (640, 480)), root / "a.jpg")
    save(picture(4, (640, 480)).resize((320, 240)), root / "a-small.jpg")
    declining, wanting = Listener(wants=False), Listener(wants=True)
    alone = Host(make_plugin_manager([declining]))
    assert not alone.listened("dam_dedupe_cluster_found")
    run_scan([SourceSpec(root.as_uri())], open_catalog(tmp_path / "alone.sqlite"), alone, Config(), 1)
    assert declining.told == []

    both = Host(make_plugin_manager([Listener(wants=False), wanting]))
    assert both.listened("dam_dedupe_cluster_found")
    run_scan([SourceSpec(root.as_uri())], open_catalog(tmp_path / "both.sqlite"), both, Config(), 1)
    assert wanting.told == [2]
