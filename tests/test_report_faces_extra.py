"""The faces extra: without LiteRT the analyser imports, names the extra and flags nothing; with it, it is ready."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dam_dedupe.cli import main
from tests.conftest import picture, run_cli, save

SCRIPT = """
import sys
sys.modules["ai_edge_litert"] = None  # as if ai-edge-litert were not installed
from PIL import Image
from dam_dedupe.errors import MissingExtra
from dam_dedupe.plugins import faces
from dam_dedupe.records import AssetRecord
try:
    faces.check_available()
except MissingExtra as exc:
    print(exc)
asset = AssetRecord(source="file:///x", key="a", uri="file:///x/a", size=1)
print(faces.dam_dedupe_analyse_asset(asset, Image.new("RGB", (64, 64)), {}))
"""


def test_without_litert_the_faces_analyser_names_the_extra_and_stands_aside() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert "pip install 'dam-dedupe[faces]'" in lines[0]
    assert lines[1] == "None"


def test_a_scan_without_litert_says_once_that_faces_are_off_however_many_workers(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked" / "ai_edge_litert"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('No module named ai_edge_litert')\n")
    for i in range(6):
        save(picture(i), tmp_path / "lib" / f"{i}.jpg")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "blocked")}  # the scan's workers inherit it too
    err = run_cli("scan", "--workers", "2", str(tmp_path / "lib"), cwd=tmp_path, env=env).stderr
    assert err.count("the faces analyser is off") == 1, err
    assert "pip install 'dam-dedupe[faces]'" in err


def test_plugins_lists_the_analysers_and_their_extras() -> None:
    listing = CliRunner().invoke(main, ["plugins"]).output
    section = listing.split("analysers:\n", 1)[1].splitlines()
    analysers = section[: next((i for i, line in enumerate(section) if not line.startswith("  ")), len(section))]
    assert analysers == ["  faces  [ready]", "  rights  [ready]"]
