"""An admin's everyday mistakes: each is a one-line message and an exit code a script can rely on."""

from __future__ import annotations

import csv
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from dam_dedupe.catalog import display_location, is_postgresql
from tests.conftest import picture, run_cli, save

USAGE, FAILED, SOURCES_FAILED = 2, 1, 3


def fails(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = run_cli(*args, cwd=tmp_path, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    data = save(picture(3), root / "海報.jpg").read_bytes()
    (root / "copy.jpg").write_bytes(data)
    return root


def test_a_source_that_fails_makes_the_scan_exit_3_and_the_others_are_still_scanned(
    tmp_path: Path, library: Path
) -> None:
    code, err = fails(tmp_path, "scan", "--workers", "1", str(library), str(tmp_path / "no" / "such" / "folder"))
    assert code == SOURCES_FAILED
    assert "1 of 2 sources could not be scanned completely" in err and "such/folder" in err
    report = run_cli("report", "--format", "csv", "-o", "r.csv", cwd=tmp_path)
    assert report.returncode == 0
    with (tmp_path / "r.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert {r["role"] for r in rows} == {"canonical", "duplicate", "error"}  # the good source was stored


def test_a_clean_scan_exits_0(tmp_path: Path, library: Path) -> None:
    assert run_cli("scan", "--workers", "1", str(library), cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[governence]\nrequired_roles = ['legal']\n", "unknown section [governence]; did you mean [governance]?"),
        ("[scan]\nworkers = 'two'\n", "[scan] workers = 'two': input should be a valid integer"),
        ("[scan]\nworkers = 0\n", "[scan] workers = 0: input should be greater than or equal to 1"),
        ("[governance]\nauthor_may_sing = true\n", "unknown key [governance] author_may_sing; did you mean"),
        ("[sources.x]\nuri = '/srv'\nrisk_tier = 'top'\n", "risk_tier = 'top' is not one of [report] risk_tiers"),
        ("[sources.x]\nauthoritative = true\n", "[sources.x] uri is required"),
        ("[analysis.faces]\nmin_neighbors = 5\n", "unknown key [analysis.faces] min_neighbors"),  # the old detector's
        (
            "[analysis.faces]\nmin_score = 7\n",
            "[analysis.faces] min_score = 7: input should be less than or equal to 1",
        ),
    ],
)
def test_configuration_mistakes_are_found_before_any_work(
    tmp_path: Path, library: Path, toml: str, expected: str
) -> None:
    (tmp_path / "dam-dedupe.toml").write_text(toml, encoding="utf-8")
    code, err = fails(tmp_path, "scan", str(library))
    assert code == USAGE
    assert expected in err and "dam-dedupe.toml" in err
    assert not (tmp_path / "dam-dedupe.sqlite").exists()  # nothing was done


def test_an_unknown_scheme_or_a_mistyped_source_name_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "dam-dedupe.toml").write_text("[sources.brand-sharepoint]\nuri = '/srv/brand'\n", encoding="utf-8")
    code, err = fails(tmp_path, "scan", "gs://bucket")
    assert code == USAGE and "no installed adapter serves 'gs://'" in err
    code, err = fails(tmp_path, "scan", "brand-sharpoint")
    assert code == USAGE and "did you mean brand-sharepoint?" in err
    assert not (tmp_path / "dam-dedupe.sqlite").exists()


def test_a_mistyped_catalog_is_refused_not_reported_empty(tmp_path: Path, library: Path) -> None:
    run_cli("scan", "--workers", "1", str(library), cwd=tmp_path)
    code, err = fails(tmp_path, "--catalog", "dam-dedup.sqlite", "report", "-o", "r.html")
    assert code == FAILED and "there is no catalog at dam-dedup.sqlite" in err
    assert not (tmp_path / "dam-dedup.sqlite").exists() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("fmt", ["html", "json", "csv"])
def test_output_into_a_missing_folder_is_a_message(tmp_path: Path, library: Path, fmt: str) -> None:
    run_cli("scan", "--workers", "1", str(library), cwd=tmp_path)
    code, err = fails(tmp_path, "report", "--format", fmt, "-o", f"missing/r.{fmt}")
    assert code == USAGE and "the folder missing does not exist" in err


def test_demo_into_a_missing_folder_does_nothing(tmp_path: Path) -> None:
    code, err = fails(tmp_path, "demo", "-o", "missing/report.html")
    assert code == USAGE and "the folder missing does not exist" in err
    assert not (tmp_path / "dam-dedupe-sample").exists()


def test_demo_never_writes_into_the_catalog_beside_it(tmp_path: Path, library: Path) -> None:
    run_cli("scan", "--workers", "1", str(library), cwd=tmp_path)
    before = (tmp_path / "dam-dedupe.sqlite").read_bytes()
    demo = run_cli("demo", cwd=tmp_path)
    assert "on purpose" in demo.stdout  # the sample's broken files are said to be deliberate
    assert (tmp_path / "dam-dedupe.sqlite").read_bytes() == before
    assert (tmp_path / "dam-dedupe-demo.sqlite").exists()


def test_the_demos_next_steps_work_as_printed_and_undo_puts_the_sample_back(tmp_path: Path) -> None:
    printed = run_cli("demo", cwd=tmp_path).stdout
    assert "report: file://" in printed and "(opened in your browser)" not in printed  # no desktop here
    steps = [
        line.split(". ", 1)[1].split("    #")[0] for line in printed.splitlines() if line[:5] in ("  2. ", "  3. ")
    ]
    steps += [line.split(". ", 1)[1].split("    #")[0] for line in printed.splitlines() if line.startswith("  4. ")]
    assert len(steps) == 3 and all(step.startswith("dam-dedupe --catalog dam-dedupe-demo.sqlite ") for step in steps)
    sample = tmp_path / "dam-dedupe-sample"
    before = {p: p.read_bytes() for p in sample.rglob("*") if p.is_file()}
    for step in steps:
        words = step.split()[1:]
        words = [{"YOU": "ana", "REVIEWER": "lee"}.get(w, w) for w in words]
        out = run_cli(*words, cwd=tmp_path).stdout
    undo = out.split("undo with: ")[1].splitlines()[0].split()
    assert undo[:3] == ["dam-dedupe", "--catalog", "dam-dedupe-demo.sqlite"]  # the hint names the demo's catalog
    run_cli(*undo[1:], cwd=tmp_path)
    assert {p: p.read_bytes() for p in sample.rglob("*") if p.is_file()} == before


def test_csv_joins_lists_and_writes_money_in_fixed_point(tmp_path: Path, library: Path) -> None:
    big = picture(3, (1200, 900))
    save(big, library / "big.jpg")
    save(big.resize((600, 450)), library / "small.jpg")
    run_cli("scan", "--workers", "1", str(library), cwd=tmp_path)
    run_cli("report", "--format", "csv", "-o", "m.csv", cwd=tmp_path)
    run_cli("report", "--format", "csv", "--table", "sources", "-o", "s.csv", cwd=tmp_path)
    with (tmp_path / "m.csv").open(encoding="utf-8-sig") as f:
        relations = [r["relation"] for r in csv.DictReader(f) if r["role"] == "duplicate"]
    assert any("resized" in r for r in relations) and not any("[" in r for r in relations)
    with (tmp_path / "s.csv").open(encoding="utf-8-sig") as f:
        [source] = list(csv.DictReader(f))
    assert "e-" not in source["monthly_cost"] and float(source["monthly_cost"]) > 0


@pytest.fixture
def configured_catalog(tmp_path: Path, catalog_location: str) -> str:
    """Each back end in turn, as an admin's ``dam-dedupe.toml`` names it: the default SQLite file beside
    it, then a PostgreSQL database (``[catalog] path``); the location as messages show it."""
    if not is_postgresql(catalog_location):
        return "dam-dedupe.sqlite"
    (tmp_path / "dam-dedupe.toml").write_text(f'[catalog]\npath = "{catalog_location}"\n', encoding="utf-8")
    return display_location(catalog_location)


def test_scan_json_is_one_object_a_script_can_read(tmp_path: Path, library: Path, configured_catalog: str) -> None:
    result = run_cli(
        "scan", "--json", "--workers", "1", str(library), str(tmp_path / "gone"), cwd=tmp_path, check=False
    )
    assert result.returncode == SOURCES_FAILED
    summary = json.loads(result.stdout)
    assert summary["listed"] == 2 and summary["fingerprinted"] == 2
    assert summary["failed_sources"] == [(tmp_path / "gone").resolve().as_uri()]
    assert summary["catalog"] == configured_catalog


@pytest.mark.usefixtures("configured_catalog")
def test_a_mistyped_source_can_be_forgotten_and_the_audit_log_says_so(tmp_path: Path, library: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "same.jpg").write_bytes((library / "copy.jpg").read_bytes())
    run_cli("scan", "--workers", "1", str(library), str(other), "no/such", cwd=tmp_path, check=False)

    run_cli("sources", "forget", "no/such", "--by", "ana", "--reason", "typo", cwd=tmp_path)
    run_cli("sources", "forget", str(other), "--by", "ana", cwd=tmp_path)
    listing = run_cli("sources", cwd=tmp_path).stdout
    assert "other  0 present, 1 gone, forgotten" in listing and "no/such  0 present, 0 gone, forgotten" in listing

    run_cli("report", "--format", "json", "-o", "r.json", cwd=tmp_path)
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert [s["uri"] for s in report["sources"]] == [library.resolve().as_uri()]
    assert report["errors"] == []  # the typo's listing error left the report with it
    [cluster] = report["clusters"]
    assert all(m["uri"].startswith(library.resolve().as_uri()) for m in cluster["members"])

    run_cli("audit", "export", "-o", "audit.csv", cwd=tmp_path)
    with (tmp_path / "audit.csv").open(encoding="utf-8-sig") as f:
        forgotten = [row for row in csv.DictReader(f) if row["event"] == "source_forgotten"]
    assert len(forgotten) == 2 and all(row["actor"] == "ana" for row in forgotten)

    run_cli("scan", "--workers", "1", str(other), cwd=tmp_path)  # scanning it again brings it back
    assert "other  1 present, 0 gone, last scanned" in run_cli("sources", cwd=tmp_path).stdout


@pytest.mark.usefixtures("configured_catalog")
def test_plan_apply_and_runs_speak_json_for_scripts(tmp_path: Path, library: Path) -> None:
    run_cli("scan", "--workers", "1", str(library), cwd=tmp_path)
    made = run_cli("plan", "--json", "--action", "tag", "--by", "ana", "-o", "plan.json", cwd=tmp_path)
    plan = json.loads(made.stdout)
    assert plan["steps"] == 2 and plan["clusters"] == 1 and plan["policy"]["author_may_sign"] is False
    run_cli("approve", "plan.json", "--by", "lee", "--role", "legal", cwd=tmp_path)
    applied = json.loads(run_cli("apply", "--json", "plan.json", cwd=tmp_path).stdout)
    assert applied["plan_id"] == plan["plan_id"] and applied["finished"] is True
    assert applied["counts"] == {"applied": 2}
    assert {Path(s["path"]).name for s in applied["steps"]} == {"海報.jpg", "copy.jpg"}  # decoded, not %E6%B5%B7...
    [run] = json.loads(run_cli("runs", "--json", cwd=tmp_path).stdout)
    assert run["id"] == applied["run_id"] and run["status"] == "finished"


def _scan_on_a_terminal(tmp_path: Path, library: Path) -> str:
    """Run a scan with its stderr on a pseudo-terminal, as at an admin's prompt; return what the terminal got."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dam_dedupe", "scan", "--workers", "1", str(library)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait() == 0
    return seen.decode("utf-8", "replace")


def test_a_scan_shows_listing_fingerprinting_and_matching_on_a_terminal_and_nothing_in_a_log(
    tmp_path: Path, library: Path
) -> None:
    shown = _scan_on_a_terminal(tmp_path, library)
    assert f"listing {library.as_uri()}: 2 assets listed" in shown, shown
    assert "fingerprinting" in shown and "matching: " in shown, shown
    logged = run_cli("scan", "--workers", "1", "--reread", str(library), cwd=tmp_path).stderr
    assert not any(line in logged for line in ("listing file:", "fingerprinting", "matching: ")), logged


def test_tags_on_local_files_have_one_readable_name_and_apply_says_where_they_are(
    tmp_path: Path, library: Path
) -> None:
    copy = library / "copy.jpg"
    os.setxattr(copy, "user.dam_dedupe.dam-dedupe.role", b"reviewed")  # as an earlier version named its tags
    os.setxattr(copy, "user.xdg.origin.url", b"https://intranet/p.jpg")  # another program's attribute
    os.setxattr(copy, "user.thumbnail", bytes(range(256)))  # a binary value: no tag, never touched
    run_cli("scan", "--workers", "1", str(library), cwd=tmp_path)
    run_cli("plan", "--action", "tag", "--by", "ana", "-o", "plan.json", cwd=tmp_path)
    run_cli("approve", "plan.json", "--by", "lee", "--role", "legal", cwd=tmp_path)
    out = run_cli("apply", "plan.json", cwd=tmp_path).stdout
    assert "copy.jpg: tagged dam-dedupe.cluster=" in out and "dam-dedupe.role=duplicate" in out, out
    assert f"tags on {library.as_uri()} are in extended attributes user.* (getfattr -d FILE)" in out, out
    names = set(os.listxattr(copy))
    assert {"user.dam-dedupe.cluster", "user.dam-dedupe.role", "user.dam-dedupe.canonical"} <= names
    assert not [n for n in names if n.startswith("user.dam_dedupe.")]  # no doubled name left
    assert os.getxattr(copy, "user.dam-dedupe.role") == b"duplicate"
    assert os.getxattr(copy, "user.xdg.origin.url") == b"https://intranet/p.jpg"
    assert os.getxattr(copy, "user.thumbnail") == bytes(range(256))

    [run] = json.loads(run_cli("runs", "--json", cwd=tmp_path).stdout)
    run_cli("undo", run["id"], cwd=tmp_path)
    assert os.getxattr(copy, "user.dam-dedupe.role") == b"reviewed"  # the earlier tag, under its one name
    assert "user.dam-dedupe.cluster" not in os.listxattr(copy)
    assert os.getxattr(copy, "user.thumbnail") == bytes(range(256))
