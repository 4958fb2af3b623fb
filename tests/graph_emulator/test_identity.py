"""Identity platform: discovery, tokens for secrets and certificates, AADSTS errors, admin consent."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from emulator_helpers import GRAPH_SCOPE, Graph, error_of, fetch_token, http_client

from graph_emulator import seeds
from graph_emulator.testing import RunningEmulator
from reference_examples import reference_dir


def msal_app(
    emu: RunningEmulator, credential: object, client_id: str | None = None
) -> msal.ClientApplication:
    session = requests.Session()
    session.verify = str(emu.ca_path)
    return msal.ConfidentialClientApplication(
        client_id or emu.client_id,
        client_credential=credential,
        authority=emu.authority,
        instance_discovery=False,
        http_client=session,
    )


def token_error(emu: RunningEmulator, tenant: str | None = None, **form: str) -> tuple[int, dict]:
    data = {"client_id": emu.client_id, "client_secret": emu.client_secret, "scope": GRAPH_SCOPE,
            "grant_type": "client_credentials", **form}  # fmt: skip
    with http_client(emu) as http:
        response = http.post(f"{emu.base_url}/{tenant or emu.tenant_id}/oauth2/v2.0/token", data=data)
    return response.status_code, response.json()


def assert_aad_error(body: dict, code: int, error: str) -> None:
    assert set(body) == {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
                         "error_uri"}  # fmt: skip
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert (
        f"\r\nTrace ID: {body['trace_id']}\r\nCorrelation ID: {body['correlation_id']}\r\nTimestamp: "
        in (body["error_description"])
    )
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"


def test_msal_gets_a_token_then_serves_the_second_from_its_cache(emu, monkeypatch):
    # requests lets these variables override session.verify; MSAL must trust the emulator's CA instead.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    app = msal_app(emu, emu.client_secret)
    first = app.acquire_token_for_client([GRAPH_SCOPE])
    assert first["token_type"] == "Bearer" and first["token_source"] == "identity_provider"
    second = app.acquire_token_for_client([GRAPH_SCOPE])
    assert second["token_source"] == "cache"
    assert second["access_token"] == first["access_token"]
    assert emu.stats()["token_requests"] == 1


def test_token_is_an_rs256_jwt_verifiable_with_the_published_keys(emu):
    token = fetch_token(emu)
    with http_client(emu) as http:
        config = http.get(f"{emu.authority}/v2.0/.well-known/openid-configuration").json()
        keys = http.get(config["jwks_uri"]).json()
    header = jwt.get_unverified_header(token)
    key = next(k for k in keys["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert claims["tid"] == emu.tenant_id
    assert claims["appid"] == emu.client_id
    assert set(claims["roles"]) == set(seeds.APP_ROLES)
    assert 3500 <= claims["exp"] - claims["iat"] <= 3600


def test_discovery_document_has_what_msal_needs(emu):
    with http_client(emu) as http:
        config = http.get(f"{emu.authority}/v2.0/.well-known/openid-configuration").json()
    for key in ("authorization_endpoint", "token_endpoint", "issuer", "jwks_uri",
                "token_endpoint_auth_methods_supported"):  # fmt: skip
        assert key in config
    assert config["token_endpoint"] == emu.token_url
    assert {"client_secret_post", "private_key_jwt"} <= set(config["token_endpoint_auth_methods_supported"])


def test_success_body_matches_the_documented_shape(emu):
    with http_client(emu) as http:
        response = http.post(emu.token_url, data={"client_id": emu.client_id, "scope": GRAPH_SCOPE,
                             "client_secret": emu.client_secret, "grant_type": "client_credentials"})  # fmt: skip
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["expires_in"] == 3599 and "refresh_token" not in body


def test_wrong_secret_is_aadsts7000215(emu):
    status, body = token_error(emu, client_secret="not-the-secret")
    assert status == 401
    assert_aad_error(body, 7000215, "invalid_client")
    reference = json.loads((reference_dir() / "observed-token-endpoint-errors.json").read_text())
    expected_start = reference["AADSTS7000215_invalid_secret"]["body"]["error_description"].split("{appId}")[
        0
    ]
    assert body["error_description"].startswith(expected_start)
    assert f"app '{emu.client_id}'" in body["error_description"]


def test_expired_secret_is_aadsts7000222(emu):
    status, body = token_error(
        emu, client_id=seeds.EXPIRED_CLIENT_ID, client_secret=seeds.EXPIRED_CLIENT_SECRET
    )
    assert status == 401
    assert_aad_error(body, 7000222, "invalid_client")
    assert "are expired" in body["error_description"]


def test_unknown_app_is_aadsts700016(emu):
    status, body = token_error(emu, client_id=str(uuid.uuid4()))
    assert status == 400
    assert_aad_error(body, 700016, "unauthorized_client")


def test_unknown_tenant_is_aadsts90002_on_token_and_discovery(emu):
    tenant = str(uuid.uuid4())
    status, body = token_error(emu, tenant=tenant)
    assert status == 400
    assert_aad_error(body, 90002, "invalid_request")
    assert f"Tenant '{tenant}' not found." in body["error_description"]
    with http_client(emu) as http:
        response = http.get(f"{emu.base_url}/{tenant}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert_aad_error(response.json(), 90002, "invalid_tenant")


def test_msal_reports_the_aadsts_error(emu, monkeypatch):
    # requests lets these variables override session.verify; MSAL must trust the emulator's CA instead.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    result = msal_app(emu, "wrong").acquire_token_for_client([GRAPH_SCOPE])
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215]


def test_scope_other_than_graph_default_is_refused(emu):
    status, body = token_error(emu, scope="https://foo.microsoft.com/.default")
    assert status == 400
    assert_aad_error(body, 70011, "invalid_scope")
    status, body = token_error(emu, scope="https://graph.microsoft.com/User.Read")
    assert status == 400 and body["error"] == "invalid_scope"


def test_tenant_domain_works_in_the_authority(emu):
    status_code = None
    with http_client(emu) as http:
        response = http.post(f"{emu.base_url}/{emu.tenant_domain}/oauth2/v2.0/token",
                             data={"client_id": emu.client_id, "client_secret": emu.client_secret,
                                   "scope": GRAPH_SCOPE, "grant_type": "client_credentials"})  # fmt: skip
        status_code = response.status_code
    assert status_code == 200


def test_unconsented_app_gets_a_token_without_roles_and_graph_refuses(emu):
    token = fetch_token(emu, emu.unconsented_client_id, emu.unconsented_client_secret)
    assert "roles" not in jwt.decode(token, options={"verify_signature": False})
    graph = Graph(emu, token)
    response = graph.get("/groups")
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "Authorization_RequestDenied"
    assert error["message"] == "Insufficient privileges to complete the operation."


def test_admin_consent_grants_roles_and_redirects_back(emu):
    with http_client(emu) as http:
        response = http.get(f"{emu.authority}/v2.0/adminconsent", params={
            "client_id": emu.unconsented_client_id, "scope": GRAPH_SCOPE,
            "redirect_uri": "https://app.example/consent/callback", "state": "xyz"})  # fmt: skip
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://app.example/consent/callback"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query == {
        "admin_consent": "True",
        "tenant": emu.tenant_id,
        "scope": GRAPH_SCOPE,
        "state": "xyz",
    }
    token = fetch_token(emu, emu.unconsented_client_id, emu.unconsented_client_secret)
    assert set(jwt.decode(token, options={"verify_signature": False})["roles"]) == set(seeds.APP_ROLES)
    assert Graph(emu, token).get("/groups").status_code == 200


def test_declined_consent_redirects_with_aadsts65004(emu):
    emu.set_tenant_policy(decline_consent=True)
    with http_client(emu) as http:
        response = http.get(
            f"{emu.authority}/v2.0/adminconsent",
            params={
                "client_id": emu.unconsented_client_id,
                "redirect_uri": "https://app.example/cb",
                "state": "s1",
            },
        )
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    assert query["error"] == "consent_required" and query["state"] == "s1"
    assert query["error_description"].startswith("AADSTS65004: ")


def test_missing_role_after_roles_change(emu):
    emu.set_app_roles(emu.client_id, ["User.Read.All"])
    graph = Graph(emu, fetch_token(emu))
    assert graph.get("/users").status_code == 200
    assert graph.get("/groups").status_code == 403


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer not-a-jwt", "IDX14100: JWT is not well formed, there are no dots (.)."),
        ("Bearer a.b.c", "Access token validation failure. Invalid signature."),
    ],
)
def test_bad_tokens_are_401_invalid_authentication_token(emu, authorization, message):
    headers = {"Authorization": authorization} if authorization else {}
    with http_client(emu) as http:
        response = http.get(f"{emu.graph_url}/groups", headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert error == {**error, "code": "InvalidAuthenticationToken", "message": message}


def test_revoked_tokens_get_401(emu, graph):
    assert graph.get("/groups").status_code == 200
    emu.revoke_tokens()
    response = graph.get("/groups")
    assert response.status_code == 401
    assert error_of(response)["code"] == "InvalidAuthenticationToken"


def _self_signed() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "equa-app")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))  # fmt: skip
    return key, cert


def test_certificate_credential_through_msal(emu, monkeypatch):
    # requests lets these variables override session.verify; MSAL must trust the emulator's CA instead.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    key, cert = _self_signed()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    seed = seeds.default_seed()
    seed["tenants"][0]["apps"][0]["certificates"] = [{"pem": cert_pem}]
    emu.reset(seed)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
    good = msal_app(emu, {"private_key": key_pem, "public_certificate": cert_pem})
    assert "access_token" in good.acquire_token_for_client([GRAPH_SCOPE])
    other_key, other_cert = _self_signed()
    other = msal_app(emu, {
        "private_key": other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()).decode(),
        "public_certificate": other_cert.public_bytes(serialization.Encoding.PEM).decode()})  # fmt: skip
    result = other.acquire_token_for_client([GRAPH_SCOPE])
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]


def test_assertion_signed_by_another_key_with_the_registered_thumbprint_is_refused(emu):
    _key, cert = _self_signed()
    seed = seeds.default_seed()
    seed["tenants"][0]["apps"][0]["certificates"] = [
        {"pem": cert.public_bytes(serialization.Encoding.PEM).decode()}
    ]
    emu.reset(seed)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    x5t = jwt.utils.base64url_encode(cert.fingerprint(hashes.SHA1())).decode()
    now = int(time.time())
    assertion = jwt.encode({"aud": emu.token_url, "iss": emu.client_id, "sub": emu.client_id,
                            "jti": str(uuid.uuid4()), "nbf": now, "exp": now + 600}, forger, algorithm="RS256",
                           headers={"x5t": x5t})  # fmt: skip
    status, body = token_error(
        emu,
        client_secret="",
        client_assertion=assertion,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )
    assert status == 401 and body["error_codes"] == [700027]


def test_token_outage_answers_503(emu):
    emu.set_faults(token_outage=True)
    status, body = token_error(emu)
    assert status == 503 and body["error"] == "temporarily_unavailable"
