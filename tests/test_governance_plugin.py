"""A third-party action, installed as a package through the real entry-point path, runs the whole workflow."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from dam_dedupe.host import Host
from tests.conftest import pip_install
from tests.governance_library import make_library, tree_state

PACKAGE = Path(__file__).parent / "action_plugin_pkg"
DOCS = Path(__file__).parent.parent / "docs" / "governance.md"


@pytest.fixture(scope="module")
def note_action_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example action package as pip installs it (with its entry point), on ``sys.path``."""
    target = pip_install(PACKAGE, tmp_path_factory.mktemp("action-site"))
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("dam_dedupe_noteaction", None)


def test_the_docs_show_the_example_action_exactly_as_installed() -> None:
    code = (PACKAGE / "dam_dedupe_noteaction" / "__init__.py").read_text(encoding="utf-8")
    assert f"```python\n{code}```" in DOCS.read_text(encoding="utf-8")


def test_an_installed_action_plugin_plans_applies_and_undoes(note_action_site: Path, tmp_path: Path) -> None:
    lib = make_library(tmp_path)
    host = Host()
    assert "note" in host.actions and host.plugin_name(sys.modules["dam_dedupe_noteaction"]) == "note"
    start = tree_state(lib.root)
    plan = make_plan(lib.catalog, host, lib.config, "note", {}, Selection(), by="ana")
    approve(lib.catalog, lib.config, plan, by="lee", role="legal")

    report = apply_plan(lib.catalog, host, lib.config, plan, out_dir=tmp_path)

    notes = sorted(set(tree_state(lib.root)) - set(start))
    assert report.count("applied") == 6 and len(notes) == 6 and all(n.endswith(".duplicate.txt") for n in notes)
    note = (lib.root / notes[0]).read_text(encoding="utf-8")
    assert note.startswith(f"This is a copy of {(lib.root / '品牌').as_uri()}/master_")

    undo_run(lib.catalog, host, lib.config, report.run_id)
    assert tree_state(lib.root) == start
    lib.catalog.close()
