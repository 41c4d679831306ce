"""The governance workflow: plan, sign-off, apply with a journal, undo, and the audit log.

The Python API (the CLI in :mod:`dam_dedupe.governance.commands` is a thin layer over it)::

    from dam_dedupe.governance import Selection, make_plan, approve, apply_plan, undo_run

    plan = make_plan(catalog, host, config, "quarantine", {"merge": "yes"}, Selection(), by="ana")
    approve(catalog, config, plan, by="lee", role="legal")
    report = apply_plan(catalog, host, config, plan, by="ana")
    undo_run(catalog, host, config, report.run_id, by="ana")

``docs/governance.md`` walks an admin, a legal reviewer and an auditor through it.
"""

from dam_dedupe.decisions import Decisions, read_decisions
from dam_dedupe.governance.apply import apply_plan
from dam_dedupe.governance.plan import Plan, PlanEdited, read_plan, write_plan
from dam_dedupe.governance.planner import Selection, make_plan
from dam_dedupe.governance.runner import RunReport, StepResult
from dam_dedupe.governance.signoff import NotApproved, approve
from dam_dedupe.governance.undo import undo_run

__all__ = [
    "Decisions",
    "NotApproved",
    "Plan",
    "PlanEdited",
    "RunReport",
    "Selection",
    "StepResult",
    "apply_plan",
    "approve",
    "make_plan",
    "read_decisions",
    "read_plan",
    "undo_run",
    "write_plan",
]
