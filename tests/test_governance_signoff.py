"""Sign-offs that hold up in an audit: real OpenSSH keys, the policy inside the plan, a log that cannot be cut.

Keys are made here with ``ssh-keygen``, as IT would issue them; the allowed-signers file gives each
person their roles through OpenSSH namespaces.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dam_dedupe.cli import main
from tests.governance_library import Library, make_library, tree_state
from tests.servers.postgres import drop_audit_guards, tamper


@pytest.fixture
def lib(tmp_path: Path, catalog_location: str) -> Iterator[Library]:
    library = make_library(tmp_path, catalog_location)
    yield library
    library.catalog.close()


def keypair(folder: Path, name: str) -> tuple[Path, str]:
    """A new ed25519 key without passphrase; returns the private key's path and the public key line."""
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, (folder / f"{name}.pub").read_text().strip()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Lee may sign as legal, Kim as IT; Eve's key is nobody's in the allowed signers."""
    folder = tmp_path / "keys"
    folder.mkdir()
    lee, lee_pub = keypair(folder, "lee")
    kim, kim_pub = keypair(folder, "kim")
    eve, _ = keypair(folder, "eve")
    (tmp_path / "allowed_signers").write_text(
        f'Lee@Example.org namespaces="dam-dedupe-legal" {lee_pub}\n'
        f'kim@example.org namespaces="dam-dedupe-it" {kim_pub}\n',
        encoding="utf-8",
    )
    (tmp_path / "dam-dedupe.toml").write_text(
        "[governance]\n"
        'required_roles = ["it", "legal"]\n'
        'signatures = "ssh"\n'
        f'allowed_signers = "{tmp_path / "allowed_signers"}"\n'
        f'audit_anchor = "{tmp_path / "elsewhere.anchor"}"\n',
        encoding="utf-8",
    )
    return {"lee": lee, "kim": kim, "eve": eve}


def cli(lib: Library, tmp_path: Path, *args: str, config: str = "dam-dedupe.toml") -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--catalog", lib.catalog.location, "--config", str(tmp_path / config), *args])
    return result.exit_code, result.output


def signed(lib: Library, tmp_path: Path, plan: str, key: Path, role: str) -> str:
    signature = str(tmp_path / f"{key.name}-{role}.sig")
    code, out = cli(lib, tmp_path, "sign", plan, "--key", str(key), "--role", role, "-o", signature)
    assert code == 0, out
    return signature


def make_plan(lib: Library, tmp_path: Path, by: str = "ana", name: str = "plan.json") -> str:
    plan = str(tmp_path / name)
    code, out = cli(lib, tmp_path, "plan", "--action", "quarantine", "--by", by, "-o", plan)
    assert code == 0, out
    assert "roles it, legal" in out and "--signature" in out  # the hint names the roles still needed
    return plan


def test_signed_signoffs_by_the_allowed_keys_approve_and_the_identity_comes_from_the_key(
    lib: Library, tmp_path: Path, keys: dict[str, Path]
) -> None:
    plan = make_plan(lib, tmp_path)
    code, out = cli(
        lib,
        tmp_path,
        "approve",
        plan,
        "--role",
        "legal",
        "--signature",
        signed(lib, tmp_path, plan, keys["lee"], "legal"),
    )
    assert code == 0 and "lee@example.org signed off" in out and "a sign-off as it" in out
    code, out = cli(
        lib, tmp_path, "approve", plan, "--role", "it", "--signature", signed(lib, tmp_path, plan, keys["kim"], "it")
    )
    assert code == 0 and "may now be applied" in out
    code, out = cli(lib, tmp_path, "apply", plan, "--out-dir", str(tmp_path))
    assert code == 0 and "applied 6" in out and "policy: roles it, legal; four eyes; ssh signatures" in out


def test_forged_or_misused_signatures_are_refused(lib: Library, tmp_path: Path, keys: dict[str, Path]) -> None:
    plan = make_plan(lib, tmp_path)
    code, out = cli(lib, tmp_path, "approve", plan, "--role", "legal", "--by", "lee@example.org")
    assert code == 1 and "needs signed sign-offs" in out  # a typed name is not a sign-off
    code, out = cli(
        lib,
        tmp_path,
        "approve",
        plan,
        "--role",
        "legal",
        "--signature",
        signed(lib, tmp_path, plan, keys["eve"], "legal"),
    )
    assert code == 1 and "not in the allowed signers" in out  # an unknown key
    code, out = cli(
        lib, tmp_path, "approve", plan, "--role", "it", "--signature", signed(lib, tmp_path, plan, keys["lee"], "it")
    )
    assert code == 1 and "does not give the role 'it'" in out  # a role the signer does not hold
    legal = signed(lib, tmp_path, plan, keys["lee"], "legal")
    code, out = cli(lib, tmp_path, "approve", plan, "--role", "it", "--signature", legal)
    assert code == 1  # a signature made for one role does not sign another
    other = make_plan(lib, tmp_path, name="other.json")
    code, out = cli(lib, tmp_path, "approve", other, "--role", "legal", "--signature", legal)
    assert code == 1 and "made for another plan" in out  # nor another plan
    code, out = cli(lib, tmp_path, "approve", plan, "--role", "legal", "--signature", legal, "--by", "kim")
    assert code == 1 and "not kim's" in out


def test_the_author_under_another_spelling_is_still_the_author(
    lib: Library, tmp_path: Path, keys: dict[str, Path]
) -> None:
    plan = make_plan(lib, tmp_path, by=" LEE@example.org ")
    code, out = cli(
        lib,
        tmp_path,
        "approve",
        plan,
        "--role",
        "legal",
        "--signature",
        signed(lib, tmp_path, plan, keys["lee"], "legal"),
    )
    assert code == 1 and "made plan" in out and "may not sign it off" in out


def test_a_laxer_config_does_not_weaken_the_plans_policy(lib: Library, tmp_path: Path, keys: dict[str, Path]) -> None:
    plan = make_plan(lib, tmp_path)
    strict = (tmp_path / "dam-dedupe.toml").read_text(encoding="utf-8")
    (tmp_path / "no-signatures.toml").write_text("[governance]\nauthor_may_sign = true\n", encoding="utf-8")
    code, out = cli(lib, tmp_path, "approve", plan, "--role", "legal", "--by", "ana", config="no-signatures.toml")
    assert code != 0 and "lee" not in out  # the plan's policy still asks for signatures, by its allowed signers
    lax = strict.replace('required_roles = ["it", "legal"]', 'required_roles = ["legal"]\nauthor_may_sign = true')
    (tmp_path / "lax.toml").write_text(lax, encoding="utf-8")
    legal = signed(lib, tmp_path, plan, keys["lee"], "legal")
    code, out = cli(lib, tmp_path, "approve", plan, "--role", "legal", "--signature", legal, config="lax.toml")
    assert code == 0 and "a sign-off as it" in out
    code, out = cli(lib, tmp_path, "apply", plan, config="lax.toml")  # the plan still needs its IT sign-off
    assert code == 1 and "a sign-off as it" in out and "(the plan's policy)" in out


def test_a_plan_edited_after_signing_is_refused(lib: Library, tmp_path: Path, keys: dict[str, Path]) -> None:
    plan = make_plan(lib, tmp_path)
    body = json.loads(Path(plan).read_text(encoding="utf-8"))
    body["policy"]["required_roles"] = ["legal"]
    Path(plan).write_text(json.dumps(body), encoding="utf-8")
    code, out = cli(lib, tmp_path, "sign", plan, "--key", str(keys["lee"]), "--role", "legal", "-o", "x.sig")
    assert code == 1 and "was edited after it was made" in out


def test_a_plan_is_applied_once(lib: Library, tmp_path: Path, keys: dict[str, Path]) -> None:
    start = tree_state(lib.root)
    plan = make_plan(lib, tmp_path)
    for who, role in (("lee", "legal"), ("kim", "it")):
        cli(lib, tmp_path, "approve", plan, "--role", role, "--signature", signed(lib, tmp_path, plan, keys[who], role))
    code, out = cli(lib, tmp_path, "apply", plan, "--out-dir", str(tmp_path))
    assert code == 0, out
    run_id = next(line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("run "))
    assert cli(lib, tmp_path, "undo", run_id)[0] == 0
    assert tree_state(lib.root) == start
    code, out = cli(lib, tmp_path, "apply", plan, "--out-dir", str(tmp_path))
    assert code == 1 and "a plan is applied once" in out
    assert tree_state(lib.root) == start


def test_audit_verify_finds_a_forged_signoff_a_dropped_trigger_and_a_cut_tail(
    lib: Library, tmp_path: Path, keys: dict[str, Path]
) -> None:
    plan = make_plan(lib, tmp_path)
    cli(
        lib,
        tmp_path,
        "approve",
        plan,
        "--role",
        "legal",
        "--signature",
        signed(lib, tmp_path, plan, keys["lee"], "legal"),
    )
    code, out = cli(lib, tmp_path, "audit", "verify")
    assert code == 0 and "matches the anchor" in out
    plan_id = json.loads(Path(plan).read_text(encoding="utf-8"))["id"]

    where = lib.catalog.location
    tamper(
        where,
        f"INSERT INTO signoffs (plan_id, signed_by, role, note, at) VALUES ('{plan_id}', 'mallory', 'it', '', 'now')",
    )
    code, out = cli(lib, tmp_path, "audit", "verify")
    assert code == 1 and "by mallory as it is not in the audit log" in out
    code, out = cli(lib, tmp_path, "apply", plan)
    assert code == 1 and "a sign-off as it" in out  # approvals come from the chain, not the table

    tamper(
        where,
        "DELETE FROM signoffs WHERE signed_by = 'mallory'",
        *drop_audit_guards(where),
        "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)",  # the approval, cut
    )
    code, out = cli(lib, tmp_path, "audit", "verify", "--anchor", str(tmp_path / "elsewhere.anchor"))
    assert code == 1 and "triggers that keep the audit log append-only were removed" in out
    assert "(the log was cut)" in out
