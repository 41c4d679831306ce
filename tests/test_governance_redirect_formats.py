"""Redirects that do not break consumers: a copy in another format is left out unless the plan says so."""

from __future__ import annotations

from pathlib import Path

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import parse_config
from dam_dedupe.governance import Selection, make_plan
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.conftest import picture, save


def test_a_png_copy_is_not_pointed_at_a_jpeg_canonical_unless_asked(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    image = picture(5, (800, 600))
    save(image, root / "brand" / "logo.jpg", quality=95)
    (root / "web").mkdir()
    image.save(root / "web" / "logo.png", "PNG")  # a PNG consumers may rely on (transparency, format)
    save(image.resize((400, 300)), root / "web" / "logo-small.jpg", quality=80)
    config = parse_config({"policy": {"authoritative": [(root / "brand").as_uri()]}})
    catalog = open_catalog(tmp_path / "c.sqlite")
    host = Host()
    run_scan([SourceSpec(root.as_uri())], catalog, host, config, workers=1)
    try:
        plan = make_plan(catalog, host, config, "redirect", {}, Selection(), by="ana")
        [step] = plan.steps
        assert step.target.uri.endswith("logo-small.jpg")
        assert step.params["consumers_had"] == {"format": "JPEG", "width": 400, "height": 300}
        assert step.params["consumers_get"] == {"format": "JPEG", "width": 800, "height": 600}
        [left_out] = [e for e in plan.body["excluded"] if e.get("uri", "").endswith("logo.png")]
        assert "would serve JPEG where consumers now get PNG" in left_out["reason"]

        allowed = make_plan(catalog, host, config, "redirect", {"formats": "any"}, Selection(), by="ana")
        assert sorted(s.target.uri.rsplit("/", 1)[1] for s in allowed.steps) == ["logo-small.jpg", "logo.png"]
        quarantine = make_plan(catalog, host, config, "quarantine", {}, Selection(), by="ana")
        assert len(quarantine.steps) == 2  # only redirects change what consumers get
    finally:
        catalog.close()


def test_the_report_lists_copies_a_redirect_would_change_for_review(tmp_path: Path) -> None:
    from dam_dedupe.report import build_report

    root = tmp_path / "lib"
    image = picture(6, (800, 600))
    save(image, root / "logo.jpg", quality=95)
    image.save(root / "logo.png", "PNG")
    catalog = open_catalog(tmp_path / "c.sqlite")
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), parse_config({}), workers=1)
    try:
        [cluster] = build_report(catalog)["clusters"]
    finally:
        catalog.close()
    canonical_format = next(m["format"] for m in cluster["members"] if m["canonical"])
    other = [m["uri"] for m in cluster["members"] if m["format"] != canonical_format]
    assert other and cluster["format_changes"] == other
