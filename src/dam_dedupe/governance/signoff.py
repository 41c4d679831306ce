"""Sign-off: which roles must approve a plan before ``apply``, and recording approvals.

``dam-dedupe.toml`` names the roles::

    [governance]
    required_roles = ["it", "legal", "compliance"]

Each role needs a sign-off by a different person (one person cannot fill two roles).
With no ``required_roles``, one sign-off in any role is enough. The person who made a plan
may not sign it off (four eyes), unless ``author_may_sign = true`` says a one-person team
may.
"""

from __future__ import annotations

from dam_dedupe.catalog import Catalog, SignOff
from dam_dedupe.config import Config
from dam_dedupe.errors import ConfigError, DamDedupeError
from dam_dedupe.governance import audit
from dam_dedupe.governance.plan import Plan, canonical_json


class NotApproved(DamDedupeError):
    """A plan lacks the sign-offs ``apply`` requires."""


def required_roles(config: Config) -> tuple[str, ...]:
    """The roles from ``[governance] required_roles`` (empty: any one sign-off will do)."""
    roles = config.sections.get("governance", {}).get("required_roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise ConfigError('[governance] required_roles must be a list of role names, e.g. ["it", "legal"]')
    return tuple(dict.fromkeys(roles))


def author_may_sign(config: Config) -> bool:
    """``[governance] author_may_sign``: whether the person who made a plan may sign it off (default no)."""
    value = config.sections.get("governance", {}).get("author_may_sign", False)
    if not isinstance(value, bool):
        raise ConfigError("[governance] author_may_sign must be true or false")
    return value


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


def missing_signoffs(signoffs: list[SignOff], roles: tuple[str, ...]) -> list[str]:
    """Say what is missing for ``roles`` to be covered by different people (empty when approved)."""
    if not roles:
        return [] if signoffs else ["at least one sign-off"]
    people_by_role = {role: sorted({s.signed_by for s in signoffs if s.role == role}) for role in roles}
    unsigned = [role for role, people in people_by_role.items() if not people]
    if unsigned:
        return [f"a sign-off as {role}" for role in unsigned]
    if not _distinct_people(list(roles), people_by_role, set()):
        return [f"different people for the roles {list(roles)} (one person may not fill two roles)"]
    return []


def _distinct_people(roles: list[str], people_by_role: dict[str, list[str]], taken: set[str]) -> bool:
    if not roles:
        return True
    first, rest = roles[0], roles[1:]
    return any(
        _distinct_people(rest, people_by_role, taken | {person})
        for person in people_by_role[first]
        if person not in taken
    )


def approve(catalog: Catalog, config: Config, plan: Plan, by: str, role: str, note: str = "") -> list[str]:
    """Record ``by``'s sign-off of ``plan`` as ``role``; return what is still missing before ``apply``.

    Refuses a plan the catalog did not make, a role outside ``required_roles`` (when set),
    a second sign-off by the same person in the same role, and a sign-off by the plan's
    author (unless :func:`author_may_sign`).
    """
    if not by.strip() or not role.strip():
        raise ConfigError("a sign-off needs who signs (--by) and in which role (--role)")
    check_registered(catalog, plan)
    if by == plan.body.get("created_by") and not author_may_sign(config):
        raise DamDedupeError(
            f"{by} made plan {plan.id} and may not sign it off: someone else must "
            "(a one-person team can allow it with [governance] author_may_sign = true)"
        )
    roles = required_roles(config)
    if roles and role not in roles:
        raise ConfigError(f"role '{role}' is not one of the required roles {list(roles)} ([governance] in the config)")
    existing = catalog.signoffs(plan.id)
    if any(s.signed_by == by and s.role == role for s in existing):
        raise DamDedupeError(f"{by} has already signed off plan {plan.id} as {role}")
    signoff = SignOff(plan.id, by, role, note, audit.now())
    with catalog.transaction():
        catalog.add_signoff(signoff)
        audit.record(catalog, by, "approve", plan.id, detail={"role": role, "note": note})
    return missing_signoffs([*existing, signoff], roles)
