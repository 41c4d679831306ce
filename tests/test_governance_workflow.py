"""Plan, approve, apply and undo on a local library with real image duplicates."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from dam_dedupe import hookimpl
from dam_dedupe.action import ActionStep
from dam_dedupe.adapters.local import path_of
from dam_dedupe.catalog import open_catalog
from dam_dedupe.cli import main
from dam_dedupe.errors import ConfigError
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, read_decisions, undo_run
from dam_dedupe.governance.plan import Plan, read_plan, write_plan
from dam_dedupe.governance.stores import AdapterPool
from dam_dedupe.host import Host, make_plugin_manager
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.governance_library import (
    QUARANTINE,
    Library,
    make_library,
    set_tags,
    tags_of,
    tags_state,
    tree_hash,
    tree_state,
)


@pytest.fixture
def lib(tmp_path: Path, catalog_location: str) -> Iterator[Library]:
    library = make_library(tmp_path, catalog_location)
    yield library
    library.catalog.close()


def approved(lib: Library, action: str, params: dict[str, str] | None = None) -> Plan:
    """A plan over every cluster, signed off once (the default policy asks for one sign-off)."""
    plan = make_plan(lib.catalog, lib.host, lib.config, action, params, Selection(), by="ana")
    approve(lib.catalog, lib.config, plan, by="lee", role="legal")
    return plan


def duplicates(lib: Library) -> dict[str, str]:
    """Relative paths of every duplicate (every clustered copy not in the brand folder) -> its canonical's path."""
    found = {}
    for cluster in lib.catalog.clusters():
        assets = lib.catalog.assets_by_id(a for a, _m, _e in cluster.members)
        canonical = assets[cluster.canonical_asset_id].record.key
        for asset_id, asset in assets.items():
            if asset_id != cluster.canonical_asset_id:
                found[asset.record.key] = canonical
    return {unquote(k): unquote(v) for k, v in found.items()}


def test_library_has_duplicates_with_canonicals_in_the_brand_folder(lib: Library) -> None:
    dups = duplicates(lib)
    assert len(dups) == 6
    assert all(canonical.startswith("品牌/") for canonical in dups.values())


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("tag", {}),
        ("quarantine", {}),
        ("quarantine", {"prefix": "held/for-review"}),
        ("redirect", {"pointer": "symlink"}),
        ("redirect", {"pointer": "hardlink"}),
        ("redirect", {"pointer": "stub"}),
    ],
)
def test_round_trip_leaves_every_file_byte_identical(
    lib: Library, tmp_path: Path, action: str, params: dict[str, str]
) -> None:
    start, start_tags, start_hash = tree_state(lib.root), tags_state(lib.root), tree_hash(lib.root)
    dups = duplicates(lib)
    plan = approved(lib, action, params)

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path / "out")

    assert report.count("applied") == len(plan.steps) and not report.count("failed")
    after = tree_state(lib.root)
    for dup, canonical in dups.items():
        if action == "tag":
            assert tags_of(lib.root, dup)["dam-dedupe.role"] == "duplicate"
            assert tags_of(lib.root, dup)["dam-dedupe.canonical"] == (lib.root / canonical).as_uri()
            assert after[dup] == start[dup]
        elif action == "quarantine":
            assert dup not in after  # removed from where it was ...
            prefix = params.get("prefix", QUARANTINE)
            held = [p for p in after if p.startswith(prefix + "/") and p.endswith("/" + dup)]
            assert len(held) == 1 and after[held[0]] == start[dup]  # ... and held intact, once
        elif params["pointer"] == "symlink":
            assert (lib.root / dup).is_symlink() and (lib.root / dup).resolve() == (lib.root / canonical).resolve()
        elif params["pointer"] == "hardlink":
            assert os.path.samefile(lib.root / dup, lib.root / canonical)
        else:
            stub = json.loads((lib.root / dup).read_text(encoding="utf-8"))
            assert stub["redirect_to"] == (lib.root / canonical).as_uri()
    for canonical in set(dups.values()):
        assert after[canonical] == start[canonical]  # the canonical's bytes are never touched
    if action == "tag":
        assert tags_of(lib.root, next(iter(dups.values())))["dam-dedupe.role"] == "canonical"
    if action == "redirect":
        with (tmp_path / "out" / f"redirects-{report.run_id}.csv").open(encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        assert {(r["old_uri"], r["canonical_uri"]) for r in rows} == {
            ((lib.root / d).as_uri(), (lib.root / c).as_uri()) for d, c in dups.items()
        }
        assert json.loads((tmp_path / "out" / f"redirects-{report.run_id}.json").read_text())["redirects"] == rows

    undone = undo_run(lib.catalog, lib.host, lib.config, report.run_id, by="ana")

    assert undone.count("undone") == len(plan.steps)
    assert tree_state(lib.root) == start
    assert tree_hash(lib.root) == start_hash
    assert tags_state(lib.root) == start_tags


def test_a_rescan_after_redirecting_to_stubs_skips_the_stubs_and_finds_no_duplicates(
    lib: Library, tmp_path: Path
) -> None:
    dups = duplicates(lib)
    plan = approved(lib, "redirect", {"pointer": "stub"})
    apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path / "out")

    summary = run_scan([SourceSpec(lib.uri)], lib.catalog, lib.host, lib.config, workers=1)

    assert summary.errors == 0 and lib.catalog.problems() == []
    assert summary.skipped == len(dups)  # each stub, read once and recognised
    assert lib.catalog.clusters() == []
    for dup, canonical in dups.items():
        stub = lib.catalog.asset_by_uri((lib.root / dup).as_uri())
        assert stub is not None and stub.state.content == "skipped"
        assert stub.state.error == f"redirect stub pointing to {(lib.root / canonical).as_uri()}"
    again = run_scan([SourceSpec(lib.uri)], lib.catalog, lib.host, lib.config, workers=1)
    assert (again.errors, again.fingerprinted, again.unchanged) == (0, 0, again.listed)


def test_quarantine_writes_a_manifest_that_names_every_copy(lib: Library, tmp_path: Path) -> None:
    plan = approved(lib, "quarantine")
    report = apply_plan(lib.catalog, lib.host, lib.config, plan, out_dir=tmp_path)

    manifest = json.loads((lib.root / QUARANTINE / "manifests" / f"{report.run_id}.json").read_text(encoding="utf-8"))

    assert {e["original_uri"] for e in manifest["entries"]} == {(lib.root / d).as_uri() for d in duplicates(lib)}
    for entry in manifest["entries"]:
        held = path_of(entry["quarantine_uri"])
        assert hashlib.sha256(held.read_bytes()).hexdigest() == entry["sha256"]
        assert not path_of(entry["original_uri"]).exists()


def test_a_rescan_after_quarantine_reports_no_duplicates_left(lib: Library, tmp_path: Path) -> None:
    apply_plan(lib.catalog, lib.host, lib.config, approved(lib, "quarantine"), out_dir=tmp_path)

    summary = run_scan([SourceSpec(lib.uri)], lib.catalog, lib.host, lib.config, workers=1)

    assert summary.gone == 6  # the six duplicates left their places
    assert lib.catalog.clusters() == []  # and the quarantine area is not scanned: its copies are no duplicates


def test_merge_carries_duplicate_tags_to_the_canonical_and_undo_reverts_them(lib: Library, tmp_path: Path) -> None:
    dups = duplicates(lib)
    dup, canonical = next(iter(dups.items()))
    set_tags(lib.root, dup, {"photographer": "陳大文"})
    set_tags(lib.root, canonical, {"licence": "CC-BY"})
    start_tags = tags_state(lib.root)
    plan = approved(lib, "quarantine", {"merge": "yes"})

    merge_steps = [s for s in plan.steps if s.operation == "merge_tags"]
    assert [s.params["add_tags"] for s in merge_steps] == [{"photographer": "陳大文"}]  # signed off in the plan
    report = apply_plan(lib.catalog, lib.host, lib.config, plan, out_dir=tmp_path)
    assert tags_of(lib.root, canonical) == {"licence": "CC-BY", "photographer": "陳大文"}

    undo_run(lib.catalog, lib.host, lib.config, report.run_id)
    assert tags_state(lib.root) == start_tags


def test_tag_undo_restores_earlier_tags_exactly(lib: Library, tmp_path: Path) -> None:
    dup = next(iter(duplicates(lib)))
    set_tags(lib.root, dup, {"dam-dedupe.role": "left by an older run", "project": "Harbour Night"})
    start_tags = tags_state(lib.root)
    report = apply_plan(lib.catalog, lib.host, lib.config, approved(lib, "tag"), out_dir=tmp_path)
    assert tags_of(lib.root, dup)["project"] == "Harbour Night"  # merged, not replaced
    assert tags_of(lib.root, dup)["dam-dedupe.role"] == "duplicate"

    undo_run(lib.catalog, lib.host, lib.config, report.run_id)

    assert tags_state(lib.root) == start_tags


def test_a_quarantine_prefix_must_be_a_plain_key_path(lib: Library) -> None:
    with pytest.raises(ConfigError, match="letters, digits"):
        make_plan(lib.catalog, lib.host, lib.config, "quarantine", {"prefix": "held for review"}, by="ana")


def test_an_asset_changed_after_planning_is_skipped_with_a_reason(lib: Library, tmp_path: Path) -> None:
    plan = approved(lib, "quarantine")
    changed = lib.root / "Marketing 2026" / "IMG_4001.JPG"
    changed.write_bytes(changed.read_bytes() + b"edited")
    gone = lib.root / "活動相片" / "相片 2.jpg"
    gone.unlink()

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, out_dir=tmp_path)

    skipped = {r.step.target.uri: r.reason for r in report.results if r.outcome == "skipped"}
    assert set(skipped) == {changed.as_uri(), gone.as_uri()}
    assert "changed since the plan was made" in skipped[changed.as_uri()]
    assert "gone" in skipped[gone.as_uri()]
    assert changed.read_bytes().endswith(b"edited")  # left exactly as it is
    assert report.count("applied") == len(plan.steps) - 2


def test_copies_of_a_canonical_gone_since_planning_are_left_alone(lib: Library, tmp_path: Path) -> None:
    plan = approved(lib, "redirect")
    canonical = lib.root / "品牌" / "master_0.jpg"
    canonical.rename(tmp_path / "moved away.jpg")
    its_copies = [s.target.uri for s in plan.steps if s.canonical.uri == canonical.as_uri()]

    report = apply_plan(lib.catalog, lib.host, lib.config, plan, out_dir=tmp_path)

    skipped = {r.step.target.uri: r.reason for r in report.results if r.outcome == "skipped"}
    assert sorted(skipped) == sorted(its_copies) and len(its_copies) == 2
    assert all(f"its canonical {canonical.as_uri()} is gone" in reason for reason in skipped.values())
    assert all(path_of(uri).is_file() and not path_of(uri).is_symlink() for uri in its_copies)


def test_listeners_are_told_of_every_step(lib: Library, tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    class Listener:
        @hookimpl
        def dam_dedupe_action_applied(self, step: ActionStep, outcome: str) -> None:
            seen.append((step.target.uri, outcome))

    host = Host(make_plugin_manager([Listener()]))
    plan = approved(lib, "tag")
    report = apply_plan(lib.catalog, host, lib.config, plan, out_dir=tmp_path)
    undo_run(lib.catalog, host, lib.config, report.run_id)

    assert [o for _u, o in seen] == ["applied"] * len(plan.steps) + ["undone"] * len(plan.steps)


def test_selection_filters_and_reviewer_decisions_shape_the_plan(lib: Library, tmp_path: Path) -> None:
    clusters = {c.id: c for c in lib.catalog.clusters()}
    assets = lib.catalog.assets_by_id(a for c in clusters.values() for a, _m, _e in c.members)
    ids = sorted(clusters)
    left_out, member_cluster, recanonical = ids[0], ids[1], ids[2]
    member = next(
        assets[a].record.uri
        for a, _m, _e in clusters[member_cluster].members
        if a != clusters[member_cluster].canonical_asset_id
    )
    new_canonical = next(
        assets[a].record.uri
        for a, _m, _e in clusters[recanonical].members
        if a != clusters[recanonical].canonical_asset_id
    )
    old_canonical = assets[clusters[recanonical].canonical_asset_id].record.uri
    path = tmp_path / "decisions.json"
    path.write_text(
        json.dumps(
            {
                "exported_by": "Mei Ling",
                "exported_at": "2026-11-25T09:30:00+08:00",
                "decisions": [
                    {"cluster": left_out, "decision": "not_duplicates"},
                    {"cluster": member_cluster, "decision": "exclude_member", "uri": member},
                    {"cluster": recanonical, "decision": "canonical", "uri": new_canonical},
                    {"cluster": "c-0000000000000000", "decision": "exclude"},
                ],
            }
        ),
        encoding="utf-8",
    )

    plan = make_plan(lib.catalog, lib.host, lib.config, "quarantine", {}, Selection(), read_decisions(path), by="ana")

    targets = {s.target.uri for s in plan.steps}
    assert not any(s.cluster == left_out for s in plan.steps)
    assert member not in targets
    assert new_canonical not in targets and old_canonical in targets
    assert all(s.canonical.uri == new_canonical for s in plan.steps if s.cluster == recanonical)
    assert plan.body["decisions"]["exported_by"] == "Mei Ling"
    effects = sorted(i["effect"] for i in plan.body["decisions"]["items"])
    stale = "cluster no longer in the catalog; ignored"
    assert effects == ["canonical changed", "cluster left out", stale, "copy left alone"]

    only_marketing = make_plan(
        lib.catalog, lib.host, lib.config, "quarantine", {}, Selection(clusters=(member_cluster,)), by="ana"
    )
    assert {s.cluster for s in only_marketing.steps} == {member_cluster}


# -- refusals, through the command line a user types -------------------------------------------------


def cli(lib: Library, tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["--catalog", lib.catalog.location, "--config", str(tmp_path / "dam-dedupe.toml"), *args]
    )
    return result.exit_code, result.output


def test_apply_refuses_without_the_required_signoffs(lib: Library, tmp_path: Path) -> None:
    (tmp_path / "dam-dedupe.toml").write_text('[governance]\nrequired_roles = ["it", "legal"]\n', encoding="utf-8")
    start = tree_state(lib.root)
    plan_file = str(tmp_path / "plan.json")
    assert cli(lib, tmp_path, "plan", "--action", "quarantine", "--by", "ana", "-o", plan_file)[0] == 0

    code, out = cli(lib, tmp_path, "apply", plan_file)
    assert code == 1 and "is not approved" in out and "a sign-off as it" in out and "a sign-off as legal" in out
    code, out = cli(lib, tmp_path, "apply", plan_file, "--dry-run")  # reviewers may look before signing
    assert code == 0 and "not approved yet" in out and "6 steps would run" in out

    assert cli(lib, tmp_path, "approve", plan_file, "--by", "lee", "--role", "legal")[0] == 0
    code, out = cli(lib, tmp_path, "approve", plan_file, "--by", " Lee ", "--role", "it")
    assert code == 1 and "one role per person" in out  # refused before it is recorded, whatever the spelling
    code, out = cli(lib, tmp_path, "apply", plan_file)
    assert code == 1 and "a sign-off as it" in out
    code, out = cli(lib, tmp_path, "approve", plan_file, "--by", "kai", "--role", "janitor")
    assert code == 2 and "not one of the plan's required roles" in out  # a usage mistake
    assert tree_state(lib.root) == start

    assert cli(lib, tmp_path, "approve", plan_file, "--by", "kim", "--role", "it")[0] == 0
    code, out = cli(lib, tmp_path, "apply", plan_file, "--out-dir", str(tmp_path))
    assert code == 0 and "applied 6" in out and "scan the sources again" in out


def test_the_planner_may_not_sign_their_own_plan_unless_the_policy_allows(lib: Library, tmp_path: Path) -> None:
    config = tmp_path / "dam-dedupe.toml"
    config.write_text("", encoding="utf-8")
    plan_file = str(tmp_path / "plan.json")
    assert cli(lib, tmp_path, "plan", "--action", "tag", "--by", "ana", "-o", plan_file)[0] == 0
    code, out = cli(lib, tmp_path, "approve", plan_file, "--by", "ANA", "--role", "legal")
    assert code == 1 and "ana made plan" in out and "may not sign it off" in out
    code, out = cli(lib, tmp_path, "apply", plan_file)
    assert code == 1 and "is not approved" in out
    config.write_text("[governance]\nauthor_may_sign = true\n", encoding="utf-8")  # a laxer config later
    code, out = cli(lib, tmp_path, "approve", plan_file, "--by", "ana", "--role", "legal")
    assert code == 1 and "may not sign it off" in out  # the plan's own policy still holds

    other = str(tmp_path / "other.json")  # a plan made under author_may_sign = true
    assert cli(lib, tmp_path, "plan", "--action", "tag", "--by", "ana", "-o", other)[0] == 0
    assert cli(lib, tmp_path, "approve", other, "--by", "ana", "--role", "legal")[0] == 0
    config.write_text("", encoding="utf-8")  # the policy tightened after the sign-off
    code, out = cli(lib, tmp_path, "apply", other)
    assert code == 1 and "is not approved" in out
    config.write_text("[governance]\nauthor_may_sign = true\n", encoding="utf-8")
    code, out = cli(lib, tmp_path, "apply", other, "--out-dir", str(tmp_path))
    assert code == 0 and "applied" in out and "policy: roles any one sign-off; the author may sign" in out


def test_apply_refuses_a_plan_edited_after_signoff(lib: Library, tmp_path: Path) -> None:
    (tmp_path / "dam-dedupe.toml").write_text("", encoding="utf-8")
    plan_file = tmp_path / "plan.json"
    plan = approved(lib, "quarantine")
    write_plan(plan, plan_file)
    data = json.loads(plan_file.read_text(encoding="utf-8"))
    data["steps"][0]["target"]["key"] = "品牌/master_0.jpg"  # aim a step at a canonical
    plan_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    start = tree_state(lib.root)

    code, out = cli(lib, tmp_path, "apply", str(plan_file))
    assert code == 1 and "was edited after it was made" in out

    body = {k: v for k, v in data.items() if k != "id"}
    write_plan(Plan.from_body(body), plan_file)  # edited and re-identified: another plan, never approved
    code, out = cli(lib, tmp_path, "apply", str(plan_file))
    assert code == 1 and "was not made with this catalog" in out
    assert tree_state(lib.root) == start
    assert read_plan(tmp_path / "plan.json").id != plan.id


def test_a_plan_is_applied_once_and_undone_once(lib: Library, tmp_path: Path) -> None:
    (tmp_path / "dam-dedupe.toml").write_text("", encoding="utf-8")
    plan_file = tmp_path / "plan.json"
    write_plan(approved(lib, "quarantine"), plan_file)
    code, out = cli(lib, tmp_path, "apply", str(plan_file), "--out-dir", str(tmp_path))
    run_id = next(line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("run "))

    code, out = cli(lib, tmp_path, "apply", str(plan_file))
    assert code == 1 and f"already applied in run {run_id}" in out
    assert run_id in cli(lib, tmp_path, "runs")[1]
    assert cli(lib, tmp_path, "undo", run_id)[0] == 0
    code, out = cli(lib, tmp_path, "undo", run_id)
    assert code == 1 and "already undone" in out


def test_undo_never_overwrites_what_took_a_duplicate_s_place(lib: Library, tmp_path: Path) -> None:
    plan = approved(lib, "quarantine")
    report = apply_plan(lib.catalog, lib.host, lib.config, plan, out_dir=tmp_path)
    newcomer = lib.root / "Marketing 2026" / "IMG_4001.JPG"
    newcomer.write_bytes(b"a new file saved under the old name")

    undone = undo_run(lib.catalog, lib.host, lib.config, report.run_id)

    skipped = [r for r in undone.results if r.outcome == "skipped"]
    assert [r.step.target.uri for r in skipped] == [newcomer.as_uri()]
    assert "now holds other content" in skipped[0].reason
    assert newcomer.read_bytes() == b"a new file saved under the old name"
    held = skipped[0].step.params["quarantine_key"]
    assert (lib.root / unquote(held)).exists()  # the quarantined copy is kept
    assert undone.count("undone") == len(plan.steps) - 1


def test_a_second_run_at_the_same_time_is_refused(lib: Library, tmp_path: Path) -> None:
    (tmp_path / "dam-dedupe.toml").write_text("", encoding="utf-8")
    plan_file = tmp_path / "plan.json"
    write_plan(approved(lib, "quarantine"), plan_file)
    start = tree_state(lib.root)
    running = open_catalog(lib.catalog.location)
    with running.run_lock():  # what a running apply holds (a file lock; on PostgreSQL an advisory lock)
        code, out = cli(lib, tmp_path, "apply", str(plan_file))
    running.close()

    assert code == 1 and "another apply or undo is running" in out
    assert tree_state(lib.root) == start


@pytest.mark.parametrize("action", ["quarantine", "redirect"])
def test_a_half_done_step_is_finished_and_a_done_one_is_not_repeated(lib: Library, action: str) -> None:
    plan = approved(lib, action)
    step = next(s for s in plan.steps if s.role == "duplicate")
    stores = AdapterPool(lib.host, lib.config)
    adapter = stores.adapter(step.target.source)
    original = lib.root / unquote(step.target.key)
    adapter.copy(adapter.stat(step.target.key), step.params["quarantine_key"])  # copied, then the process died
    plugin = lib.host.actions[action](plan.params)

    first = plugin.apply(stores, step, {"tags": {}})
    state = tree_state(lib.root)
    second = plugin.apply(stores, step, {"tags": {}})  # as after a crash before the "after" was journaled

    assert first == second and tree_state(lib.root) == state
    assert not original.is_file() or original.is_symlink()
    held = lib.root / unquote(step.params["quarantine_key"])
    assert hashlib.sha256(held.read_bytes()).hexdigest() == step.target.sha256
    stores.close()


def test_tag_round_trip_where_the_file_system_has_no_extended_attributes(
    lib: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*_args: object) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "listxattr", unsupported)  # as on FAT, exFAT and some SMB shares
    monkeypatch.setattr(os, "setxattr", unsupported)
    start = tree_state(lib.root)
    report = apply_plan(lib.catalog, lib.host, lib.config, approved(lib, "tag"), out_dir=tmp_path)

    sidecars = [p for p in tree_state(lib.root) if p.endswith(".dam-dedupe.json")]
    assert len(sidecars) == len(duplicates(lib)) + len(set(duplicates(lib).values()))
    assert all(tags_of(lib.root, d)["dam-dedupe.role"] == "duplicate" for d in duplicates(lib))

    undo_run(lib.catalog, lib.host, lib.config, report.run_id)
    assert tree_state(lib.root) == start
