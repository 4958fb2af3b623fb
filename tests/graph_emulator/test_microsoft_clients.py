"""What Microsoft's own clients send, and the Graph rules they rely on, answered as Microsoft answers them.

Identity points use msal and azure-identity as they are configured against Microsoft (instance discovery on);
Graph points send the exact requests msgraph-sdk sends (`make compat` runs the SDK itself).
"""

from __future__ import annotations

import base64

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from emulator_helpers import GRAPH_SCOPE, error_of, http_client

from graph_emulator import seeds

DOMAIN = seeds.DEFAULT_TENANT_DOMAIN
ENGINEERING = seeds.stable_id(DOMAIN, "seed-group", "engineering")
FALCON = seeds.stable_id(DOMAIN, "seed-group", "empty-team")
GRAPH_APP_ID_SCOPE = "00000003-0000-0000-c000-000000000000/.default"


@pytest.fixture
def trust_emulator(emu, monkeypatch):
    """azure-identity and msal use requests, which reads its CA bundle from the environment."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_path))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def user_ids(emu, count: int) -> list[str]:
    return [u["id"] for u in seeds.default_seed()["tenants"][0]["users"] if u["userType"] == "Member"][
        -count:
    ]


# ---- A2: $deltaToken=latest ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["$deltatoken", "$deltaToken"])
def test_delta_token_latest_gives_only_a_delta_link(graph, emu, name):
    response = graph.get(f"/groups/delta?{name}=latest")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["value"] == [] and "@odata.nextLink" not in body
    assert graph.patch(f"/groups/{FALCON}", json={"description": "changed"}).status_code == 204
    emu.replicate_now()
    following = graph.get(body["@odata.deltaLink"]).json()
    assert [entry["id"] for entry in following["value"]] == [FALCON]


# ---- A3: $select against v1.0 ----------------------------------------------------------------------


def test_select_accepts_v1_properties_and_refuses_others(graph):
    v1_only = "id,uniqueName,isArchived,assignedLabels,assignedLicenses"
    response = graph.get(f"/groups/{ENGINEERING}", params={"$select": v1_only})
    assert response.status_code == 200, response.text
    assert set(response.json()) - {"@odata.context"} == set(v1_only.split(","))
    refused = graph.get(f"/groups/{ENGINEERING}", params={"$select": "id,createdByAppId"})
    assert refused.status_code == 400
    assert "createdByAppId" in error_of(refused)["message"]
    assert graph.get("/users", params={"$select": "id,employeeHireDate,ageGroup"}).status_code == 200


# ---- A4: x-ms-throttle-scope order (the bucket tests assert the full header) -----------------------


def test_throttle_scope_names_application_before_tenant(emu):
    verdict = emu.emulator.throttle
    verdict.enabled = True
    app_id, tenant_id = emu.client_id, emu.tenant_id
    result = None
    for _ in range(10_000):
        result = verdict.charge(tenant_id, "S", app_id, 5, is_write=False)
        if result.retry_after:
            break
    assert result is not None and result.retry_after
    assert result.scope.split("/")[-2:] == [app_id, tenant_id]
    verdict.reset()


# ---- A5: references must point at Graph ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example/v1.0/directoryObjects/{id}",
        "https://graph.microsoft.com.attacker.example/v1.0/directoryObjects/{id}",
        "https://graph.microsoft.com/v1.0/not-a-collection/{id}",
        "{id}",
    ],
)
def test_references_outside_graph_are_refused(graph, emu, url):
    user = user_ids(emu, 1)[0]
    ref = url.format(id=user)
    by_ref = graph.post(f"/groups/{FALCON}/members/$ref", json={"@odata.id": ref})
    assert by_ref.status_code == 400
    by_bind = graph.patch(f"/groups/{FALCON}", json={"members@odata.bind": [ref]})
    assert by_bind.status_code == 400
    assert emu.group_members(FALCON) == []


def test_references_on_graph_and_national_clouds_are_accepted(graph, emu):
    first, second = user_ids(emu, 2)
    good = [
        f"https://graph.microsoft.com/v1.0/directoryObjects/{first}",
        f"https://graph.microsoft.us/v1.0/users/{second}",
    ]
    assert graph.patch(f"/groups/{FALCON}", json={"members@odata.bind": good}).status_code == 204
    assert sorted(emu.group_members(FALCON)) == sorted([first, second])


# ---- B6: the SDK's Group() names its type ----------------------------------------------------------


def test_patch_with_the_group_type_annotation_adds_members(graph, emu):
    user = user_ids(emu, 1)[0]
    body = {
        "@odata.type": "#microsoft.graph.group",
        "members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{user}"],
    }
    assert graph.patch(f"/groups/{FALCON}", json=body).status_code == 204
    assert emu.group_members(FALCON) == [user]
    renamed = graph.patch(
        f"/groups/{FALCON}", json={"@odata.type": "#microsoft.graph.group", "description": "Renamed"}
    )
    assert renamed.status_code == 204
    wrong = graph.patch(
        f"/groups/{FALCON}", json={"@odata.type": "#microsoft.graph.user", "description": "x"}
    )
    assert wrong.status_code == 400


# ---- B7: function-call and alias forms -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/groups/delta()", "/groups/microsoft.graph.delta()", "/groups/delta"])
def test_delta_in_every_form_the_sdks_send(graph, path):
    response = graph.get(path, params={"$select": "displayName"})
    assert response.status_code == 200, response.text
    assert "@odata.deltaLink" in response.json()


def test_graph_alias_in_casts(graph):
    response = graph.get(f"/groups/{ENGINEERING}/members/graph.user", params={"$select": "id"})
    assert response.status_code == 200, response.text
    full = graph.get(f"/groups/{ENGINEERING}/members/microsoft.graph.user", params={"$select": "id"})
    assert response.json()["value"] == full.json()["value"] and len(full.json()["value"]) == 13


# ---- B8: GET .../members/$ref ----------------------------------------------------------------------


def test_member_references_are_listed_and_paged(graph):
    seen: list[str] = []
    url = f"/groups/{ENGINEERING}/members/$ref?$top=5"
    while url:
        response = graph.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert all(set(item) == {"@odata.id"} for item in body["value"])
        seen.extend(item["@odata.id"] for item in body["value"])
        url = body.get("@odata.nextLink")
    assert len(seen) == 13
    assert all(
        "/directoryObjects/" in ref and ref.endswith("Microsoft.DirectoryServices.User") for ref in seen
    )
    owners = graph.get(f"/groups/{ENGINEERING}/owners/$ref")
    assert owners.status_code == 200 and len(owners.json()["value"]) == 2


# ---- B9-B11: identity, with Microsoft's clients as configured against Microsoft --------------------


def test_azure_identity_gets_a_token_for_graphs_app_id_scope(emu, graph, trust_emulator):
    credential = ClientSecretCredential(
        emu.tenant_id,
        emu.client_id,
        emu.client_secret,
        authority=emu.base_url,
        # azure-identity sends instance discovery to login.microsoftonline.com whatever the authority; offline,
        # it must be off. (msal can be pointed at the emulator's own /common/discovery/instance instead.)
        disable_instance_discovery=True,
    )
    token = credential.get_token(GRAPH_APP_ID_SCOPE)
    with http_client(emu) as http:
        response = http.get(
            f"{emu.graph_url}/groups/{ENGINEERING}", headers={"Authorization": f"Bearer {token.token}"}
        )
    assert response.status_code == 200, response.text
    assert credential.get_token(GRAPH_SCOPE).token


def test_msal_validates_the_authority_through_the_emulators_instance_discovery(emu, trust_emulator):
    # MSAL's authority validation asks an instance-discovery endpoint whether the host is known; pointed at the
    # emulator's, it learns the tenant's discovery document from it.
    http = requests.Session()
    authority = msal.authority.Authority(
        emu.authority, http, instance_discovery=f"{emu.base_url}/common/discovery/instance"
    )
    assert authority.token_endpoint == emu.token_url
    assert authority.tenant == emu.tenant_id
    # MSAL's token cache still asks login.microsoftonline.com for aliases, so offline clients turn discovery off.
    app = msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=emu.client_secret,
        authority=emu.authority,
        instance_discovery=False,
        http_client=http,
    )
    assert app.acquire_token_for_client([GRAPH_APP_ID_SCOPE]).get("token_type") == "Bearer"


def test_client_secret_basic_is_accepted(emu):
    pair = f"{emu.client_id}:{emu.client_secret}".encode()
    with http_client(emu) as http:
        response = http.post(
            emu.token_url,
            data={"grant_type": "client_credentials", "scope": GRAPH_SCOPE},
            headers={"Authorization": "Basic " + base64.b64encode(pair).decode()},
        )
        assert response.status_code == 200, response.text
        wrong = base64.b64encode(f"{emu.client_id}:wrong".encode()).decode()
        refused = http.post(
            emu.token_url,
            data={"grant_type": "client_credentials", "scope": GRAPH_SCOPE},
            headers={"Authorization": f"Basic {wrong}"},
        )
    assert refused.status_code == 401 and refused.json()["error_codes"] == [7000215]


@pytest.mark.parametrize("authority", ["common", "organizations"])
def test_shared_authorities_serve_discovery_and_refuse_app_tokens(emu, authority):
    with http_client(emu) as http:
        discovery = http.get(f"{emu.base_url}/{authority}/v2.0/.well-known/openid-configuration")
        assert discovery.status_code == 200, discovery.text
        assert discovery.json()["issuer"].endswith("/{tenantid}/v2.0")
        assert discovery.json()["token_endpoint"] == f"{emu.base_url}/{authority}/oauth2/v2.0/token"
        instance = http.get(
            f"{emu.base_url}/common/discovery/instance",
            params={
                "api-version": "1.1",
                "authorization_endpoint": f"{emu.authority}/oauth2/v2.0/authorize",
            },
        )
        assert instance.status_code == 200
        assert instance.json()["tenant_discovery_endpoint"].startswith(emu.authority)
        token = http.post(
            f"{emu.base_url}/{authority}/oauth2/v2.0/token",
            data={"client_id": emu.client_id, "client_secret": emu.client_secret,
                  "scope": GRAPH_SCOPE, "grant_type": "client_credentials"},
        )  # fmt: skip
    assert token.status_code == 400
    assert token.json()["error_codes"] == [9001023]


@pytest.mark.parametrize("authority", ["common", "organizations"])
def test_azure_identity_on_a_shared_authority_is_told_to_name_the_tenant(emu, trust_emulator, authority):
    credential = ClientSecretCredential(
        authority, emu.client_id, emu.client_secret, authority=emu.base_url, disable_instance_discovery=True
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS9001023"):
        credential.get_token(GRAPH_SCOPE)


# ---- B12: $batch ids are case-insensitive ----------------------------------------------------------


def test_batch_ids_compare_case_insensitively(graph):
    requests_ = [
        {"id": "Get", "method": "GET", "url": f"/groups/{ENGINEERING}?$select=id"},
        {"id": "then", "method": "GET", "url": f"/groups/{FALCON}?$select=id", "dependsOn": ["get"]},
    ]
    response = graph.post("/$batch", json={"requests": requests_})
    assert response.status_code == 200, response.text
    statuses = {item["id"]: item["status"] for item in response.json()["responses"]}
    assert statuses == {"Get": 200, "then": 200}
    duplicate = [
        {"id": "a", "method": "GET", "url": "/groups?$top=1"},
        {"id": "A", "method": "GET", "url": "/groups"},
    ]
    assert graph.post("/$batch", json={"requests": duplicate}).status_code == 400
