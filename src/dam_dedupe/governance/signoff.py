"""Sign-off: the policy a plan is approved under, and approvals that prove who signed.

``dam-dedupe.toml`` sets the policy::

    [governance]
    required_roles = ["it", "legal", "compliance"]
    signatures = "ssh"                        # sign-offs are OpenSSH signatures ...
    allowed_signers = "/etc/dam-dedupe/allowed_signers"   # ... by these keys, in these roles
    allowed_actions = ["tag", "quarantine"]   # optional: the actions plans may use

Each required role needs a sign-off by a different person, and one person holds one role
per plan. The person who made a plan may not sign it off (four eyes) unless
``author_may_sign = true``. Names are compared as :func:`~dam_dedupe.governance.signatures.person`
spells them, and with ``signatures`` set a signer's identity comes from their key.

The policy is written into the plan when it is made, so it is hashed and signed with it;
``apply`` enforces the stricter of the plan's policy and the configuration it runs with,
and says which it used. Approvals are read from the hash-chained audit log, not from the
sign-off table (a cache that ``audit verify`` checks against the chain), and each
signature is checked again at apply time against the allowed signers then in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dam_dedupe.catalog import Catalog, SignOff
from dam_dedupe.config import Config
from dam_dedupe.errors import ConfigError, DamDedupeError
from dam_dedupe.governance import audit
from dam_dedupe.governance.plan import Plan, canonical_json
from dam_dedupe.governance.signatures import SignatureRefused, SignatureScheme, person, plan_message
from dam_dedupe.host import Host


class NotApproved(DamDedupeError):
    """A plan lacks the sign-offs ``apply`` requires."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules a plan is signed off and applied under.

    Attributes:
        required_roles: each needs a sign-off by a different person (empty: any one sign-off).
        author_may_sign: whether the plan's author may sign it off.
        signatures: the signature scheme sign-offs must use, or ``None`` for typed names.
        actions: the actions plans may use (empty: any).
        source: where these rules came from, in words, for ``apply``'s output.
    """

    required_roles: tuple[str, ...] = ()
    author_may_sign: bool = False
    signatures: str | None = None
    actions: tuple[str, ...] = ()
    source: str = "the configuration"

    def to_json(self) -> dict[str, Any]:
        """The form written into a plan body."""
        return {
            "required_roles": list(self.required_roles),
            "author_may_sign": self.author_may_sign,
            "signatures": self.signatures,
            "actions": list(self.actions),
        }

    def describe(self) -> str:
        """One line for people: roles, four eyes, signatures."""
        roles = ", ".join(self.required_roles) or "any one sign-off"
        eyes = "the author may sign" if self.author_may_sign else "four eyes"
        signed = f"{self.signatures} signatures" if self.signatures else "unsigned names"
        return f"roles {roles}; {eyes}; {signed} ({self.source})"


def config_policy(config: Config) -> Policy:
    """The policy ``[governance]`` sets now."""
    table = config.sections.get("governance", {})
    roles = table.get("required_roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r.strip() for r in roles):
        raise ConfigError('[governance] required_roles must be a list of role names, e.g. ["it", "legal"]')
    return Policy(
        required_roles=tuple(dict.fromkeys(r.strip() for r in roles)),
        author_may_sign=bool(table.get("author_may_sign", False)),
        signatures=table.get("signatures") or None,
        actions=tuple(table.get("allowed_actions", [])),
    )


def plan_policy(plan: Plan) -> Policy | None:
    """The policy written into the plan when it was made (``None`` for plans made before policies travelled)."""
    data = plan.body.get("policy")
    if not isinstance(data, dict):
        return None
    return Policy(
        required_roles=tuple(data.get("required_roles", [])),
        author_may_sign=bool(data.get("author_may_sign", False)),
        signatures=data.get("signatures") or None,
        actions=tuple(data.get("actions", [])),
        source="the plan's policy",
    )


def effective_policy(plan: Plan, config: Config) -> Policy:
    """The stricter of the plan's policy and the configuration's, rule by rule, saying which it is."""
    now, made = config_policy(config), plan_policy(plan)
    if made is None:
        return now
    roles = tuple(dict.fromkeys([*made.required_roles, *now.required_roles]))
    actions = (
        tuple(a for a in made.actions if a in now.actions)
        if made.actions and now.actions
        else (made.actions or now.actions)
    )
    stricter = Policy(roles, made.author_may_sign and now.author_may_sign, made.signatures or now.signatures, actions)
    if stricter.to_json() == made.to_json():
        source = "the plan's policy"
    elif stricter.to_json() == now.to_json():
        source = "the configuration, stricter than the plan's policy"
    else:
        source = "the stricter of the plan's policy and the configuration"
    return Policy(stricter.required_roles, stricter.author_may_sign, stricter.signatures, stricter.actions, source)


def scheme(host: Host, config: Config, policy: Policy) -> SignatureScheme | None:
    """The signature scheme the policy names, built with ``[governance]``; ``None`` for unsigned names."""
    if policy.signatures is None:
        return None
    cls = host.signature_schemes.get(policy.signatures)
    if cls is None:
        known = ", ".join(sorted(host.signature_schemes)) or "none"
        raise ConfigError(f"signatures = {policy.signatures!r}: no such signature scheme is installed ({known})")
    return cls(config.sections.get("governance", {}))


def policy_for_plan(host: Host, config: Config, action: str) -> dict[str, Any]:
    """The policy a new plan carries: the configuration's, with the digest of the trust list in force."""
    policy = config_policy(config)
    if policy.actions and action not in policy.actions:
        raise ConfigError(f"[governance] allowed_actions {list(policy.actions)} does not allow '{action}'")
    signer = scheme(host, config, policy)
    return {**policy.to_json(), "trust": signer.trust_digest() if signer else None}


def check_registered(catalog: Catalog, plan: Plan) -> None:
    """Refuse a plan this catalog did not make (a plan file forged or made with another catalog)."""
    body = catalog.plan_body(plan.id)
    if body is None:
        raise DamDedupeError(
            f"plan {plan.id} was not made with this catalog; "
            "make it with 'dam-dedupe plan' against the catalog you apply with"
        )
    if body != canonical_json(plan.body):
        raise DamDedupeError(f"plan {plan.id} differs from the plan registered under that id; make a new plan")


@dataclass(frozen=True, slots=True)
class Approval:
    """One sign-off as the audit chain holds it."""

    identity: str
    role: str
    signature: str | None


def chained_approvals(catalog: Catalog, plan_id: str) -> list[Approval]:
    """The plan's sign-offs, read from the audit chain after checking it is intact."""
    entries = catalog.audit_entries()
    broken = audit.verify(entries)
    if broken:
        raise DamDedupeError(
            "the audit log is damaged, so no sign-off can be trusted: "
            + "; ".join(broken[:3])
            + " (see 'dam-dedupe audit verify')"
        )
    return [
        Approval(
            str(e.detail.get("identity") or person(e.actor)),
            str(e.detail.get("role", "")),
            str(e.detail["signature"]) if e.detail.get("signature") else None,
        )
        for e in entries
        if e.event == "approve" and e.plan_id == plan_id
    ]


def missing_signoffs(signoffs: Sequence[tuple[str, str]], roles: tuple[str, ...]) -> list[str]:
    """Say, role by role, what is missing for ``roles`` to be covered by different people (empty when approved).

    ``signoffs`` are (identity, role) pairs, each person counted in one role only.
    """
    if not roles:
        return [] if signoffs else ["at least one sign-off"]
    covered = {role for _identity, role in signoffs}
    return [f"a sign-off as {role}" for role in roles if role not in covered]


def approval_problems(catalog: Catalog, config: Config, host: Host, plan: Plan) -> tuple[Policy, list[str]]:
    """The policy in force and what the plan still lacks before it may be applied (empty when approved).

    Sign-offs come from the audit chain; each signature is checked again against the trust
    list in force now (a revoked key no longer counts), the author's own sign-offs count only
    where the policy allows, and each person counts in the first role they signed.
    """
    policy = effective_policy(plan, config)
    signer = scheme(host, config, policy)
    author = person(str(plan.body.get("created_by", "")))
    counted: dict[str, str] = {}
    notes: list[str] = []
    for approval in chained_approvals(catalog, plan.id):
        if signer is not None:
            try:
                if (
                    approval.signature is None
                    or signer.verify(plan_message(plan), approval.signature, approval.role) != approval.identity
                ):
                    raise SignatureRefused("unsigned or signed by someone else")
            except SignatureRefused as exc:
                notes.append(f"the sign-off by {approval.identity} as {approval.role} does not count: {exc}")
                continue
        if approval.identity == author and not policy.author_may_sign:
            continue
        if policy.required_roles and approval.role not in policy.required_roles:
            continue
        counted.setdefault(approval.identity, approval.role)
    missing = missing_signoffs([(who, role) for who, role in counted.items()], policy.required_roles)
    return policy, [*missing, *notes] if missing else []


def approve(
    catalog: Catalog,
    config: Config,
    plan: Plan,
    by: str | None = None,
    role: str = "",
    note: str = "",
    signature: str | None = None,
    host: Host | None = None,
) -> list[str]:
    """Record a sign-off of ``plan`` in ``role``; return what is still missing before ``apply``.

    Under a policy with signatures, ``signature`` proves who signs (``by``, if given, must be
    the same person). Refuses a plan the catalog did not make, a role outside the policy's
    required roles, a second sign-off by one person (one role per person per plan), and a
    sign-off by the plan's author unless the policy allows it.
    """
    host = host or Host()
    if not role.strip():
        raise ConfigError("a sign-off needs a role (--role)")
    check_registered(catalog, plan)
    policy = effective_policy(plan, config)
    signer = scheme(host, config, policy)
    if signer is not None:
        if not signature:
            raise DamDedupeError(
                f"plan {plan.id} needs signed sign-offs ({policy.signatures}): sign it with "
                f"'dam-dedupe sign PLAN --key KEY --role {role} -o SIG' and approve with --signature SIG"
            )
        identity = signer.verify(plan_message(plan), signature, role)
        if by and person(by) != identity:
            raise SignatureRefused(f"the signature is {identity}'s, not {by}'s")
    elif not by or not by.strip():
        raise ConfigError("a sign-off needs who signs (--by)")
    else:
        identity = person(by)
    if identity == person(str(plan.body.get("created_by", ""))) and not policy.author_may_sign:
        raise DamDedupeError(
            f"{identity} made plan {plan.id} and may not sign it off: someone else must "
            "(a one-person team can allow it with [governance] author_may_sign = true)"
        )
    if policy.required_roles and role not in policy.required_roles:
        raise ConfigError(f"role '{role}' is not one of the plan's required roles {list(policy.required_roles)}")
    earlier = chained_approvals(catalog, plan.id)
    mine = [a.role for a in earlier if a.identity == identity]
    if mine:
        raise DamDedupeError(f"{identity} has already signed off plan {plan.id} as {mine[0]}; one role per person")
    with catalog.transaction():
        catalog.add_signoff(SignOff(plan.id, identity, role, note, audit.now()))
        detail = {
            "role": role,
            "note": note,
            "identity": identity,
            "scheme": policy.signatures,
            "signature": signature if signer is not None else None,
        }
        audit.record(catalog, identity, "approve", plan.id, detail=detail)
    return approval_problems(catalog, config, host, plan)[1]
