"""What an Azure Blob failure means: retry it, blame one blob, or stop the whole source.

The SDK's own retries are turned off (``retry_total=0``) and every call goes through
:func:`dam_dedupe.retrying.call_with_retries` with :func:`is_transient` and
:func:`retry_after` below, so attempts are bounded, logged and honour the service's hints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from dam_dedupe.adapters.azure_connect import scrub
from dam_dedupe.errors import AssetError, AssetGone, DamDedupeError, SourceError, TransientError
from dam_dedupe.retrying import RetryPolicy, call_with_retries

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

ROLE_CODES = frozenset(
    {"AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch"}
)
"""The identity is known but lacks a permission (an RBAC role, a SAS permission)."""

NETWORK_CODES = frozenset({"AuthorizationSourceIPMismatch", "AuthorizationProtocolMismatch"})
"""The account's firewall or HTTPS-only rule turned the request away."""


@dataclass(frozen=True, slots=True)
class Operation:
    """A kind of request, with the Azure RBAC role and SAS permission it needs."""

    verb: str
    role: str
    sas_permission: str


LIST = Operation("list blobs", "Storage Blob Data Reader", "l (list)")
READ = Operation("read blobs", "Storage Blob Data Reader", "r (read)")
TAGS = Operation(
    "read or write blob index tags",
    "Storage Blob Data Owner (or a custom role with blobs/tags/read and blobs/tags/write)",
    "t (tag)",
)
WRITE = Operation("write, copy or delete blobs", "Storage Blob Data Contributor", "r, w, c and d")


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def error_code(exc: BaseException) -> str:
    """The service's error code (``BlobNotFound``, ``ServerBusy``, …), or ``""``."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(getattr(code, "value", code))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return str(headers.get("x-ms-error-code", ""))


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: 5xx, throttling, timeouts and dropped connections."""
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ClientAuthenticationError):
        return False
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    return _status(exc) in TRANSIENT_STATUS


def retry_after(exc: BaseException) -> float | None:
    """The wait the service asked for, in seconds (``x-ms-retry-after-ms``, ``Retry-After``).

    The source's :class:`~dam_dedupe.retrying.RetryPolicy` caps it (``max_retry_wait``).
    """
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("x-ms-retry-after-ms", 1000.0), ("retry-after-ms", 1000.0), ("Retry-After", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            continue
    return None


def call(fn: Callable[[], T], what: str, policy: RetryPolicy) -> T:
    """Call ``fn`` (an idempotent request) with the source's retry policy; ``what`` names it in log lines."""
    return call_with_retries(fn, is_transient=is_transient, retry_after=retry_after, policy=policy, what=what)


CONDITION_CODES = frozenset({"ConditionNotMet", "SourceConditionNotMet", "TargetConditionNotMet"})


def is_condition_failure(exc: BaseException) -> bool:
    """Whether an ETag condition failed (412): the blob changed, or (on some servers) is gone."""
    return error_code(exc) in CONDITION_CODES or _status(exc) == 412


def describe(exc: BaseException) -> str:
    """A short, secret-free account of an SDK error: status, error code, first line of the message."""
    status = _status(exc)
    code = error_code(exc)
    message = str(getattr(exc, "message", None) or exc).strip().splitlines()
    head = message[0] if message else type(exc).__name__
    bits = [str(status)] if status else []
    if code:
        bits.append(code)
    return scrub(f"{' '.join(bits)}: {head}" if bits else head)


def source_failure(exc: BaseException, op: Operation, where: str, endpoint: str) -> DamDedupeError | None:
    """The :class:`SourceError` for a failure that no other blob would escape, or ``None``.

    Covers refused sign-in, missing permissions, a missing container and an unreachable endpoint.
    """
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

    code = error_code(exc)
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None:
        return SourceError(
            f"signing in to Microsoft Entra ID for {where} failed: check AZURE_TENANT_ID, AZURE_CLIENT_ID and "
            f"AZURE_CLIENT_SECRET, and AZURE_AUTHORITY_HOST (or the cloud option) for a sovereign cloud "
            f"({describe(exc)})"
        )
    if code in ROLE_CODES or code == "InsufficientAccountPermissions":
        return SourceError(
            f"not allowed to {op.verb} in {where} ({code}): grant the identity the '{op.role}' role on the "
            f"container or account, or use a SAS token with permission {op.sas_permission}"
        )
    if code in NETWORK_CODES:
        return SourceError(
            f"{where} turned the request away ({code}): the storage account's firewall or HTTPS-only rule does "
            f"not admit this host or connection"
        )
    if code in ("AuthenticationFailed", "AuthorizationFailure") or isinstance(exc, ClientAuthenticationError):
        return SourceError(
            f"the credential for {where} was refused ({code or _status(exc)}): check that the account key, SAS "
            f"token or connection string belongs to this account and has not expired or been rotated, and that "
            f"the account allows this kind of sign-in (shared key access, network rules); with Microsoft Entra "
            f"ID, the identity needs the '{op.role}' role"
        )
    if code == "ContainerNotFound":
        return SourceError(f"container not found: {where}; check the container name in the source URI")
    if code in ("AccountIsDisabled", "AccountBeingCreated"):
        return SourceError(f"the storage account of {where} cannot be used now ({code})")
    if isinstance(exc, ServiceRequestError):
        return SourceError(
            f"cannot reach {endpoint} for {where}: check the account name, network access and, for a sovereign "
            f"cloud, the cloud / endpoint_suffix / blob_endpoint options ({describe(exc)})"
        )
    return None


def asset_failure(exc: BaseException, op: Operation, where: str, endpoint: str) -> DamDedupeError:
    """The error to raise for a failed request about one blob: gone, changed, or another failure.

    Failures that would hit every blob (see :func:`source_failure`) become :class:`SourceError`;
    a service still busy or failing, or a network still down, after the retries is a
    :class:`TransientError`, so that a governance step stays resumable.
    """
    if is_transient(exc):
        return TransientError(f"cannot {op.verb} for {where} now, after the retries: {describe(exc)} ({endpoint})")
    whole = source_failure(exc, op, where, endpoint)
    if whole is not None:
        return whole
    code = error_code(exc)
    if code == "BlobNotFound" or _status(exc) == 404:
        return AssetGone(f"the blob is gone: {where}")
    if is_condition_failure(exc):
        return AssetError(f"the blob changed since it was listed; not touched: {where}")
    if code == "BlobAlreadyExists":
        return AssetError(f"will not overwrite the existing blob {where}")
    if code == "SnapshotsPresent":
        return AssetError(f"the blob has snapshots; not deleted: {where}")
    if code == "BlobArchived":
        return AssetError(f"the blob is in the Archive tier; rehydrate it to read it: {where}")
    return AssetError(f"cannot {op.verb} for {where}: {describe(exc)}")
