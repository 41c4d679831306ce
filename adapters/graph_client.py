"""Microsoft Graph over HTTPS for the SharePoint and OneDrive adapters: settings, trust, tokens and retries.

Settings come from the source's options (``dam-dedupe.toml``) and from the variables
Azure's own tools read: ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``,
``AZURE_CLIENT_CERTIFICATE_PATH`` (with ``AZURE_CLIENT_CERTIFICATE_PASSWORD``) and
``AZURE_AUTHORITY_HOST``. The Graph endpoint and a CA bundle for corporate TLS
inspection proxies are options too (``graph_endpoint``, ``ca_bundle``), or the variables
``DAM_DEDUPE_GRAPH_ENDPOINT`` and ``DAM_DEDUPE_CA_BUNDLE``.

Tokens come from msal's confidential client (app-only, client credentials), cached in
memory and renewed by msal before they expire; a token Graph refuses early is dropped
and replaced once. Nothing here logs or stores a secret, a token or a pre-authenticated
download URL.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dam_dedupe.errors import ConfigError, SourceError
from dam_dedupe.retrying import RetryPolicy, call_with_retries

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NationalCloud:
    """Where one Microsoft cloud signs apps in and serves Graph."""

    authority_host: str
    graph_endpoint: str


CLOUDS: dict[str, NationalCloud] = {
    "global": NationalCloud("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "china": NationalCloud("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    "usgov": NationalCloud("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov-dod": NationalCloud("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
}
"""The national clouds by the name the ``cloud`` option takes. ``global`` is the default."""

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
"""Graph answers worth another attempt: throttled, or briefly unavailable."""

DEFAULT_TIMEOUT = (15.0, 120.0)
"""Seconds to connect and between bytes read."""


@dataclass(frozen=True, slots=True)
class GraphSettings:
    """Where and as whom to call Graph. Holds no secret: the client secret is read when signing in.

    Attributes:
        tenant_id: the Entra ID tenant (GUID or ``contoso.onmicrosoft.com``).
        client_id: the app registration's application (client) id.
        authority_host: the sign-in host, e.g. ``https://login.microsoftonline.com``.
        graph_endpoint: the Graph host, e.g. ``https://graph.microsoft.com``; API calls go to ``/v1.0`` under it.
        certificate_path: a PEM (private key and certificate) or PFX file, when signing in with a certificate.
        ca_bundle: a PEM file of trusted CA certificates used in place of the system store, or ``None``.
    """

    tenant_id: str
    client_id: str
    authority_host: str
    graph_endpoint: str
    certificate_path: str | None = None
    ca_bundle: str | None = None

    @property
    def api_root(self) -> str:
        """The base URL of Graph's v1.0 API."""
        return f"{self.graph_endpoint}/v1.0"

    @property
    def scope(self) -> str:
        """The app-only scope: every application permission granted to the app on Graph."""
        return f"{self.graph_endpoint}/.default"

    @classmethod
    def resolve(cls, option: Callable[[str], object], environ: Mapping[str, str] = os.environ) -> GraphSettings:
        """Build settings from a source's options, falling back to the environment.

        Raises :class:`~dam_dedupe.errors.ConfigError` naming what is missing or wrong.
        """

        def pick(name: str, variable: str) -> str | None:
            value = option(name)
            if value is None or value == "":
                value = environ.get(variable) or None
            return None if value is None else str(value)

        cloud_name = str(option("cloud") or "global").lower()
        cloud = CLOUDS.get(cloud_name)
        if cloud is None:
            raise ConfigError(f"unknown cloud '{cloud_name}'; use one of: {', '.join(CLOUDS)}")
        authority = pick("authority_host", "AZURE_AUTHORITY_HOST") or cloud.authority_host
        if "://" not in authority:
            authority = f"https://{authority}"
        graph = pick("graph_endpoint", "DAM_DEDUPE_GRAPH_ENDPOINT") or _graph_for_authority(authority, cloud)
        tenant = pick("tenant_id", "AZURE_TENANT_ID")
        client = pick("client_id", "AZURE_CLIENT_ID")
        missing = [n for n, v in (("AZURE_TENANT_ID", tenant), ("AZURE_CLIENT_ID", client)) if not v]
        if missing:
            raise ConfigError(
                f"set {' and '.join(missing)} (or the source options tenant_id / client_id) "
                "to the app registration that may read this site"
            )
        ca_bundle = pick("ca_bundle", "DAM_DEDUPE_CA_BUNDLE")
        if ca_bundle and not os.path.isfile(ca_bundle):
            raise ConfigError(f"the CA bundle {ca_bundle} is not a readable file")
        return cls(
            tenant_id=str(tenant),
            client_id=str(client),
            authority_host=authority.rstrip("/"),
            graph_endpoint=graph.rstrip("/"),
            certificate_path=pick("client_certificate_path", "AZURE_CLIENT_CERTIFICATE_PATH"),
            ca_bundle=ca_bundle,
        )


def _graph_for_authority(authority: str, default: NationalCloud) -> str:
    """The Graph endpoint of the cloud whose sign-in host is ``authority``, else ``default``'s."""
    for cloud in CLOUDS.values():
        if cloud.authority_host == authority.rstrip("/") and cloud.authority_host != default.authority_host:
            return cloud.graph_endpoint
    return default.graph_endpoint


class GraphError(Exception):
    """Graph refused a request, or could not be reached, after the retries allowed.

    Attributes:
        status: the HTTP status, or 0 when no answer came.
        code: Graph's error code (``itemNotFound``, ``accessDenied``, ``resyncRequired``, …).
        message: Graph's message.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"HTTP {status} {code}: {message}" if status else f"{code}: {message}")

    @classmethod
    def from_response(cls, response: requests.Response) -> GraphError:
        """Read the error out of a Graph error response (``{"error": {"code", "message"}}``)."""
        code, message = _error_of(response)
        return cls(response.status_code, code or response.reason or "error", message)


def _error_of(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


class _Unreachable(Exception):
    """No answer came (connection refused or reset, timeout); the message names no URL."""


class _Transient(Exception):
    """A Graph answer worth retrying; carries the response for its ``Retry-After``."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delay seconds or an HTTP date. ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def build_session(ca_bundle: str | None) -> requests.Session:
    """An HTTP session that trusts ``ca_bundle`` if given, else the system's trust store.

    The trust is fixed on the session's TLS context: ``REQUESTS_CA_BUNDLE`` and
    ``CURL_CA_BUNDLE`` do not replace it (requests lets them override ``verify``), while
    the proxy variables (``HTTPS_PROXY``, ``NO_PROXY``) still apply.
    """
    import ssl  # here, not at the top: every scan loads this adapter's module, and ssl costs 20-60 ms to import

    import requests
    from requests.adapters import HTTPAdapter

    context = ssl.create_default_context(cafile=ca_bundle)

    class PinnedTrustAdapter(HTTPAdapter):
        """Uses one TLS context for every connection, whatever ``verify`` says."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = context
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            kwargs["ssl_context"] = context
            return super().proxy_manager_for(proxy, **kwargs)

        def build_connection_pool_key_attributes(
            self, request: requests.PreparedRequest, verify: Any, cert: Any = None
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True, cert)
            pool_kwargs["ssl_context"] = context
            return host_params, pool_kwargs

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn, url, False, cert)
            conn.cert_reqs = "CERT_REQUIRED"

    session = requests.Session()
    session.mount("https://", PinnedTrustAdapter())
    session.headers["User-Agent"] = "dam-dedupe"
    return session


def _client_credential(settings: GraphSettings, environ: Mapping[str, str]) -> str | dict[str, str]:
    """The msal credential: a certificate when one is configured, else ``AZURE_CLIENT_SECRET``."""
    password = environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or ""
    path = settings.certificate_path
    if path:
        if path.lower().endswith((".pfx", ".p12")):
            return {"private_key_pfx_path": path, "passphrase": password}
        try:
            with open(path, encoding="ascii") as fh:
                pem = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read the client certificate {path}: {exc.strerror}") from exc
        return _pem_credential(pem, password, path)
    secret = environ.get("AZURE_CLIENT_SECRET")
    if not secret:
        raise ConfigError(
            "set AZURE_CLIENT_SECRET, or AZURE_CLIENT_CERTIFICATE_PATH to a PEM or PFX file, "
            "for the app registration to sign in with"
        )
    return secret


def _pem_credential(pem: str, password: str, path: str) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", pem, re.S)
    cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if key is None or cert is None:
        raise ConfigError(f"the client certificate {path} must hold a PEM private key and its certificate")
    thumbprint = x509.load_pem_x509_certificate(cert.group(0).encode()).fingerprint(hashes.SHA1()).hex()
    credential = {"private_key": key.group(0), "thumbprint": thumbprint, "public_certificate": cert.group(0)}
    if password:
        credential["passphrase"] = password
    return credential


class TokenSource:
    """App-only access tokens for Graph from msal's confidential client, cached in memory."""

    def __init__(self, settings: GraphSettings, session: requests.Session, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self._session = session
        self._environ = environ
        self._app: Any = None

    def _application(self) -> Any:
        if self._app is None:
            import msal

            self._app = msal.ConfidentialClientApplication(
                self.settings.client_id,
                client_credential=_client_credential(self.settings, self._environ),
                authority=f"{self.settings.authority_host}/{self.settings.tenant_id}",
                instance_discovery=False,
                http_client=self._session,
                token_cache=msal.TokenCache(),
            )
        return self._app

    def token(self) -> str:
        """An access token for Graph: msal's cached one while it is fresh, else a new one.

        Raises :class:`~dam_dedupe.errors.SourceError` saying what to check when signing in fails.
        """
        import requests

        try:
            result = self._application().acquire_token_for_client(scopes=[self.settings.scope])
        except ConfigError as exc:
            raise SourceError(str(exc)) from exc
        except requests.exceptions.SSLError as exc:
            raise SourceError(tls_failed(self.settings.authority_host, exc)) from exc
        except ValueError as exc:  # msal raises it when the authority cannot be read
            raise SourceError(self._sign_in_failed(str(exc))) from exc
        except OSError as exc:
            raise SourceError(self._sign_in_failed(f"cannot reach it: {_reason(exc)}")) from exc
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            error = result.get("error", "no token") if isinstance(result, dict) else "no token"
            description = str(result.get("error_description", "")) if isinstance(result, dict) else ""
            raise SourceError(self._sign_in_failed(f"{error}: {description.splitlines()[0] if description else ''}"))
        return str(token)

    def drop(self) -> None:
        """Forget the cached token, so that the next :meth:`token` asks for a new one."""
        if self._app is not None:
            self._app.remove_tokens_for_client()

    def _sign_in_failed(self, detail: str) -> str:
        how = "certificate" if self.settings.certificate_path else "AZURE_CLIENT_SECRET"
        return (
            f"could not sign in as app {self.settings.client_id} in tenant {self.settings.tenant_id} "
            f"at {self.settings.authority_host} ({detail.strip()}); check the tenant, the client id and the {how}"
        )


class GraphClient:
    """Calls Graph with app-only tokens, retrying throttled and briefly failing requests.

    A 429 or 503 waits what ``Retry-After`` asks, up to the source's ``max_retry_wait``;
    other transient failures back off with jitter; attempts are bounded
    (:func:`dam_dedupe.retrying.call_with_retries`). Only idempotent requests are repeated
    after a failure that may have acted (see ``idempotent``).
    A 401 ``InvalidAuthenticationToken`` drops the cached token and repeats the request
    once with a new one. Built lazily: nothing is contacted until the first request.
    """

    def __init__(
        self, settings: GraphSettings, environ: Mapping[str, str] = os.environ, retry: RetryPolicy | None = None
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self._environ = environ
        self._session: requests.Session | None = None
        self._tokens: TokenSource | None = None

    @property
    def session(self) -> requests.Session:
        """The HTTP session (trust pinned to the configured CA bundle or the system store)."""
        if self._session is None:
            self._session = build_session(self.settings.ca_bundle)
        return self._session

    @property
    def tokens(self) -> TokenSource:
        """The token source, built on first use."""
        if self._tokens is None:
            self._tokens = TokenSource(self.settings, self.session, self._environ)
        return self._tokens

    def url(self, path: str) -> str:
        """An absolute Graph URL: ``path`` under ``/v1.0``, or ``path`` itself when already absolute."""
        return path if path.startswith("https://") else f"{self.settings.api_root}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        authenticated: bool = True,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request, with retries; return the response, or raise :class:`GraphError` for a 4xx/5xx.

        Args:
            method: the HTTP method.
            path: a path under ``/v1.0`` or an absolute URL (a ``@odata.nextLink``, a download URL).
            what: names the call in log and error messages; never a URL that carries a credential.
            authenticated: send the bearer token; ``False`` for pre-authenticated download and monitor URLs.
            idempotent: ``False`` for a request that must not be sent twice (a ``POST`` that creates
                something): it is repeated only after a 429, which Graph answers without acting;
                after any other failure the caller checks the store instead of sending it again.
            kwargs: passed to :meth:`requests.Session.request` (``json``, ``data``, ``headers``, ``stream``, …).
        """
        import requests

        url = self.url(path)
        kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
        renewed = False

        def attempt() -> requests.Response:
            nonlocal renewed
            response = self._send(method, url, authenticated, kwargs)
            if _token_refused(response) and authenticated and not renewed:
                response.close()
                renewed = True
                log.info("Graph refused the access token for %s; signing in again", what)
                self.tokens.drop()
                response = self._send(method, url, authenticated, kwargs)
            if response.status_code in TRANSIENT_STATUS:
                response.content  # read the error body now: the response may be streamed  # noqa: B018
                raise _Transient(response)
            return response

        try:
            response = call_with_retries(
                attempt,
                is_transient=_is_transient if idempotent else _is_throttled,
                retry_after=_retry_after,
                policy=self.retry,
                what=f"Graph {method} {what}",
            )
        except _Transient as exc:
            raise GraphError.from_response(exc.response) from None
        except requests.exceptions.SSLError as exc:
            raise SourceError(tls_failed(self.settings.graph_endpoint, exc)) from exc
        except _Unreachable as exc:
            raise GraphError(0, "unreachable", f"{what}: {exc}") from None
        if response.status_code >= 400:
            error = GraphError.from_response(response)
            response.close()
            raise error
        return response

    def json(self, method: str, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """Send a request and return its JSON body (``{}`` when there is none)."""
        response = self.request(method, path, what=what, **kwargs)
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:  # an HTML page from a proxy or captive portal, say
            kind = response.headers.get("Content-Type", "no content type")
            raise GraphError(response.status_code, "invalidResponse", f"{what}: not JSON ({kind})") from exc
        return body if isinstance(body, dict) else {}

    def _send(self, method: str, url: str, authenticated: bool, kwargs: dict[str, Any]) -> requests.Response:
        import requests

        headers = dict(kwargs.get("headers") or {})
        if authenticated:
            headers["Authorization"] = f"Bearer {self.tokens.token()}"
        try:
            return self.session.request(method, url, **{**kwargs, "headers": headers})
        except requests.exceptions.SSLError:
            raise
        except requests.RequestException as exc:
            raise _Unreachable(_reason(exc)) from None

    def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            self._session.close()
            self._session = None
            self._tokens = None


def _token_refused(response: requests.Response) -> bool:
    """Graph refused the bearer token itself (expired or revoked early), not the app's permissions."""
    return response.status_code == 401 and _error_of(response)[0] == "InvalidAuthenticationToken"


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient | _Unreachable)


def _is_throttled(exc: BaseException) -> bool:
    """A 429: Graph turned the request away without acting on it, so even a non-idempotent one may be repeated."""
    return isinstance(exc, _Transient) and exc.response.status_code == 429


def _retry_after(exc: BaseException) -> float | None:
    if isinstance(exc, _Transient):
        return retry_after_seconds(exc.response.headers.get("Retry-After"))
    return None


def tls_failed(host: str, exc: BaseException) -> str:
    """The message for a certificate that could not be verified, naming the fix."""
    return (
        f"TLS verification failed for {host} ({_reason(exc)}); if a proxy inspects TLS, "
        "name its CA with the ca_bundle option or DAM_DEDUPE_CA_BUNDLE"
    )


def _reason(exc: BaseException) -> str:
    """A short reason for a network failure, without URLs (a download URL carries a credential)."""
    text = re.sub(r"https?://\S+|url: \S+", "…", str(exc))
    return f"{type(exc).__name__}: {text}"
