"""One list of Graph permissions in code, per feature and scope mode; the docs, errors and the check follow it."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from equa.microsoft.graph.diagnose import diagnose
from equa.microsoft.graph.errors import (
    GraphAuthenticationFailed,
    GraphPermissionDenied,
    classify_graph_error,
    classify_token_error,
)
from equa.microsoft.graph.permissions import (
    OPTIONAL_PERMISSIONS,
    Feature,
    GroupScopeError,
    ScopeKind,
    ScopeSetting,
    feature_of,
    group_scope_of,
    missing_permissions,
    parse_group_scope,
    permission_names,
    required_permissions,
)
from equa.settings import load_settings

DOCS = Path(__file__).resolve().parents[4] / "docs" / "entra-app-registration.md"
GRANTED = ScopeSetting(ScopeKind.GRANTED)
UNIT = ScopeSetting(ScopeKind.ADMINISTRATIVE_UNIT, "5a6b7c8d-0000-4000-8000-000000000001")
CONSENT_URL = "https://login.example/tenant/v2.0/adminconsent?client_id=abc"


def documented_tables() -> list[list[str]]:
    """The permission table rows of section 2 of the registration guide, table by table."""
    text = DOCS.read_text()
    section = text[text.index("## 2.") : text.index("## 3.")]
    tables = []
    for block in section.split("### ")[1:]:
        rows = [line for line in block.splitlines() if line.startswith("| `")]
        if rows:
            tables.append(rows)
    return tables


def test_the_registration_guide_lists_exactly_the_permissions_of_the_code() -> None:
    every_mode, unit_only, multi_tenant_only, optional = documented_tables()
    base = required_permissions(GRANTED)
    extra = required_permissions(UNIT)[len(base) :]
    multi_tenant = required_permissions(replace(GRANTED, multi_tenant=True))[len(base) :]
    assert every_mode == [f"| `{p.name}` | {p.why} |" for p in base]
    assert unit_only == [f"| `{p.name}` | {p.why} |" for p in extra]
    assert multi_tenant_only == [f"| `{p.name}` | {p.why} |" for p in multi_tenant]
    assert optional == [f"| `{p.name}` | {p.why} |" for p in OPTIONAL_PERMISSIONS]
    assert required_permissions(ScopeSetting(ScopeKind.TENANT)) == base
    assert required_permissions(replace(UNIT, multi_tenant=True)) == (*base, *extra, *multi_tenant)


def test_multi_tenant_mode_needs_organization_read_all_and_its_errors_name_it() -> None:
    multi = group_scope_of(
        load_settings(ms_auth_tenant_id="organizations", public_url="https://equa.example.com")
    )
    single = group_scope_of(load_settings(ms_auth_tenant_id="contoso.onmicrosoft.com"))

    assert permission_names(multi)[-1] == "Organization.Read.All"
    assert "Organization.Read.All" not in permission_names(single)
    assert [p.name for p in missing_permissions(APP_ROLES_WITHOUT_ORGANIZATION, multi)] == [
        "Organization.Read.All"
    ]
    assert missing_permissions(APP_ROLES_WITHOUT_ORGANIZATION, single) == []
    # Proving a tenant (GET /organization) refused for want of it: the action names that permission alone.
    error = classify_graph_error(
        403,
        {
            "error": {
                "code": "Authorization_RequestDenied",
                "message": "Insufficient privileges to complete the operation.",
            }
        },
        group_scope=multi,
        feature=feature_of("GET", "/organization"),
    )
    assert isinstance(error, GraphPermissionDenied)
    assert "permission Organization.Read.All to the app registration" in (error.action or "")


APP_ROLES_WITHOUT_ORGANIZATION = ["Group.ReadWrite.All", "GroupMember.ReadWrite.All", "User.Read.All"]


def test_scope_modes_parse_and_the_unit_mode_needs_the_unit_permissions() -> None:
    assert parse_group_scope(None) == GRANTED
    assert parse_group_scope("tenant").kind == ScopeKind.TENANT
    assert parse_group_scope("administrative-unit:abc") == ScopeSetting(ScopeKind.ADMINISTRATIVE_UNIT, "abc")
    with pytest.raises(GroupScopeError, match="MS_GROUP_SCOPE"):
        parse_group_scope("administrative-unit:")
    assert "AdministrativeUnit.Read.All" not in permission_names(GRANTED)
    # Microsoft: creating a group inside a unit takes Group.Create and AdministrativeUnit.Read.All.
    assert permission_names(UNIT, Feature.CREATE_GROUPS) == ["Group.Create", "AdministrativeUnit.Read.All"]
    assert "AdministrativeUnit.ReadWrite.All" not in permission_names(UNIT)


def test_broader_permissions_count_for_the_ones_they_include() -> None:
    emulator_roles = ["Group.ReadWrite.All", "GroupMember.ReadWrite.All", "User.Read.All"]
    assert missing_permissions(emulator_roles, GRANTED) == []
    assert [p.name for p in missing_permissions(emulator_roles, UNIT)] == ["AdministrativeUnit.Read.All"]
    assert [p.name for p in missing_permissions(["Group.Read.All"], GRANTED)] == [
        "GroupMember.ReadWrite.All",
        "Group.Create",
        "User.Read.All",
    ]


@pytest.mark.parametrize(
    ("method", "route", "feature", "named"),
    [
        ("POST", "/groups", Feature.CREATE_GROUPS, "Group.Create"),
        ("POST", "/groups/{id}/members/$ref", Feature.MANAGE_MEMBERS, "GroupMember.ReadWrite.All"),
        ("GET", "/users", Feature.LOOK_UP_USERS, "User.Read.All"),
        ("GET", "/groups/{id}", Feature.READ_GROUPS, "Group.Read.All"),
        ("GET", "/directory/deletedItems/{id}", Feature.READ_GROUPS, "Group.Read.All"),
        ("POST", "/directory/deletedItems/{id}/restore", Feature.RESTORE_GROUPS, "Group.ReadWrite.All"),
    ],
)
def test_a_missing_permission_names_the_one_the_request_needed(
    method: str, route: str, feature: Feature, named: str
) -> None:
    assert feature_of(method, route) == feature
    error = classify_graph_error(
        403,
        {
            "error": {
                "code": "Authorization_RequestDenied",
                "message": "Insufficient privileges to complete the operation.",
            }
        },
        admin_consent_url=CONSENT_URL,
        group_scope=GRANTED,
        feature=feature,
    )
    assert isinstance(error, GraphPermissionDenied)
    action = error.action or ""
    assert named in action and CONSENT_URL in action
    others = set(permission_names(GRANTED)) - set(permission_names(GRANTED, feature))
    assert not any(name in action for name in others)


def test_creating_a_group_in_unit_mode_names_the_unit_permission() -> None:
    error = classify_graph_error(
        403,
        {
            "error": {
                "code": "Authorization_RequestDenied",
                "message": "Insufficient privileges to complete the operation.",
            }
        },
        group_scope=UNIT,
        feature=feature_of("POST", "/directory/administrativeUnits/{id}/members"),
    )
    assert "AdministrativeUnit.Read.All" in (error.action or "") and "Group.Create" in (error.action or "")


@pytest.mark.parametrize(
    ("status", "message", "phrase"),
    [
        (
            403,
            "Insufficient privileges to complete the operation. Target object is a role-assignable group.",
            "RoleManagement.ReadWrite.Directory",
        ),
        (
            403,
            "Operation not permitted on an object in a restricted management administrative unit.",
            "restricted management",
        ),
        (401, "Either scp or roles claim need to be present in the token.", "no application permission"),
    ],
)
def test_request_denied_variants_say_what_to_do(status: int, message: str, phrase: str) -> None:
    code = "Authorization_RequestDenied" if status == 403 else "InvalidAuthenticationToken"
    error = classify_graph_error(status, {"error": {"code": code, "message": message}}, group_scope=GRANTED)
    assert isinstance(error, GraphPermissionDenied)
    assert phrase in (error.action or "")


@pytest.mark.parametrize(
    ("number", "phrase"),
    [
        (70011, "`.default` scope"),
        (500011, "MS_GRAPH_URL"),
        (7000112, "Enabled for users to sign in"),
        (53003, "Conditional Access"),
        (7000229, "grants admin consent"),
        (700027, "MS_AUTH_CERTIFICATE_PATH"),
    ],
)
def test_sign_in_errors_have_specific_actions(number: int, phrase: str) -> None:
    body = {
        "error": "invalid_client" if number != 53003 else "access_denied",
        "error_description": f"AADSTS{number}: Something went wrong.\r\nTrace ID: t\r\nCorrelation ID: c",
        "error_codes": [number],
    }
    error = classify_token_error(body, status=400)
    assert isinstance(error, GraphAuthenticationFailed)
    assert error.code == f"AADSTS{number}"
    assert phrase in (error.action or "")
    assert not re.search(r"^Check the app registration and the MS_AUTH_\* settings", error.action or "")


async def test_the_check_names_a_permission_the_token_lacks(emu: Any) -> None:
    from graph_emulator.seeds import APP_ROLES

    settings = load_settings(
        ms_auth_client_id=emu.client_id,
        ms_auth_tenant_id=emu.tenant_id,
        ms_auth_secret=emu.client_secret,
        ms_authority_host=emu.base_url,
        ms_graph_url=emu.graph_url,
        ms_ca_bundle=emu.ca_path,
    )
    emu.set_app_roles(emu.client_id, [r for r in APP_ROLES if r != "User.Read.All"])
    try:
        diagnosis = await diagnose(settings)
    finally:
        emu.set_app_roles(emu.client_id, list(APP_ROLES))
    failed = {c.name: c for c in diagnosis.checks if not c.ok}
    assert "User.Read.All" in failed["admin consent"].detail
    assert "User.Read.All" in (failed["admin consent"].action or "")
