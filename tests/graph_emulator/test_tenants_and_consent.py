"""Several tenants in one emulator: the multi-tenant app's service principal per tenant, the admin consent pages,
revoking consent, /organization and token issuer per tenant, and token requests counted per tenant."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from emulator_helpers import GRAPH_SCOPE, Graph, error_of, fetch_token, http_client

from graph_emulator import seeds
from graph_emulator.testing import RunningEmulator

CONTOSO = seeds.DEFAULT_TENANT_ID
FABRIKAM = seeds.FABRIKAM_TENANT_ID
PUBLISHER = seeds.PUBLISHER_TENANT_ID
CALLBACK = "https://equa.example/microsoft/consent-callback"


@pytest.fixture
def multi(graph_emulator_multi_tenant: RunningEmulator) -> RunningEmulator:
    return graph_emulator_multi_tenant


def token_response(emu: RunningEmulator, tenant: str, client_id: str | None = None) -> httpx.Response:
    with http_client(emu) as http:
        return http.post(
            f"{emu.base_url}/{tenant}/oauth2/v2.0/token",
            data={
                "client_id": client_id or emu.client_id,
                "client_secret": emu.client_secret,
                "scope": GRAPH_SCOPE,
                "grant_type": "client_credentials",
            },
        )


def tenant_token(emu: RunningEmulator, tenant: str) -> str:
    response = token_response(emu, tenant)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


def alert(page: str) -> str:
    found = re.search(r'role="alert">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


# ---- the seed ----------------------------------------------------------------------------------------------


def test_default_seed_is_one_tenant_without_sign_in_accounts():
    seed = seeds.default_seed()
    assert [t["id"] for t in seed["tenants"]] == [CONTOSO]
    assert "accounts" not in seed["tenants"][0] and "servicePrincipals" not in seed["tenants"][0]


def test_multi_tenant_seed_has_tenants_with_their_own_users_groups_and_administrators(multi):
    tenants = {t["id"]: t for t in multi.tenants()}
    assert set(tenants) == {PUBLISHER, CONTOSO, FABRIKAM}
    contoso, fabrikam = tenants[CONTOSO], tenants[FABRIKAM]
    assert (contoso["displayName"], fabrikam["displayName"]) == ("Contoso", "Fabrikam")
    assert fabrikam["verifiedDomains"] == ["fabrikam.onmicrosoft.com", "fabrikam.com"]
    assert contoso["groups"] == 11 and fabrikam["groups"] == 3
    for tenant_id, (admin, password) in seeds.DEMO_ADMINS.items():
        accounts = {a["userPrincipalName"]: a for a in tenants[tenant_id]["accounts"]}
        assert accounts[admin]["admin"] and accounts[admin]["password"] == password
        assert [a["admin"] for a in accounts.values()].count(False) == 1
    assert multi.tenant_admin("fabrikam.com") == seeds.DEMO_ADMINS[FABRIKAM]
    # The app is registered in the publisher's tenant, consented in Contoso, not in Fabrikam.
    assert multi.consent_state(CONTOSO)["consented"]
    assert not multi.consent_state(FABRIKAM)["servicePrincipal"]
    assert set(multi.consent_state(CONTOSO)["roles"]) == set(seeds.MULTI_TENANT_APP_ROLES)


def test_each_tenant_sees_only_its_own_directory(multi):
    multi.grant_consent(FABRIKAM)
    contoso = Graph(multi, tenant_token(multi, CONTOSO))
    fabrikam = Graph(multi, tenant_token(multi, "fabrikam.com"))
    contoso_groups = {g["displayName"] for g in contoso.get("/groups").json()["value"]}
    fabrikam_groups = {g["displayName"] for g in fabrikam.get("/groups").json()["value"]}
    assert "Engineering" in contoso_groups and "Engineering" not in fabrikam_groups
    assert fabrikam_groups == {"Fabrikam Research", "Fabrikam Sales", "Product Launch"}
    research = seeds.stable_id(seeds.FABRIKAM_TENANT_DOMAIN, "seed-group", "research")
    assert contoso.get(f"/groups/{research}").status_code == 404
    assert fabrikam.get(f"/groups/{research}").status_code == 200


# ---- tokens and /organization per tenant -------------------------------------------------------------------


def test_tokens_carry_the_tenant_of_their_authority_and_organization_answers_that_tenant(multi):
    multi.grant_consent(FABRIKAM)
    for tenant_id, name, domain in [
        (CONTOSO, "Contoso", "contoso.com"),
        (FABRIKAM, "Fabrikam", "fabrikam.com"),
    ]:
        token = tenant_token(multi, tenant_id)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["tid"] == tenant_id
        assert claims["iss"] == f"https://sts.windows.net/{tenant_id}/"
        assert claims["oid"] == seeds.stable_id(tenant_id, "sp", multi.client_id)
        organization = Graph(multi, token).get("/organization").json()["value"]
        assert [(o["id"], o["displayName"]) for o in organization] == [(tenant_id, name)]
        assert domain in {d["name"] for d in organization[0]["verifiedDomains"]}


def test_a_tenant_without_the_apps_service_principal_refuses_the_token_with_aadsts7000229(multi):
    response = token_response(multi, FABRIKAM)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client" and body["error_codes"] == [7000229]
    assert body["error_description"].startswith(
        f"AADSTS7000229: The client application {multi.client_id} is missing service principal in the tenant "
        f"{FABRIKAM}."
    )


def test_an_unknown_app_is_aadsts700016_in_every_tenant(multi):
    response = token_response(multi, FABRIKAM, client_id="00000000-1111-2222-3333-444444444444")
    assert response.status_code == 400
    assert response.json()["error_codes"] == [700016]


def test_token_requests_are_counted_per_tenant(multi):
    multi.reset_stats()
    for _ in range(3):
        tenant_token(multi, CONTOSO)
    token_response(multi, FABRIKAM)
    tenant_token(multi, "equadev.onmicrosoft.com")  # a domain counts for its tenant
    stats = multi.stats()
    assert multi.token_requests_by_tenant() == {CONTOSO: 3, FABRIKAM: 1, PUBLISHER: 1}
    assert stats["tokens_issued_by_tenant"] == {CONTOSO: 3, PUBLISHER: 1}
    assert stats["token_requests"] == 5
    Graph(multi, tenant_token(multi, CONTOSO)).get("/groups")
    assert multi.stats()["graph_requests_by_tenant"] == {CONTOSO: 1}


# ---- the consent pages -------------------------------------------------------------------------------------


def consent_get(
    emu: RunningEmulator, http: httpx.Client, redirect_uri: str = CALLBACK, tenant: str = "organizations"
):
    return http.get(emu.admin_consent_url(redirect_uri, state="st-1", tenant=tenant))


def test_admin_signs_in_reads_the_permissions_and_accepts(multi):
    admin, password = multi.tenant_admin(FABRIKAM)
    with http_client(multi) as http:
        page = consent_get(multi, http)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'name="password"' in page.text and "Equa Microsoft 365 sync" in page.text
        page = http.post(str(page.url), data={**hidden_fields(page.text), "action": "signin", "login": admin,
                                              "password": password})  # fmt: skip
        assert page.status_code == 200 and "Permissions requested" in page.text
        listed = re.findall(r"<code>([\w.]+)</code></li>", page.text)
        assert listed == sorted(seeds.MULTI_TENANT_APP_ROLES)
        assert "Fabrikam" in page.text and 'value="accept"' in page.text and 'value="cancel"' in page.text
        answer = http.post(str(page.url), data={**hidden_fields(page.text), "action": "accept"})
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(f"{CALLBACK}?")
    assert query_of(location) == {
        "admin_consent": "True",
        "tenant": FABRIKAM,
        "scope": GRAPH_SCOPE,
        "state": "st-1",
    }
    token = tenant_token(multi, FABRIKAM)
    assert set(jwt.decode(token, options={"verify_signature": False})["roles"]) == set(
        seeds.MULTI_TENANT_APP_ROLES
    )
    assert Graph(multi, token).get("/groups").status_code == 200


def test_cancel_redirects_with_access_denied_and_grants_nothing(multi):
    admin, password = multi.tenant_admin(FABRIKAM)
    location = multi.complete_admin_consent(
        multi.admin_consent_url(CALLBACK, state="st-2"), admin, password, accept=False
    )
    query = query_of(location)
    assert (
        query["error"] == "access_denied" and query["admin_consent"] == "False" and query["state"] == "st-2"
    )
    assert query["error_description"].startswith("AADSTS65004: User declined to consent to access the app.")
    assert "tenant" not in query
    assert token_response(multi, FABRIKAM).json()["error_codes"] == [7000229]


@pytest.mark.parametrize(
    ("login", "password", "message"),
    [
        ("admin@fabrikam.onmicrosoft.com", "wrong", "Your account or password is incorrect."),
        ("nobody@fabrikam.onmicrosoft.com", "whatever", "We couldn't find an account with that username."),
    ],
)
def test_a_wrong_password_or_unknown_account_is_refused_on_the_sign_in_page(multi, login, password, message):
    with http_client(multi) as http:
        page = consent_get(multi, http)
        page = http.post(str(page.url), data={**hidden_fields(page.text), "action": "signin", "login": login,
                                              "password": password})  # fmt: skip
    assert page.status_code == 200 and 'name="password"' in page.text
    assert alert(page.text).startswith(message)
    assert "location" not in page.headers


def test_a_member_who_is_not_an_administrator_cannot_consent(multi):
    member = next(a for a in multi.tenant(FABRIKAM)["accounts"] if not a["admin"])
    with pytest.raises(AssertionError, match="Need admin approval"):
        multi.complete_admin_consent(
            multi.admin_consent_url(CALLBACK), member["userPrincipalName"], seeds.DEMO_USER_PASSWORD
        )
    assert not multi.consent_state(FABRIKAM)["servicePrincipal"]


def test_a_tenant_specific_consent_url_takes_only_that_tenants_administrator(multi):
    url = multi.admin_consent_url(CALLBACK, tenant=FABRIKAM)
    with pytest.raises(AssertionError, match="AADSTS50020"):
        multi.complete_admin_consent(url, *multi.tenant_admin(CONTOSO))
    location = multi.complete_admin_consent(url, *multi.tenant_admin(FABRIKAM))
    assert query_of(location)["tenant"] == FABRIKAM


def test_an_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(multi):
    multi.set_redirect_uris([CALLBACK])
    with http_client(multi) as http:
        page = consent_get(multi, http, redirect_uri="https://evil.example/steal")
        assert page.status_code == 400 and "location" not in page.headers
        assert alert(page.text).startswith("AADSTS50011: The redirect URI 'https://evil.example/steal'")
        assert consent_get(multi, http).status_code == 200  # the registered one is served


def test_unknown_app_on_the_consent_endpoint_is_an_error_page(multi):
    with http_client(multi) as http:
        page = http.get(multi.admin_consent_url(CALLBACK, client_id="00000000-1111-2222-3333-444444444444"))
    assert page.status_code == 400 and alert(page.text).startswith("AADSTS700016")


def test_a_form_sent_twice_or_with_another_pages_token_is_refused(multi):
    admin, password = multi.tenant_admin(FABRIKAM)
    with http_client(multi) as http:
        first = consent_get(multi, http)
        stale = hidden_fields(first.text)
        signed_in = http.post(
            str(first.url), data={**stale, "action": "signin", "login": admin, "password": password}
        )
        assert "Permissions requested" in signed_in.text
        replay = http.post(str(first.url), data={**stale, "action": "accept"})
        assert replay.status_code == 400 and "location" not in replay.headers
        forged = http.post(str(first.url), data={"flow": "f" * 32, "csrf": "x", "action": "accept"})
        assert forged.status_code == 400
    assert not multi.consent_state(FABRIKAM)["servicePrincipal"]


def test_a_single_tenant_seed_still_consents_at_once_on_its_tenant_url(emu):
    location = emu.complete_admin_consent(
        emu.admin_consent_url(CALLBACK, tenant=emu.tenant_id, client_id=emu.unconsented_client_id), "-", "-"
    )
    assert query_of(location)["admin_consent"] == "True"


# ---- revoking and granting again ---------------------------------------------------------------------------


def test_revoked_consent_refuses_tokens_and_graph_refuses_tokens_issued_before(multi):
    before = Graph(multi, tenant_token(multi, CONTOSO))
    assert before.get("/groups").status_code == 200
    assert multi.revoke_consent(CONTOSO)
    response = token_response(multi, CONTOSO)
    assert response.status_code == 401 and response.json()["error_codes"] == [7000229]
    refused = before.get("/groups")
    assert refused.status_code == 401
    error = error_of(refused)
    assert error["code"] == "Authorization_IdentityNotFound"
    assert error["message"] == "The identity of the calling application could not be established."
    multi.grant_consent(CONTOSO)
    assert Graph(multi, tenant_token(multi, CONTOSO)).get("/groups").status_code == 200


def test_removing_the_permissions_keeps_the_service_principal_and_new_tokens_get_403(multi):
    assert multi.revoke_consent(CONTOSO, mode="permissions")
    token = tenant_token(multi, CONTOSO)
    assert "roles" not in jwt.decode(token, options={"verify_signature": False})
    response = Graph(multi, token).get("/groups")
    assert response.status_code == 403 and error_of(response)["code"] == "Authorization_RequestDenied"
    assert multi.consent_state(CONTOSO) | {"roles": []} == multi.consent_state(CONTOSO)


def test_revoking_in_the_home_tenant_of_a_single_tenant_app(emu):
    assert emu.revoke_consent(emu.tenant_id)
    assert token_response(emu, emu.tenant_id).json()["error_codes"] == [7000229]
    emu.grant_consent(emu.tenant_id)
    assert fetch_token(emu)


def test_the_emulator_page_lists_tenants_and_revokes_and_grants_consent(multi):
    with http_client(multi) as http:
        page = http.get(f"{multi.base_url}/_emulator")
        assert page.status_code == 200 and "Fabrikam" in page.text and "Contoso" in page.text
        assert seeds.DEMO_ADMINS[FABRIKAM][1] in page.text
        section = page.text.split(f'id="tenant-{CONTOSO}"', 1)[1].split("</section>", 1)[0]
        revoke = re.search(r'<form method="post" action="/_emulator/ui/consent">(.*?)</form>', section.split(
            "Grant consent</button></form>", 1)[1]).group(1)  # fmt: skip
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', revoke))
        assert fields["action"] == "revoke" and fields["tenant"] == CONTOSO
        answer = http.post(f"{multi.base_url}/_emulator/ui/consent", data=fields)
        assert answer.status_code == 303
        assert not multi.consent_state(CONTOSO)["servicePrincipal"]
        assert (
            http.post(f"{multi.base_url}/_emulator/ui/consent", data={**fields, "csrf": "x"}).status_code
            == 400
        )
        grant = {**fields, "action": "grant"}
        assert http.post(f"{multi.base_url}/_emulator/ui/consent", data=grant).status_code == 303
    assert multi.consent_state(CONTOSO)["consented"]


# ---- test helpers ------------------------------------------------------------------------------------------


def test_a_tenant_created_by_a_test_is_consented_through_the_pages(multi):
    created = multi.create_tenant("Northwind", users=12, groups=3, admin_password="Northwind-1!")
    assert created["domain"] == "northwind.onmicrosoft.com" and created["users"] == 13  # 12 and the admin
    assert multi.tenant_admin("Northwind") == ("admin@northwind.onmicrosoft.com", "Northwind-1!")
    assert token_response(multi, created["id"]).json()["error_codes"] == [7000229]
    location = multi.complete_admin_consent(
        multi.admin_consent_url(CALLBACK), *multi.tenant_admin("Northwind")
    )
    assert query_of(location)["tenant"] == created["id"]
    assert multi.consent_state(created["id"])["consented"]
    groups = Graph(multi, tenant_token(multi, created["id"])).get("/groups").json()["value"]
    assert len(groups) == 3


def test_a_tenant_can_be_created_consented_and_a_taken_domain_is_refused(multi):
    created = multi.create_tenant("Tailspin", consented=True)
    assert multi.consent_state(created["id"])["consented"]
    with pytest.raises(RuntimeError, match="400"):
        multi.create_tenant("Other", domain="fabrikam.com")


def test_msal_with_a_customer_tenants_authority(multi):
    import msal

    def acquire() -> dict:
        settings = {**multi.msal_settings(), "authority": f"{multi.base_url}/{FABRIKAM}"}
        with settings["http_client"]:
            return msal.ConfidentialClientApplication(**settings).acquire_token_for_client([GRAPH_SCOPE])

    refused = acquire()
    assert refused["error"] == "invalid_client" and refused["error_codes"] == [7000229]
    multi.complete_admin_consent(multi.admin_consent_url(CALLBACK), *multi.tenant_admin(FABRIKAM))
    granted = acquire()
    assert jwt.decode(granted["access_token"], options={"verify_signature": False})["tid"] == FABRIKAM
