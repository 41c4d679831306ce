"""Where an Azure Blob source lives and how to sign in to it, for :mod:`azure_blob`.

A source is ``azure://ACCOUNT/CONTAINER/PREFIX``. Credentials come from the environment
only, under the names Azure's own tools read, tried in this order unless the source's
``auth`` option names one:

1. ``AZURE_STORAGE_CONNECTION_STRING`` (``auth = "connection_string"``);
2. ``AZURE_STORAGE_SAS_TOKEN`` (``auth = "sas"``);
3. ``AZURE_STORAGE_KEY``, the account key (``auth = "key"``);
4. Microsoft Entra ID (``auth = "entra"``): a service principal from ``AZURE_TENANT_ID``,
   ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET`` (and ``AZURE_AUTHORITY_HOST``), else the rest
   of azure-identity's default chain (workload and managed identity, Azure CLI sign-in).

Sovereign clouds are reached by the ``cloud`` option (``public``, ``china``, ``usgov``),
or by ``endpoint_suffix`` / ``AZURE_STORAGE_ENDPOINT_SUFFIX`` and ``authority_host`` /
``AZURE_AUTHORITY_HOST`` one by one, or by a full ``blob_endpoint`` URL. No secret is kept
on the adapter, logged, or put in a message. ``ca_bundle`` names a PEM file of trusted
certificate authorities (a corporate TLS-inspecting proxy); otherwise the usual trust
store applies.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dam_dedupe.errors import ConfigError, SourceError
from dam_dedupe.records import SourceSpec

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
SAS_TOKEN_ENV = "AZURE_STORAGE_SAS_TOKEN"
ACCOUNT_KEY_ENV = "AZURE_STORAGE_KEY"
ENDPOINT_SUFFIX_ENV = "AZURE_STORAGE_ENDPOINT_SUFFIX"
AUTHORITY_HOST_ENV = "AZURE_AUTHORITY_HOST"
SERVICE_PRINCIPAL_ENV = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")

CLOUDS: dict[str, tuple[str, str]] = {
    "public": ("core.windows.net", "login.microsoftonline.com"),
    "china": ("core.chinacloudapi.cn", "login.chinacloudapi.cn"),
    "usgov": ("core.usgovcloudapi.net", "login.microsoftonline.us"),
}
"""Storage endpoint suffix and Entra ID authority host of each Azure cloud."""

AUTH_MODES = ("auto", "connection_string", "sas", "key", "entra")

_SECRET_PATTERNS = (
    re.compile(r"(sig=)[^&\s;\"']+", re.IGNORECASE),
    re.compile(r"(AccountKey=)[^;\s\"']+", re.IGNORECASE),
    re.compile(r"(SharedAccessSignature=)[^;\s\"']+", re.IGNORECASE),
)


def scrub(text: str) -> str:
    """Remove SAS signatures and account keys from a message before it is shown or stored."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1REDACTED", text)
    return text


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """The account, container and blob-name prefix a source scans.

    ``prefix`` is empty or ends with ``/``: ``azure://acct/photos/2024`` scans the blobs named
    ``2024/…``, never ``2024-old/…``.
    """

    account: str
    container: str
    prefix: str

    def uri_for(self, blob_name: str) -> str:
        """The ``azure://`` URI of a blob in this container, as shown to users."""
        return f"azure://{self.account}/{self.container}/{blob_name}"


def parse_location(uri: str) -> BlobLocation:
    """Split ``azure://ACCOUNT/CONTAINER[/PREFIX]`` (percent-escapes allowed) into its parts.

    The account and container are case-folded (Azure names are lowercase), so
    ``azure://MyAccount/Photos`` and ``azure://myaccount/photos`` are one source with one
    set of record URIs; blob names keep their case, which Azure distinguishes.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != "azure" or not parts.netloc:
        raise ConfigError(f"not an Azure Blob URI: {uri!r} (expected azure://ACCOUNT/CONTAINER/PREFIX)")
    container, _, prefix = unquote(parts.path).lstrip("/").partition("/")
    if not container:
        raise ConfigError(f"no container named in {uri!r} (expected azure://ACCOUNT/CONTAINER/PREFIX)")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    # Account and container names are lowercase in Azure; any spelling of them names one source.
    return BlobLocation(account=parts.netloc.lower(), container=container.lower(), prefix=prefix)


def _option(spec: SourceSpec, name: str, env: str | None = None) -> str | None:
    value = spec.option(name)
    if value is None and env is not None:
        value = os.environ.get(env) or None
    return None if value is None else str(value)


def cloud_hosts(spec: SourceSpec) -> tuple[str, str]:
    """The storage endpoint suffix and the Entra ID authority host for a source."""
    cloud = str(spec.option("cloud", "public")).lower()
    if cloud not in CLOUDS:
        raise ConfigError(f"unknown Azure cloud {cloud!r}; use one of: {', '.join(CLOUDS)}")
    suffix, authority = CLOUDS[cloud]
    return (
        _option(spec, "endpoint_suffix", ENDPOINT_SUFFIX_ENV) or suffix,
        _option(spec, "authority_host", AUTHORITY_HOST_ENV) or authority,
    )


def blob_endpoint(spec: SourceSpec, location: BlobLocation) -> str:
    """The blob service URL: the ``blob_endpoint`` option, else ``https://ACCOUNT.blob.SUFFIX``."""
    explicit = _option(spec, "blob_endpoint")
    if explicit:
        return explicit.rstrip("/")
    suffix, _authority = cloud_hosts(spec)
    return f"https://{location.account}.blob.{suffix}"


def auth_mode(spec: SourceSpec) -> str:
    """The credential kind to use: the ``auth`` option, else the first one the environment holds."""
    mode = str(spec.option("auth", "auto")).lower()
    if mode not in AUTH_MODES:
        raise ConfigError(f"unknown auth {mode!r} for an Azure source; use one of: {', '.join(AUTH_MODES)}")
    if mode != "auto":
        return mode
    for env, found in (
        (CONNECTION_STRING_ENV, "connection_string"),
        (SAS_TOKEN_ENV, "sas"),
        (ACCOUNT_KEY_ENV, "key"),
    ):
        if os.environ.get(env):
            return found
    return "entra"


def _required_env(name: str, mode: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SourceError(f"auth = {mode!r} needs the {name} environment variable, which is not set")
    return value


def _connection_string_account(connection_string: str) -> str | None:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "accountname":
            return value.strip()
    return None


def make_service_client(spec: SourceSpec, location: BlobLocation, **client_options: Any) -> BlobServiceClient:
    """Build the SDK's service client for a source, signed in as the environment says.

    ``client_options`` go to the SDK (retry, timeout and transfer sizes). Raises
    :class:`SourceError` when the environment lacks what the chosen ``auth`` needs or a
    connection string names another account.
    """
    from azure.storage.blob import BlobServiceClient

    mode = auth_mode(spec)
    audience = _option(spec, "audience")
    if audience:
        client_options["audience"] = audience
    ca_bundle = _option(spec, "ca_bundle")
    if ca_bundle:
        client_options["connection_verify"] = ca_bundle
    if mode == "connection_string":
        connection_string = _required_env(CONNECTION_STRING_ENV, mode)
        named = _connection_string_account(connection_string)
        if named is not None and named.lower() != location.account:
            raise SourceError(
                f"{CONNECTION_STRING_ENV} is for account '{named}', but the source names account "
                f"'{location.account}'; use the connection string of '{location.account}'"
            )
        try:
            return BlobServiceClient.from_connection_string(connection_string, **client_options)
        except ValueError as exc:
            raise SourceError(f"{CONNECTION_STRING_ENV} is not a valid connection string") from exc
    endpoint = blob_endpoint(spec, location)
    if mode == "sas":
        # A plain string (not AzureSasCredential) so that blob URLs carry the SAS, which a
        # server-side copy needs to read its source.
        token = _required_env(SAS_TOKEN_ENV, mode).lstrip("?")
        return BlobServiceClient(endpoint, credential=token, **client_options)
    if mode == "key":
        key = _required_env(ACCOUNT_KEY_ENV, mode)
        return BlobServiceClient(
            endpoint, credential={"account_name": location.account, "account_key": key}, **client_options
        )
    return BlobServiceClient(endpoint, credential=_entra_credential(spec), **client_options)


def _entra_credential(spec: SourceSpec) -> Any:
    """A service principal from the environment, else azure-identity's default chain, for the source's cloud.

    ``disable_instance_discovery = true`` is for an authority Microsoft's discovery does not
    know (Azure Stack Hub, a private cloud); ``ca_bundle`` applies to sign-in too.
    """
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    _suffix, authority = cloud_hosts(spec)
    options: dict[str, Any] = {"authority": authority}
    if spec.option("disable_instance_discovery", False) is True:
        options["disable_instance_discovery"] = True
    ca_bundle = _option(spec, "ca_bundle")
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    tenant, client, secret = (os.environ.get(name) for name in SERVICE_PRINCIPAL_ENV)
    if tenant and client and secret:
        return ClientSecretCredential(tenant, client, secret, **options)
    return DefaultAzureCredential(exclude_interactive_browser_credential=True, **options)
