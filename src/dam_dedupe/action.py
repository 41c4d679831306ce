"""The action plugin contract: what ``tag``, ``quarantine`` and ``redirect`` are made of.

An action plugin is a class contributed through the ``dam_dedupe_actions`` hook. It
takes part in the governance workflow at three moments:

1. **plan** (:meth:`ActionPlugin.plan_cluster`): for each chosen cluster it writes the
   :class:`ActionStep` records the plan lists for review and sign-off. Each step names
   the asset it acts on, the exact state it expects (:class:`ExpectedAsset`: content
   hash, size, store etag, version and object id), and its parameters. Reads only.
2. **apply** (:meth:`ActionPlugin.prepare`, then :meth:`ActionPlugin.apply`): the host
   checks the asset is still as planned (``stat``: the version the plan names; for a
   duplicate, its canonical present, unchanged and not the same object, and, once per
   cluster, the canonical's bytes by SHA-256), journals what ``prepare`` read (the
   step's *before*), calls ``apply``, and journals what it returns (the step's
   *after*). ``apply`` is **re-entrant**, not idempotent: called again with the same
   *before* after a crash or a :class:`~dam_dedupe.errors.TransientError`, it inspects
   the store and finishes what is left, never doing a completed part twice. Every write
   it makes is conditional on the version it read, so a store changed by someone else
   refuses it and the step fails or is skipped. **Gone**, during apply, means the
   target's key has no current object: with its verified quarantine copy in place it
   is the step's own earlier removal (done); without one, the step fails and changes
   nothing.
3. **undo** (:meth:`ActionPlugin.undo`): given *before* and *after* (or the parts an
   unfinished step journaled), it puts the store back, verifying restored bytes by
   hash; re-entrant in the same way. A key that now holds other content is never
   overwritten (the step is skipped and its quarantine copy kept); a quarantine copy
   that is gone means there is nothing to restore.

Plugins work only through the :class:`~dam_dedupe.adapter.SourceAdapter` contract
(``stat``, ``open``, ``get_tags``/``set_tags``, ``copy``, ``move``, ``delete``,
``write_object``), so every action works on every store.

**The one rule for destructive steps** (every built-in action uses the helpers at the
end of this module, and so should every other):

- an original is removed only after a copy of it has been read back through the
  adapter and matched by SHA-256 (:func:`verified_copy`, :func:`verified_move`,
  :func:`remove_original`);
- a copy is removed only after the original it stands for is verified present and
  unchanged by SHA-256 (:func:`remove_copy`);
- "already gone" after a delete is success, never a reason to undo the copy: after any
  exception from a delete the store is asked again and the decision is taken from what
  it holds.

Where the store's ``native_move`` is true, a move keeps the object's identity (its id,
versions and sharing), so the helpers move rather than copy-and-delete, and verify the
moved object by hash.

**Outcomes.** A step that raises :class:`~dam_dedupe.errors.TransientError` is left *in
doubt*: the run is not finished, and running ``apply`` (or ``undo``) again hands the
step back to the plugin. :class:`StepSkipped` and every other
:class:`~dam_dedupe.errors.AssetError` are final. A multi-part step journals each part as
it is done (:meth:`Stores.progress`), so that undo reverses every step that did anything,
not only those that finished.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import AssetError, AssetGone, ConfigError, DamDedupeError, TransientError
from dam_dedupe.records import AssetRecord

Role = Literal["canonical", "duplicate"]
"""Whether a step's asset is its cluster's canonical or one of its duplicates."""

READ_CHUNK = 1 << 20


class StepSkipped(DamDedupeError):
    """The asset is not in the state the plan expects (changed, gone, occupied); the step is skipped."""


@dataclass(frozen=True, slots=True)
class ExpectedAsset:
    """An asset as the plan saw it: where it is and the exact state a step expects.

    Attributes:
        source: the source URI (``SourceSpec.uri``) whose adapter reaches it.
        key: the adapter's key for it.
        uri: its absolute URI, shown to reviewers.
        sha256: SHA-256 of its bytes when it was fingerprinted.
        size: its size in bytes.
        etag: the store's change tag when listed, or ``None`` if the store has none.
        version_id: the store's version id, or ``None`` on unversioned stores.
        store_hash: the store's own content hash (``md5:…``), or ``None``.
        object_id: what the store says is one object (``AssetRecord.object_id``), or ``None``
            when the adapter cannot tell (and in plans made before it was recorded).
    """

    source: str
    key: str
    uri: str
    sha256: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    store_hash: str | None = None
    object_id: str | None = None

    def record(self) -> AssetRecord:
        """The listing record this expected state stands for (for adapter calls that take one)."""
        return AssetRecord(
            self.source,
            self.key,
            self.uri,
            self.size,
            None,
            self.store_hash,
            self.etag,
            self.version_id,
            object_id=self.object_id,
        )

    def same_object(self, other: ExpectedAsset | AssetRecord) -> bool:
        """Whether the store says this and ``other`` are one object (both object ids known and equal)."""
        return self.object_id is not None and self.object_id == other.object_id

    def mismatch(self, current: AssetRecord | None, content_only: bool = False) -> str | None:
        """Say how ``current`` (from ``adapter.stat``) differs from this state, or ``None`` if it matches.

        Size, etag, version id and store hash are compared where both sides have them;
        a store with none of them is checked by size only, and the content hash is then
        checked when a copy is read back. ``content_only`` compares size and store hash
        alone, for an asset whose tags a plan changes (on some stores that changes the etag).
        """
        if current is None:
            return "gone since the plan was made"
        checks = [
            ("size", self.size, current.size),
            ("store hash", self.store_hash, current.store_hash),
        ]
        if not content_only:
            checks += [
                ("etag", self.etag, current.etag),
                ("version", self.version_id, current.version_id),
                ("object id", self.object_id, current.object_id),
            ]
        for label, planned, now in checks:
            if planned is not None and now is not None and planned != now:
                return f"changed since the plan was made ({label} {planned} is now {now})"
        return None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExpectedAsset:
        """Read the form :func:`dataclasses.asdict` writes into a plan."""
        return cls(
            source=str(data["source"]),
            key=str(data["key"]),
            uri=str(data["uri"]),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            etag=data.get("etag"),
            version_id=data.get("version_id"),
            store_hash=data.get("store_hash"),
            object_id=data.get("object_id"),
        )


@dataclass(frozen=True, slots=True)
class ActionStep:
    """One reviewable step of a plan: an operation on one asset.

    Steps cross the ``dam_dedupe_action_applied`` hook, so listeners (a DAM integration,
    say) get this typed record, never a dict of unknown shape.

    Attributes:
        index: the step's position in its plan (0-based); the journal is keyed by it.
        action: the plugin's ``name`` (``tag``, ``quarantine``, ``redirect``).
        operation: what the plugin does in this step; plugins with several kinds of step
            tell them apart by it (``quarantine`` and ``merge_tags``, say).
        cluster: the cluster's id.
        role: whether ``target`` is the cluster's canonical or a duplicate.
        target: the asset acted on, with the state the step expects.
        canonical: the cluster's canonical (equal to ``target`` when it is the canonical).
        params: the step's parameters, plain JSON values, shown to reviewers and signed off
            with the plan (the tags to write, the quarantine key, the pointer kind).
    """

    index: int
    action: str
    operation: str
    cluster: str
    role: Role
    target: ExpectedAsset
    canonical: ExpectedAsset
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        """The step as plain JSON values, as the plan file holds it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActionStep:
        """Read a step back from a plan file."""
        return cls(
            index=int(data["index"]),
            action=str(data["action"]),
            operation=str(data["operation"]),
            cluster=str(data["cluster"]),
            role=data["role"],
            target=ExpectedAsset.from_json(data["target"]),
            canonical=ExpectedAsset.from_json(data["canonical"]),
            params=dict(data.get("params", {})),
        )


@dataclass(frozen=True, slots=True)
class ClusterChoice:
    """One cluster as a plan will act on it, after selection filters and review decisions.

    Attributes:
        id: the cluster's id.
        canonical: the copy to keep (the policy's choice or a reviewer's).
        duplicates: the copies to act on.
    """

    id: str
    canonical: ExpectedAsset
    duplicates: tuple[ExpectedAsset, ...]


@dataclass(frozen=True, slots=True)
class Param:
    """A plan-level parameter an action accepts (``dam-dedupe plan --param NAME=VALUE``).

    Attributes:
        name: the parameter's name.
        help: one line for ``--help`` and the docs.
        default: the value when not given.
        choices: the allowed values, or empty for any string.
    """

    name: str
    help: str
    default: str
    choices: tuple[str, ...] = ()


class Stores(Protocol):
    """How an action reaches the stores (one adapter per source URI, built and cached by the host)
    and journals the parts of a step it has done."""

    def adapter(self, source: str) -> SourceAdapter:
        """The adapter for the source with this URI, with its configured options."""
        ...

    def progress(self, step: ActionStep, part: str, detail: Mapping[str, Any]) -> None:
        """Journal that ``part`` of ``step`` is done (``copied``, ``original_removed``…), with plain JSON ``detail``.

        Committed before it returns, so a step that fails or is interrupted later is still
        undone: undo receives every part journaled. Outside a run (planning) it does nothing.
        """
        ...


Progress = Callable[[str, Mapping[str, Any]], None]
"""One step's :meth:`Stores.progress`, bound to the step: ``note(part, detail)``."""


class ActionPlugin(abc.ABC):
    """Base class of every action plugin.

    Class attributes:
        name: selects the action (``dam-dedupe plan --action NAME``).
        description: one line for ``dam-dedupe plugins``.
        params: the plan-level parameters it accepts, with defaults.

    An instance is built for one plan with its checked parameters (:attr:`settings`).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    removes_originals: ClassVar[bool] = True
    """Whether its duplicate steps remove or replace the duplicate. The host then verifies the
    cluster's canonical by SHA-256, read back through its adapter, before the cluster's first
    such step in a run, and skips the cluster's steps if the canonical's bytes changed."""

    def __init__(self, settings: Mapping[str, str]) -> None:
        self.settings = dict(settings)

    @classmethod
    def check_params(cls, given: Mapping[str, str]) -> dict[str, str]:
        """Return every parameter with defaults filled in; raise :class:`ConfigError` for unknown or bad ones."""
        known = {p.name: p for p in cls.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ConfigError(f"the {cls.name} action has no parameter {unknown}; it takes {sorted(known) or 'none'}")
        checked = {p.name: str(given.get(p.name, p.default)) for p in cls.params}
        for name, value in checked.items():
            choices = known[name].choices
            if choices and value not in choices:
                raise ConfigError(f"{cls.name} parameter {name}={value!r} is not one of {list(choices)}")
        return checked

    def skip_reason(self, asset: ExpectedAsset) -> str | None:
        """Say why an asset must not be planned at all (it lies in this action's own quarantine area), or ``None``."""
        return None

    @abc.abstractmethod
    def plan_cluster(self, stores: Stores, cluster: ClusterChoice) -> list[ActionStep]:
        """Return the steps for one cluster, in the order they must run (``index`` is renumbered by the host).

        Never return a step that changes the canonical's bytes. It may read the stores
        (tags to merge, say) but must not change them.
        """

    def prepare(self, stores: Stores, step: ActionStep) -> dict[str, Any]:
        """Read, before anything changes, what undo will need (the tags now set, say).

        The host journals the result as the step's *before* and passes it to
        :meth:`apply` and :meth:`undo`. Return plain JSON values. The default reads nothing.
        """
        return {}

    @abc.abstractmethod
    def apply(self, stores: Stores, step: ActionStep, before: Mapping[str, Any]) -> dict[str, Any]:
        """Carry out the step and return what it did (journaled as the step's *after*).

        Re-entrant: after a crash or a :class:`~dam_dedupe.errors.TransientError` it is
        called again with the same ``before`` and must finish the step from whatever state
        the store is in, doing no completed part twice. Journal each part of a multi-part
        step with ``stores.progress`` as soon as it is done. Raise :class:`StepSkipped` when
        the store is not as planned, :class:`~dam_dedupe.errors.TransientError` when the
        store cannot answer now (the step stays in doubt and is continued later), any other
        :class:`~dam_dedupe.errors.AssetError` when the step fails for good.
        """

    @abc.abstractmethod
    def undo(
        self, stores: Stores, step: ActionStep, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Reverse a step and return what was restored (with the verified hash where bytes moved).

        Called for every step that did anything: applied ones, with their *after*, and
        steps that failed, were interrupted or were left in doubt, whose ``after`` is then
        ``{"incomplete": OUTCOME, PART: DETAIL, …}`` (the parts journaled with
        ``stores.progress``), so undo must inspect the store and restore what that step
        changed. Re-entrant like :meth:`apply`. Raise :class:`StepSkipped` when the store is
        no longer as the run left it (something else changed it since).
        """

    def finish(
        self, stores: Stores, run_id: str, done: Sequence[tuple[ActionStep, Mapping[str, Any]]], out_dir: Path
    ) -> list[str]:
        """Write what the run leaves behind (manifests, redirect maps) once every step is done.

        ``done`` holds every applied step with its *after*, and every step that did part of
        its work with ``{"incomplete": OUTCOME, PART: DETAIL, …}`` (a quarantine copy that is
        now the only copy belongs in the manifest). Called again on a resumed run, so it
        must overwrite rather than append. Return one line per thing written.
        """
        return []

    def finish_undo(self, stores: Stores, run_id: str, steps: Sequence[ActionStep]) -> list[str]:
        """Remove what :meth:`finish` wrote into the stores for ``run_id``, once every step is undone."""
        return []


# -- helpers every action may use ------------------------------------------------------------


def sha256_of(adapter: SourceAdapter, record: AssetRecord) -> str:
    """Read an object through its adapter and return the SHA-256 of its bytes."""
    digest = hashlib.sha256()
    with adapter.open(record) as stream:
        while chunk := stream.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def holds(adapter: SourceAdapter, key: str, sha256: str) -> AssetRecord | None:
    """The record at ``key`` if it is there and its bytes read back with ``sha256``, else ``None``."""
    record = adapter.stat(key)
    if record is None:
        return None
    try:
        return record if sha256_of(adapter, record) == sha256 else None
    except AssetGone:
        return None


def verified_copy(adapter: SourceAdapter, record: AssetRecord, dest_key: str, sha256: str) -> AssetRecord:
    """Copy ``record`` to ``dest_key`` and prove the copy by reading it back; return the copy's record.

    Re-entrant: a copy already at ``dest_key`` with the expected hash is kept (it was
    made before a crash). Anything else there is never overwritten. A copy that reads
    back wrong is removed again (it is this function's own output, and its source is
    untouched) and the step fails.
    """
    existing = adapter.stat(dest_key)
    if existing is not None:
        if sha256_of(adapter, existing) == sha256:
            return existing
        raise AssetError(f"{existing.uri} already holds other content; will not overwrite it")
    try:
        copy = adapter.copy(record, dest_key)
    except AssetError:
        if (done := holds(adapter, dest_key, sha256)) is not None:  # made, and only the answer was lost
            return done
        raise
    found = sha256_of(adapter, copy)
    if found != sha256:
        adapter.delete(copy)
        raise AssetError(
            f"the copy at {copy.uri} read back with SHA-256 {found}, expected {sha256}; "
            "the copy was removed and its source left as it was"
        )
    return copy


def verified_move(adapter: SourceAdapter, record: AssetRecord, dest_key: str, sha256: str) -> AssetRecord:
    """Move ``record`` to ``dest_key`` with the store's own move (``native_move``) and prove it by hash.

    The object keeps its identity (id, versions, sharing). Re-entrant: when ``record``'s
    key is empty and ``dest_key`` holds the expected bytes, the move was done before.
    After any exception from the move the store is asked again: moved is success. A
    moved object that reads back wrong is moved back and the step fails.
    """
    if adapter.stat(dest_key) is not None:
        if adapter.stat(record.key) is None and (done := holds(adapter, dest_key, sha256)) is not None:
            return done
        raise AssetError(f"{dest_key} is already occupied; will not overwrite it")
    try:
        moved = adapter.move(record, dest_key)
    except AssetError:
        if adapter.stat(record.key) is None and (done := holds(adapter, dest_key, sha256)) is not None:
            return done
        raise
    found = sha256_of(adapter, moved)
    if found != sha256:
        adapter.move(moved, record.key)
        raise AssetError(
            f"{record.uri} moved to {moved.uri} read back with SHA-256 {found}, expected {sha256}; it was moved back"
        )
    return moved


def remove_original(adapter: SourceAdapter, original: AssetRecord, copy: AssetRecord, sha256: str) -> dict[str, str]:
    """Remove ``original`` now that ``copy`` holds its bytes; return what the store says to journal.

    The copy is read back and matched by hash first, whoever made it. After any
    exception from the delete the store is asked again: an original that is gone is
    success (a retried delete whose first answer was lost, or someone else removed it),
    and the copy is kept either way. An original still there re-raises the error, and
    its copy stays for :func:`remove_copy` (resume or undo) to judge.
    """
    if (found := sha256_of(adapter, copy)) != sha256:
        raise AssetError(f"the copy at {copy.uri} now reads back with SHA-256 {found}, not {sha256}; original kept")
    try:
        return adapter.delete(original)
    except Exception as exc:  # whatever the delete raised, the store's answer now decides
        try:
            now = adapter.stat(original.key)
        except TransientError:
            raise exc from None  # cannot tell whether it went: left in doubt
        if now is None:
            return {}
        if isinstance(exc, DamDedupeError):
            raise
        raise AssetError(f"could not remove {original.uri}: {type(exc).__name__}: {exc}") from exc


def remove_copy(adapter: SourceAdapter, copy: AssetRecord, original_key: str, sha256: str) -> bool:
    """Remove ``copy`` only if the original at ``original_key`` is verified present and unchanged by hash.

    Returns ``True`` when the copy is gone (removed now, or already), ``False`` when it
    was kept because the original is missing or holds other bytes. A copy that no
    longer reads back with ``sha256`` is not this run's copy, and is kept too.
    """
    if holds(adapter, original_key, sha256) is None:
        return False
    current = adapter.stat(copy.key)
    if current is None:
        return True
    if sha256_of(adapter, current) != sha256:
        return False
    try:
        adapter.delete(current)
    except AssetError:
        if adapter.stat(copy.key) is not None:
            raise
    return True
