"""How the S3 adapter reads S3's failures: retry them, or fail with a message that names the fix.

S3 and S3-compatible stores answer with an error code (``SlowDown``, ``AccessDenied``,
``NoSuchBucket``…) and an HTTP status; a ``HEAD`` answer has only the status. botocore is
imported lazily, so the adapter module imports without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dam_dedupe.errors import AssetError, AssetGone, DamDedupeError, SourceError, TransientError

TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "BandwidthLimitExceeded",
        "OperationAborted",
    }
)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
ACCESS_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem", "403"})
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "TokenRefreshRequired",
        "RequestExpired",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "InvalidClientTokenId",
    }
)
GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "404"})
CHANGED_CODES = frozenset({"PreconditionFailed", "412"})
REGION_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"})


@dataclass(frozen=True, slots=True)
class Operation:
    """What the adapter was doing, for messages.

    Attributes:
        what: the action in words, completing "failed to …" (``"list s3://bucket/photos/"``).
        permission: the IAM action it needs (``"s3:ListBucket"``).
        arn: the resource the permission must cover (``"arn:aws:s3:::bucket"``).
        hint: a further sentence for access errors, or empty.
    """

    what: str
    permission: str
    arn: str
    hint: str = ""


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` (the status for a bodiless answer), else ``""``."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = response.get("Error", {}).get("Code")
    if code:
        return str(code)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(status) if status else ""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ``ClientError``, else ``None``."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status else None


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: throttling, 5xx, timeouts and dropped connections."""
    from botocore import exceptions as bce

    if isinstance(exc, bce.ClientError):
        return error_code(exc) in TRANSIENT_CODES or http_status(exc) in TRANSIENT_STATUS
    if isinstance(exc, bce.SSLError):
        return False
    return isinstance(exc, bce.HTTPClientError | bce.ConnectionError | bce.IncompleteReadError)


def explain(exc: BaseException, op: Operation, *, asset: bool, attempts: int) -> DamDedupeError:
    """Turn a botocore failure into the error the scan records.

    Args:
        exc: the exception botocore raised (after retries, for a transient one).
        op: what was being done, and the permission it needs.
        asset: ``True`` when one object was concerned: failures of that object become
            :class:`AssetError` (:class:`AssetGone` when it is missing); failures of the whole
            source (credentials, a missing bucket) are :class:`SourceError` either way.
        attempts: how many attempts were made, for the message when they ran out.
    """
    from botocore import exceptions as bce

    one: type[DamDedupeError] = AssetError if asset else SourceError
    passing: type[DamDedupeError] = TransientError if asset else SourceError  # retries ran out; may pass later
    if isinstance(exc, bce.ProfileNotFound):
        return SourceError(f"{exc}: name an existing profile (AWS_PROFILE or the source's 'profile' option)")
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError | bce.CredentialRetrievalError):
        return SourceError(
            f"no usable AWS credentials to {op.what} ({exc}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run where an instance or task role is available"
        )
    if isinstance(exc, bce.TokenRetrievalError | bce.SSOError):
        return SourceError(f"the AWS session token could not be renewed ({exc}): sign in again (aws sso login)")
    if isinstance(exc, bce.SSLError):
        return SourceError(f"TLS failed to {op.what} ({exc}): if a proxy inspects TLS, point AWS_CA_BUNDLE at its CA")
    if not isinstance(exc, bce.ClientError):
        if is_transient(exc):
            return passing(f"failed to {op.what} after {attempts} attempts: {exc}")
        return one(f"failed to {op.what}: {exc}")
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message", "")
    if is_transient(exc):
        return passing(
            f"S3 still answered {code} after {attempts} attempts to {op.what}: the store is throttling or "
            "unavailable; try again later or scan with fewer workers"
        )
    if code in CREDENTIAL_CODES:
        return SourceError(
            f"S3 refused the AWS credentials ({code}) to {op.what}: they have expired or are wrong; renew them "
            "(aws sso login, a new session token) or check AWS_PROFILE / AWS_ACCESS_KEY_ID"
        )
    if code == "NoSuchBucket":
        return SourceError(
            f"failed to {op.what}: the bucket does not exist at this endpoint; check the bucket name, the "
            "region (China regions need credentials of the aws-cn partition) and AWS_ENDPOINT_URL"
        )
    if code in REGION_CODES:
        return SourceError(
            f"failed to {op.what}: the bucket is in another region or partition ({code}); "
            "set the source's 'region' option or AWS_REGION to the bucket's region"
        )
    if code in ACCESS_CODES:
        hint = f" ({op.hint})" if op.hint else ""
        return one(f"access denied to {op.what}: the credentials need {op.permission} on {op.arn}{hint}")
    if asset and code in GONE_CODES:
        return AssetGone("the object is gone")
    if asset and code in CHANGED_CODES:
        return AssetError("the object changed since it was listed; it is read again on the next scan")
    if code == "InvalidObjectState":
        return one(f"cannot {op.what}: the object is archived (Glacier or Deep Archive); restore it first")
    return one(f"failed to {op.what}: S3 answered {code}: {message}".rstrip(": "))
