"""Signing in with Microsoft Entra ID: a service principal, a local authority, Azurite over HTTPS.

The authority is a pytest-httpserver over TLS answering the OpenID configuration and token
requests as login.microsoftonline.com does; Azurite checks the token's issuer, audience and
lifetime. Everything is trusted through the source's ``ca_bundle`` option, as an admin
behind a TLS-inspecting proxy would set it.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from azure.storage.blob import BlobServiceClient
from pytest_httpserver import HTTPServer

from dam_dedupe.adapters.azure_blob import AzureBlobAdapter
from dam_dedupe.errors import SourceError
from dam_dedupe.records import AssetRecord, SourceSpec
from tests.servers.azurite import ACCOUNT, Azurite, connection_string, running_azurite

SECRET = "s3cr3t-value-never-shown"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def storage_token(tenant: str) -> str:
    """An access token for Azure Storage as Entra ID issues one (unsigned: Azurite does not check signatures)."""
    now = int(time.time())
    claims = {
        "aud": "https://storage.azure.com",
        "iss": f"https://sts.windows.net/{tenant}/",
        "tid": tenant,
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "appid": "dam-dedupe-tests",
    }
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2ln"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, Path, Path]:
    """A private CA, its PEM, and a certificate and key for localhost and 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    return ca, folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


@pytest.fixture(scope="module")
def azurite_https(
    tls: tuple[trustme.CA, Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Azurite]:
    """Azurite over HTTPS accepting bearer tokens."""
    _ca, _ca_pem, cert, key = tls
    with running_azurite(tmp_path_factory.mktemp("azurite-https"), tls=(cert, key)) as server:
        yield server


@pytest.fixture(scope="module")
def authority(tls: tuple[trustme.CA, Path, Path, Path]) -> Iterator[HTTPServer]:
    """A local Entra ID authority over HTTPS."""
    ca, *_ = tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="localhost", port=0, ssl_context=context)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def serve_tenant(server: HTTPServer, tenant: str, token_response: dict[str, object], status: int = 200) -> None:
    """Answer the OpenID configuration and the token endpoint of one tenant."""
    base = f"https://localhost:{server.port}"
    server.expect_request(f"/{tenant}/v2.0/.well-known/openid-configuration").respond_with_json(
        {
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "issuer": f"{base}/{tenant}/v2.0",
        }
    )
    server.expect_request(f"/{tenant}/oauth2/v2.0/token", method="POST").respond_with_json(token_response, status)


def entra_source(azurite: Azurite, server: HTTPServer, ca_pem: Path, container: str) -> SourceSpec:
    """A source signing in with Entra ID at the local authority and reading Azurite over HTTPS."""
    options = {
        "auth": "entra",
        "blob_endpoint": azurite.endpoint,
        "authority_host": f"https://localhost:{server.port}",
        "disable_instance_discovery": True,
        "ca_bundle": str(ca_pem),
    }
    return SourceSpec(f"azure://{ACCOUNT}/{container}", options=tuple(options.items()))


@pytest.fixture
def service_principal(monkeypatch: pytest.MonkeyPatch) -> str:
    """The service principal's variables, as Azure's tools read them; returns the tenant id."""
    tenant = str(uuid.uuid4())
    for name in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_KEY",
        "AZURE_AUTHORITY_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", tenant)
    monkeypatch.setenv("AZURE_CLIENT_ID", "dam-dedupe-tests")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    return tenant


def test_a_service_principal_lists_reads_and_copies(
    azurite_https: Azurite, authority: HTTPServer, tls: tuple[trustme.CA, Path, Path, Path], service_principal: str
) -> None:
    _ca, ca_pem, *_ = tls
    container = f"entra{uuid.uuid4().hex[:12]}"
    setup = BlobServiceClient.from_connection_string(
        connection_string(azurite_https.endpoint), connection_verify=str(ca_pem)
    )
    setup.create_container(container).upload_blob("照片/a b.jpg", b"entra bytes")
    token = {"access_token": storage_token(service_principal), "token_type": "Bearer", "expires_in": 3600}
    serve_tenant(authority, service_principal, token)

    adapter = AzureBlobAdapter(entra_source(azurite_https, authority, ca_pem, container))
    [record] = [item for item in adapter.list_assets() if isinstance(item, AssetRecord)]
    with adapter.open(record) as stream:
        assert stream.read() == b"entra bytes"
    copied = adapter.copy(record, "quarantine/a b.jpg")
    assert copied.store_hash == record.store_hash

    token_requests = [r for r, _ in authority.log if r.path.endswith("/oauth2/v2.0/token")]
    assert len(token_requests) == 1  # one token, reused for listing and reading


def test_a_refused_sign_in_names_the_variables_and_hides_the_secret(
    azurite_https: Azurite, authority: HTTPServer, tls: tuple[trustme.CA, Path, Path, Path], service_principal: str
) -> None:
    _ca, ca_pem, *_ = tls
    refusal = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
    serve_tenant(authority, service_principal, refusal, status=401)
    adapter = AzureBlobAdapter(entra_source(azurite_https, authority, ca_pem, "anything"))
    with pytest.raises(SourceError, match="Microsoft Entra ID .* failed: check AZURE_TENANT_ID") as caught:
        list(adapter.list_assets())
    assert "AADSTS7000215" in str(caught.value)
    assert SECRET not in str(caught.value)
