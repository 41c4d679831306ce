"""Hook specifications: the plugin author's manual.

A plugin is a module (or object) with functions named after these specs and marked
``@dam_dedupe.hookimpl``. Packages make their plugins known through the ``dam_dedupe``
entry-point group, which is how the built-in adapters and actions register too::

    [project.entry-points.dam_dedupe]
    my_store = "my_package.my_store_plugin"

``docs/writing-plugins.md`` has a complete example for each hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from PIL import Image

    from dam_dedupe.action import ActionPlugin, ActionStep
    from dam_dedupe.adapter import SourceAdapter
    from dam_dedupe.analysis import Analysis
    from dam_dedupe.containers import Extractor
    from dam_dedupe.decoders import Decoder
    from dam_dedupe.governance.signatures import SignatureScheme
    from dam_dedupe.records import AssetRecord, CanonicalChoice, Cluster, Member, ScanSummary

PROJECT_NAME = "dam_dedupe"
"""The pluggy project name and the entry-point group."""

PLUGIN_API_VERSION = 1
"""Raised when a hook's signature or meaning changes incompatibly. A plugin may compare
it with the version it was written for and refuse to load."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -- contributions --------------------------------------------------------------------


@hookspec
def dam_dedupe_adapters() -> list[type[SourceAdapter]]:
    """Contribute source adapter classes.

    Return a list of :class:`~dam_dedupe.adapter.SourceAdapter` subclasses, each serving
    the URI scheme in its ``scheme`` attribute. Return the class even when its SDK is not
    installed (import the SDK inside the adapter, not at module level), so that
    ``dam-dedupe plugins`` can name the extra to install. Two plugins serving one scheme
    is an error reported at start-up.
    """


@hookspec
def dam_dedupe_actions() -> list[type[ActionPlugin]]:
    """Contribute action plugin classes (tag, quarantine, redirect, …).

    Return a list of :class:`~dam_dedupe.action.ActionPlugin` subclasses, each known by
    its ``name`` attribute, which ``dam-dedupe plan --action NAME`` selects.
    """


@hookspec
def dam_dedupe_signature_schemes() -> list[type[SignatureScheme]]:
    """Contribute ways to sign plans off (OpenSSH signatures are built in).

    Return a list of :class:`~dam_dedupe.governance.signatures.SignatureScheme` subclasses,
    each known by its ``name``, which ``[governance] signatures = "NAME"`` selects.
    """


@hookspec
def dam_dedupe_decoders() -> list[type[Decoder]]:
    """Contribute decoders for image formats Pillow does not read (or misreads): camera RAW, PSB, a vendor's own.

    Return a list of :class:`~dam_dedupe.decoders.Decoder` subclasses. Each is asked, in
    registration order and before Pillow, whether it ``accepts`` a file's first bytes and name;
    the first that does (and whose library is installed) decodes it. ``open`` returns a
    :class:`~dam_dedupe.decoders.Picture`: the first page or frame (or the stored composite),
    reduced where the format makes that cheap (an embedded preview, a half-size decode), with the
    page or frame count. Memory must stay proportional to the picture, not the file. Raise
    :class:`~dam_dedupe.errors.AssetError` with a reason for a corrupt or truncated file: it is
    recorded against that asset and the scan goes on. Return the class even when its library is
    not installed (import it inside the methods; ``check_available`` raises
    :class:`~dam_dedupe.errors.MissingExtra`), so that ``dam-dedupe plugins`` can name the extra.
    Called once per process (the scan's workers load the same plugins).
    """


@hookspec
def dam_dedupe_extractors() -> list[type[Extractor]]:
    """Contribute extractors that list the images inside documents (OOXML and PDF are built in).

    Return a list of :class:`~dam_dedupe.containers.Extractor` subclasses, each reading the
    file endings in its ``extensions``. ``parts`` yields every image a document holds as a
    :class:`~dam_dedupe.containers.Part` whose name is stable across scans and unique in the
    document; each becomes an asset ``<document URI>#<part name>``, fingerprinted and matched like
    any other image, and never acted on (documents are not rewritten). The document is read once;
    yield parts one at a time and bound what is decompressed by the given
    :class:`~dam_dedupe.containers.Limits` (a zip bomb or a document of thousands of parts is an
    error for that document). Raise :class:`~dam_dedupe.containers.DocumentError` with a reason for
    a corrupt, truncated or password-protected document: it is recorded against the document and
    the scan goes on. As for decoders, return the class even when its library is missing.
    """


# -- canonical choice -------------------------------------------------------------------


@hookspec
def dam_dedupe_canonical_veto(cluster: Cluster, member: Member) -> str | None:
    """Say why a member must not be a cluster's canonical, or return ``None``.

    Called for every member before the policy ranks them. A returned string (for example
    ``"in the staging folder"``) removes the member from the candidates and is recorded.
    If every member is vetoed, the policy chooses among all of them and says so. The members'
    fingerprints come without their thumbnails (a cluster may have thousands of members).
    """


@hookspec(firstresult=True)
def dam_dedupe_choose_canonical(cluster: Cluster, ranked: list[Member]) -> CanonicalChoice | None:
    """Choose a cluster's canonical in place of the configured policy, or return ``None``.

    ``ranked`` holds the candidates (vetoed members removed) in the policy's order, best
    first. The first plugin to return a :class:`~dam_dedupe.records.CanonicalChoice`
    wins; its ``reason`` is shown to reviewers. A choice naming a URI outside
    the cluster is ignored with a warning. As for the veto, the members' fingerprints come
    without their thumbnails.
    """


# -- per-asset analysis ------------------------------------------------------------------


@hookspec
def dam_dedupe_analyse_asset(asset: AssetRecord, image: Image.Image, options: Mapping[str, Any]) -> Analysis | None:
    """Look at one image while the scan has it decoded; return an :class:`~dam_dedupe.analysis.Analysis` or ``None``.

    Called in the scan's worker processes right after fingerprinting, once per distinct
    content read (new or changed): byte-identical copies (one SHA-256) read by one worker
    process share the first copy's result, so judge the pixels and metadata, not
    ``asset``'s name or place. ``asset`` is the listing record of the copy analysed;
    ``image`` is the decode the fingerprint is made from (no second decode): the first
    frame, EXIF orientation applied, reduced (its short side at least 128 pixels, most often
    under 256, where the format allows), mode ``L`` or ``RGB``, with the file's embedded
    metadata in ``image.info`` (``xmp``, ``photoshop`` for IPTC); do not change it.
    ``options`` is the ``[analysis]`` table of ``dam-dedupe.toml``, where an analyser reads
    its own sub-table (``options.get("faces", {})``).

    Return flags the report acts on (``personal_data``, ``licensed``) and facts for
    reviewers; ``None`` when there is nothing to say. The result is stored in the
    catalog under the plugin's entry-point name. Raise to report a failure: it is
    recorded against the asset and this plugin, and the scan goes on. Keep the module
    importable without optional libraries (import them inside the function), and give it
    a ``check_available()`` that raises :class:`~dam_dedupe.errors.MissingExtra` without
    them, so that ``dam-dedupe plugins`` can name the extra to install.
    """


# -- events for DAM integrations ---------------------------------------------------------


@hookspec
def dam_dedupe_cluster_found(cluster: Cluster) -> None:
    """Told of every cluster when matching finishes, canonical already chosen.

    For listeners only: the return value is ignored and the cluster must not be changed.
    """


@hookspec
def dam_dedupe_listens(event: str) -> bool:
    """Whether this plugin acts on the event hook named ``event`` (``"dam_dedupe_cluster_found"``,
    say) in this run; a listener that does not implement this is always told.

    An event that every listener declines is not prepared: announcing a match's clusters reads
    each of them back from the catalog, a tenth of a second for one image's thousand copies.
    """


@hookspec
def dam_dedupe_scan_finished(summary: ScanSummary) -> None:
    """Told when a scan run finishes, with its counts. The return value is ignored."""


@hookspec
def dam_dedupe_action_applied(step: ActionStep, outcome: str) -> None:
    """Told after each step of ``dam-dedupe apply`` or ``undo`` is done.

    ``outcome`` is ``"applied"``, ``"skipped"``, ``"failed"`` or ``"undone"``. The return
    value is ignored.
    """
