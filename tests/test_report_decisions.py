"""Reviewers' decisions kept in the catalog: imported, shown as decided, lapsing when a member changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from dam_dedupe.catalog import open_catalog
from dam_dedupe.cli import main


def picture(path: Path, colour: str) -> None:
    """Write a small JPEG with a shape in ``colour``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (120, 90), "white")
    ImageDraw.Draw(img).ellipse([10, 10, 80, 70], fill=colour)
    img.save(path, "JPEG")


@pytest.fixture(autouse=True)
def configured(tmp_path: Path, catalog_location: str) -> str:
    """The test's catalog, named in its ``dam-dedupe.toml`` as an admin names a shared one (SQLite, then PostgreSQL)."""
    (tmp_path / "dam-dedupe.toml").write_text(f'[catalog]\npath = "{catalog_location}"\n', encoding="utf-8")
    return catalog_location


def cli(tmp_path: Path, *args: str, ok: bool = True) -> str:
    """Run the command line with the test's configuration (and so its catalog); return the output."""
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "dam-dedupe.toml"), *args])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """Three copies of one picture, scanned."""
    root = tmp_path / "lib"
    picture(root / "a.jpg", "red")
    (root / "b").mkdir()
    (root / "b" / "b.jpg").write_bytes((root / "a.jpg").read_bytes())
    (root / "c.jpg").write_bytes((root / "a.jpg").read_bytes())
    cli(tmp_path, "scan", str(root), "--workers", "1")
    return root


def decisions_file(tmp_path: Path, decisions: list[dict[str, str]]) -> Path:
    """An exported decisions file, as the HTML report writes it."""
    path = tmp_path / "decisions.json"
    doc = {"exported_by": "Records Office", "exported_at": "2026-11-25T10:00:00Z", "decisions": decisions}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def report(tmp_path: Path) -> dict:
    """The JSON report of the catalog."""
    cli(tmp_path, "report", "--format", "json", "-o", str(tmp_path / "r.json"))
    return json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))


def test_keep_all_shows_as_decided_until_a_member_changes(library: Path, tmp_path: Path, configured: str) -> None:
    cluster = report(tmp_path)["clusters"][0]["id"]
    output = cli(
        tmp_path,
        "decisions",
        "import",
        str(
            decisions_file(
                tmp_path,
                [
                    {"cluster": cluster, "decision": "keep_all"},
                    {"cluster": "c-0000000000000000", "decision": "exclude"},
                    {"cluster": cluster, "decision": "exclude_member", "uri": "file:///elsewhere.jpg"},
                ],
            )
        ),
    )
    assert "stored 1 decisions by Records Office; refused 2" in output
    doc = report(tmp_path)
    assert doc["clusters"][0]["decided"] is True
    assert doc["clusters"][0]["decisions"] == [
        {"decision": "keep_all", "uri": None, "decided_by": "Records Office", "decided_at": "2026-11-25T10:00:00Z"}
    ]
    assert "keep_all" in cli(tmp_path, "decisions", "list")
    # a rescan that changes nothing keeps the decision
    cli(tmp_path, "scan", str(library), "--workers", "1")
    assert report(tmp_path)["clusters"][0]["decided"] is True
    # one copy is edited: the cluster is no longer what the reviewer saw
    picture(library / "c.jpg", "blue")
    cli(tmp_path, "scan", str(library), "--workers", "1")
    doc = report(tmp_path)
    assert [len(c["members"]) for c in doc["clusters"]] == [2]
    assert doc["clusters"][0]["decided"] is False and doc["clusters"][0]["decisions"] == []
    catalog = open_catalog(configured)
    try:
        assert catalog.standing_decisions() == {}
        assert len(catalog.decisions()) == 1  # kept for the record
    finally:
        catalog.close()


def test_a_later_import_replaces_decisions_on_the_same_cluster(library: Path, tmp_path: Path) -> None:
    cluster = report(tmp_path)["clusters"][0]
    first, other = cluster["members"][0]["uri"], cluster["members"][1]["uri"]
    cli(
        tmp_path,
        "decisions",
        "import",
        str(decisions_file(tmp_path, [{"cluster": cluster["id"], "decision": "not_duplicates"}])),
    )
    cli(
        tmp_path,
        "decisions",
        "import",
        str(
            decisions_file(
                tmp_path,
                [
                    {"cluster": cluster["id"], "decision": "canonical", "uri": other},
                    {"cluster": cluster["id"], "decision": "exclude_member", "uri": first},
                ],
            )
        ),
    )
    decisions = report(tmp_path)["clusters"][0]["decisions"]
    assert [(d["decision"], d["uri"]) for d in decisions] == [("canonical", other), ("exclude_member", first)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"decisions": []}', "'exported_by' (the reviewer's name) and 'exported_at' are required"),
        (
            '{"exported_by": "x", "exported_at": "t", "decisions": [{"cluster": "c", "decision": "delete"}]}',
            "decision 1 is 'delete'",
        ),
        (
            '{"exported_by": "x", "exported_at": "t", "decisions": [{"cluster": "c", "decision": "canonical"}]}',
            "needs the member's 'uri'",
        ),
    ],
)
def test_a_bad_decisions_file_is_refused_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    assert message in cli(tmp_path, "decisions", "import", str(path), ok=False)
    # planning reads the file the same way, and refuses it with the same reason
    plan = tmp_path / "plan.json"
    assert message in cli(
        tmp_path, "plan", "--action", "tag", "--decisions", str(path), "--by", "ana", "-o", str(plan), ok=False
    )
    assert not plan.exists()


def plan(tmp_path: Path, *args: str) -> dict:
    """Make a quarantine plan over the catalog (extra ``args`` for ``dam-dedupe plan``); return the plan document."""
    path = tmp_path / "plan.json"
    cli(tmp_path, "plan", "--action", "quarantine", "--by", "ana", "-o", str(path), *args)
    return json.loads(path.read_text(encoding="utf-8"))


def targets(doc: dict) -> set[str]:
    """File names of the copies a plan acts on."""
    return {Path(step["target"]["key"]).name for step in doc["steps"]}


def test_a_stored_not_duplicates_keeps_the_cluster_out_of_plans_until_a_member_changes(
    library: Path, tmp_path: Path
) -> None:
    cluster = report(tmp_path)["clusters"][0]["id"]
    cli(
        tmp_path,
        "decisions",
        "import",
        str(decisions_file(tmp_path, [{"cluster": cluster, "decision": "not_duplicates"}])),
    )

    doc = plan(tmp_path)
    assert doc["steps"] == [] and doc["clusters"] == []
    assert doc["excluded"] == [
        {"cluster": cluster, "reason": "stored decision 'not_duplicates' by Records Office (2026-11-25T10:00:00Z)"}
    ]
    assert doc["stored_decisions"] == [
        {
            "cluster": cluster,
            "decision": "not_duplicates",
            "uri": None,
            "decided_by": "Records Office",
            "decided_at": "2026-11-25T10:00:00Z",
            "effect": "cluster left out",
        }
    ]

    # one copy is edited: the cluster (now a.jpg and b.jpg) is back in the next plan
    picture(library / "c.jpg", "blue")
    cli(tmp_path, "scan", str(library), "--workers", "1")
    doc = plan(tmp_path)
    assert len(doc["clusters"]) == 1 and len(targets(doc)) == 1 and doc["excluded"] == []
    assert doc["stored_decisions"] == []


def test_stored_member_decisions_apply_and_a_decisions_file_replaces_them(library: Path, tmp_path: Path) -> None:
    cluster = report(tmp_path)["clusters"][0]
    uri = {Path(m["uri"]).name: m["uri"] for m in cluster["members"]}
    cli(
        tmp_path,
        "decisions",
        "import",
        str(
            decisions_file(
                tmp_path,
                [
                    {"cluster": cluster["id"], "decision": "canonical", "uri": uri["c.jpg"]},
                    {"cluster": cluster["id"], "decision": "exclude_member", "uri": uri["b.jpg"]},
                ],
            )
        ),
    )

    doc = plan(tmp_path)
    assert targets(doc) == {"a.jpg"} and doc["clusters"][0]["canonical"] == uri["c.jpg"]
    assert {
        "cluster": cluster["id"],
        "uri": uri["b.jpg"],
        "reason": "stored decision 'exclude_member' by Records Office (2026-11-25T10:00:00Z)",
    } in doc["excluded"]
    assert [d["effect"] for d in doc["stored_decisions"]] == ["canonical changed", "copy left alone"]

    # a decisions file given to the plan decides the clusters it names; the stored decisions it replaced are noted
    file = tmp_path / "today.json"
    file.write_text(
        json.dumps(
            {
                "exported_by": "Legal",
                "exported_at": "2026-11-26T08:00:00Z",
                "decisions": [{"cluster": cluster["id"], "decision": "keep_all"}],
            }
        ),
        encoding="utf-8",
    )
    doc = plan(tmp_path, "--decisions", str(file))
    assert doc["steps"] == [] and doc["decisions"]["items"][0]["effect"] == "cluster left out"
    assert {d["effect"] for d in doc["stored_decisions"]} == {"replaced by the decisions file given to this plan"}
