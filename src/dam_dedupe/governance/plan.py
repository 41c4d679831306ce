"""The plan document: what an action will do, asset by asset, as reviewers sign it off.

A plan is JSON. Its id is derived from its content (``p-`` and the first 20 hex digits of
the SHA-256 of everything else in it, in a fixed JSON form), so a plan edited after it was
made no longer matches its id, and a plan edited and re-identified is another plan,
with no sign-offs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dam_dedupe.action import ActionStep
from dam_dedupe.errors import ConfigError, DamDedupeError

SCHEMA = "dam-dedupe/plan/1"


class PlanEdited(DamDedupeError):
    """The plan file's content no longer matches its id: it was changed after it was made."""


def canonical_json(value: Any) -> str:
    """The fixed JSON form ids and hashes are computed over: sorted keys, no spaces, UTF-8 text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def plan_id_of(body: dict[str, Any]) -> str:
    """The id a plan body must carry."""
    return "p-" + hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class Plan:
    """A plan: its id and its body (everything but the id).

    The body holds ``schema``, ``action``, ``params``, ``created``, ``created_by``,
    ``selection``, ``decisions``, ``stored_decisions``, ``clusters``, ``excluded`` and ``steps``; see
    ``docs/governance.md`` for each field.
    """

    id: str
    body: dict[str, Any]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Plan:
        """Make a plan, computing its id."""
        return cls(plan_id_of(body), body)

    @property
    def action(self) -> str:
        """The action plugin's name."""
        return str(self.body["action"])

    @property
    def params(self) -> dict[str, str]:
        """The action's plan-level parameters."""
        return dict(self.body["params"])

    @property
    def steps(self) -> list[ActionStep]:
        """The steps, in the order ``apply`` runs them."""
        return [ActionStep.from_json(step) for step in self.body["steps"]]

    def to_json(self) -> dict[str, Any]:
        """The whole document, id first."""
        return {"id": self.id, **self.body}


def write_plan(plan: Plan, path: Path) -> None:
    """Write a plan file (indented for reading; the id does not depend on the layout)."""
    path.write_text(json.dumps(plan.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def read_plan(path: Path) -> Plan:
    """Read a plan file and check that its content still matches its id.

    Raises :class:`PlanEdited` when it does not, and :class:`ConfigError` when the file
    is not a plan at all.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"plan file {path} does not exist") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a plan file (not valid JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or "id" not in data:
        raise ConfigError(f"{path} is not a dam-dedupe plan ({SCHEMA})")
    stated = data.pop("id")
    plan = Plan.from_body(data)
    if plan.id != stated:
        raise PlanEdited(
            f"{path} was edited after it was made: its content no longer matches its id {stated}. "
            "Make a new plan with 'dam-dedupe plan' and have it approved again."
        )
    return plan
