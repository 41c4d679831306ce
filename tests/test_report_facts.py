"""The JSON report states each audit fact of a library whose faces, rights and residencies are known."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dam_dedupe.cli import main
from dam_dedupe.report.build import SCHEMA
from dam_dedupe.report.settings import GB
from tests.report_library import HK_PRICE, MARKUP_NAME, SG_PRICE, STOCK_RIGHTS, AuditLibrary, run, scanned  # noqa: F401


@pytest.fixture(scope="module")
def report(scanned: tuple[AuditLibrary, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON report of the scanned library."""
    library, catalog = scanned
    out = tmp_path_factory.mktemp("out") / "report.json"
    run(library, catalog, "report", "--format", "json", "-o", str(out))
    return json.loads(out.read_text(encoding="utf-8"))


def cluster_of(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The cluster one of whose members has this file name."""
    return next(c for c in report["clusters"] if any(m["name"] == name for m in c["members"]))


def test_schema_is_versioned(report: dict[str, Any]) -> None:
    assert report["schema"] == SCHEMA == "dam-dedupe/report/2"
    assert report["currency"] == "HKD"


def test_faces_flag_personal_data_and_the_register_lists_every_copy(report: dict[str, Any]) -> None:
    astronaut = cluster_of(report, "astronaut.png")
    assert astronaut["personal_data"] and astronaut["faces"] >= 1
    assert "personal data" in astronaut["risk"]["reasons"]
    register = {entry["image"]: entry for entry in report["personal_data_register"]}
    entry = register[astronaut["id"]]
    assert sorted(loc["name"] for loc in entry["locations"]) == ["astronaut copy.png", "astronaut.png"]
    assert {loc["residency"] for loc in entry["locations"]} == {"HK", "SG"}
    # an image with no copy is in the register too, with its one location
    single = [e for e in register.values() if e["cluster"] is None]
    assert [loc["name"] for e in single for loc in e["locations"]] == ["portrait.jpg"]
    # pictures without people are not flagged
    for name in ("harbour.jpg", "logo.jpg", "chelsea.jpg", "DSC_0002.jpg"):
        assert not cluster_of(report, name)["personal_data"], name
    assert report["summary"]["personal_data"] == {"images": 3, "register_entries": 2, "locations": 3, "clusters": 1}


def test_rights_fields_are_read_from_iptc_and_xmp(report: dict[str, Any]) -> None:
    stock = cluster_of(report, "harbour.jpg")
    assert stock["rights"] == STOCK_RIGHTS
    assert stock["licensed"] and stock["licensed_spread"]
    assert stock["departments"] == ["Finance", "Marketing"]
    assert report["licensed"] == [
        {
            "cluster": stock["id"],
            "rights": STOCK_RIGHTS,
            "sources": ["hk-marketing", "sg-finance"],
            "departments": ["Finance", "Marketing"],
            "spread": True,
            "copies": 2,
        }
    ]


def test_own_copyright_is_not_a_licence(report: dict[str, Any]) -> None:
    logo = cluster_of(report, "logo.jpg")
    assert not logo["licensed"]
    facts = [m["analyses"]["rights"]["facts"] for m in logo["members"]]
    assert facts == [{"copyright_notice": "© Example Ltd"}] * 2


def test_residency_and_risk_order_the_work(report: dict[str, Any]) -> None:
    crossing = {tuple(sorted(m["name"] for m in c["members"])) for c in report["clusters"] if c["cross_jurisdiction"]}
    assert crossing == {
        ("astronaut copy.png", "astronaut.png"),
        ("harbour-2026.jpg", "harbour.jpg"),
        (MARKUP_NAME, "chelsea.jpg"),
        ("DSC_0002.jpg", "DSC_0002.jpg"),
    }
    assert {c["cluster"] for c in report["cross_jurisdiction"]} == {
        c["id"] for c in report["clusters"] if c["cross_jurisdiction"]
    }
    assert not cluster_of(report, "logo.jpg")["cross_jurisdiction"]
    # the highest-risk library comes first, and within a tier the riskiest clusters do
    assert [s["name"] for s in report["sources"]] == ["hk-marketing", "sg-finance"]
    assert [s["risk_tier"] for s in report["sources"]] == ["external-facing", "internal"]
    reasons = [len(c["risk"]["reasons"]) for c in report["clusters"]]
    assert reasons == sorted(reasons, reverse=True)
    assert report["clusters"][-1]["members"][0]["name"] == "logo.jpg"


def test_storage_cost_per_source_and_in_total(scanned: tuple[AuditLibrary, Path], report: dict[str, Any]) -> None:
    library, _catalog = scanned
    # the HK copies are older, so each SG copy is the duplicate, except the logo's second copy in HK
    sg = sum(
        library.path(p).stat().st_size
        for p in (
            "sg/archive/astronaut copy.png",
            "sg/reports/harbour-2026.jpg",
            "sg/cats/chelsea.jpg",
            "sg/misc/DSC_0002.jpg",
        )
    )
    hk = library.path("hk/brand/logo-copy.jpg").stat().st_size
    sources = {s["name"]: s for s in report["sources"]}
    assert sources["sg-finance"]["reclaimable_bytes"] == sg
    assert sources["hk-marketing"]["reclaimable_bytes"] == hk
    assert sources["sg-finance"]["monthly_cost"] == pytest.approx(sg / GB * SG_PRICE)
    assert sources["hk-marketing"]["monthly_cost"] == pytest.approx(hk / GB * HK_PRICE)
    assert report["summary"]["reclaimable_bytes"] == sg + hk
    assert report["summary"]["monthly_cost"] == pytest.approx(sg / GB * SG_PRICE + hk / GB * HK_PRICE)


def test_name_and_size_comparison_against_content(report: dict[str, Any]) -> None:
    assert report["summary"]["metadata_comparison"] == {
        "name_and_size_copies": 2,  # DSC_0002 (a real copy) and IMG_0001 (same name and size, other picture)
        "content_copies": 5,
        "found_by_both": 1,
        "missed_by_name_and_size": 4,
        "name_and_size_false_matches": 1,
    }
    assert report["summary"]["copies_histogram"] == {"2": 5}
    assert report["summary"]["duplicates_by_match"] == {"exact": 5, "near": 0, "transformed": 0, "derivative": 0}


def test_csv_register_and_sources_carry_the_same_facts(
    scanned: tuple[AuditLibrary, Path], report: dict[str, Any], tmp_path: Path
) -> None:
    library, catalog = scanned
    run(library, catalog, "report", "--format", "csv", "--table", "register", "-o", str(tmp_path / "register.csv"))
    run(library, catalog, "report", "--format", "csv", "--table", "sources", "-o", str(tmp_path / "sources.csv"))
    with (tmp_path / "register.csv").open(encoding="utf-8-sig", newline="") as f:
        register = list(csv.DictReader(f))
    expected = [
        (e["image"], loc["uri"], loc["residency"]) for e in report["personal_data_register"] for loc in e["locations"]
    ]
    assert [(r["image"], r["uri"], r["residency"]) for r in register] == expected
    with (tmp_path / "sources.csv").open(encoding="utf-8-sig", newline="") as f:
        sources = list(csv.DictReader(f))
    assert [(r["name"], int(r["reclaimable_bytes"]), r["currency"]) for r in sources] == [
        (s["name"], s["reclaimable_bytes"], "HKD") for s in report["sources"]
    ]


def test_members_csv_neutralises_formulas_in_names(tmp_path: Path) -> None:
    from dam_dedupe.report.csv_report import write_csv

    member = {
        "uri": "file:///x/=HYPERLINK(1).jpg",
        "path": "=HYPERLINK(1).jpg",
        "size": 1,
        "canonical": True,
        "match": "exact",
        "evidence": {},
        "analyses": {},
        "flags": [],
    }
    report = {
        "clusters": [
            {
                "id": "c-1",
                "canonical_reason": "r",
                "risk": {"rank": 0, "reasons": []},
                "cross_jurisdiction": False,
                "licensed_spread": False,
                "decisions": [],
                "members": [member],
            }
        ],
        "errors": [],
    }
    with (tmp_path / "m.csv").open("w", encoding="utf-8", newline="") as out:
        write_csv(report, out)
    row = next(csv.DictReader((tmp_path / "m.csv").open(encoding="utf-8")))
    assert row["path"] == "'=HYPERLINK(1).jpg"


def test_an_unknown_risk_tier_is_refused_naming_the_tiers(tmp_path: Path) -> None:
    config = tmp_path / "dam-dedupe.toml"
    config.write_text('[sources.web]\nuri = "/srv/web"\nrisk_tier = "public"\n', encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "--catalog",
            str(tmp_path / "c.sqlite"),
            "report",
            "--format",
            "json",
            "-o",
            str(tmp_path / "r.json"),
        ],
    )
    assert result.exit_code == 2  # a configuration mistake, found before any work
    assert "[sources.web] risk_tier = 'public' is not one of [report] risk_tiers" in result.output
    assert "external-facing" in result.output


def report_with_previews(scanned: tuple[AuditLibrary, Path]) -> dict[str, Any]:
    """The report document of the scanned library, with thumbnails and previews, as the HTML page gets it."""
    from dam_dedupe.catalog import open_catalog
    from dam_dedupe.report.build import build_report

    catalog = open_catalog(scanned[1])
    try:
        return build_report(catalog, with_thumbnails=True)
    finally:
        catalog.close()


def test_colour_previews_stay_within_the_page_budget(
    scanned: tuple[AuditLibrary, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dam_dedupe.report import html_report

    document = report_with_previews(scanned)
    sizes = sorted(len(m["preview"]) for c in document["clusters"] for m in c["members"] if m["preview"])
    assert sizes and sizes[-1] < 16 * 1024  # a few KB each
    data, _thumbs = html_report._page_data(document)
    assert all(m["p"] >= 0 for c in data["clusters"] for m in c["members"])
    unique = len(data["previews"])

    monkeypatch.setattr(html_report, "PREVIEW_BUDGET", sizes[-1])  # room for about one preview
    data, _thumbs = html_report._page_data(document)
    shown = [m["p"] for c in data["clusters"] for m in c["members"]]
    assert 1 <= len(data["previews"]) < unique and -1 in shown  # the rest fall back to the grey thumbnail


def test_previews_are_shown_as_jpeg_and_an_older_catalogs_webp_previews_as_webp(
    scanned: tuple[AuditLibrary, Path],
) -> None:
    import io

    from PIL import Image

    from dam_dedupe.report import html_report

    document = report_with_previews(scanned)
    members = [m for c in document["clusters"] for m in c["members"] if m["preview"]]
    assert members and all(m["preview"][:2] == b"\xff\xd8" for m in members)  # scans store JPEG previews
    older = io.BytesIO()
    Image.new("RGB", (160, 90), (200, 30, 30)).save(older, "WEBP", quality=50)
    members[0]["preview"] = older.getvalue()  # as a catalog scanned before JPEG previews holds it

    data, _thumbs = html_report._page_data(document)

    kinds = [uri.split(";", 1)[0] for uri in data["previews"]]
    assert kinds.count("data:image/webp") == 1 and kinds.count("data:image/jpeg") == len(kinds) - 1 > 0
