"""Seed data: the default tenant, a deterministic tenant generator, and loading a seed into a Directory."""

from __future__ import annotations

import datetime as dt
import random
import struct
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .state import Account, App, Certificate, Directory, Secret, Tenant

NAMESPACE = uuid.UUID("6f1c2b1e-8f0a-4c5d-9a51-3c0d8e7b2a10")

DEFAULT_TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
DEFAULT_TENANT_DOMAIN = "contoso.onmicrosoft.com"
DEFAULT_CLIENT_ID = "3f2b8c1a-5d4e-4b7a-9c6f-1e2d3a4b5c6d"
DEFAULT_CLIENT_SECRET = "emu~Qx7.consented-app-secret-value-0001"
UNCONSENTED_CLIENT_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
UNCONSENTED_CLIENT_SECRET = "emu~Zk4.unconsented-app-secret-value-0002"
EXPIRED_CLIENT_ID = "5c4b3a29-1807-4f6e-8d5c-4b3a29180706"
EXPIRED_CLIENT_SECRET = "emu~Ex9.expired-app-secret-value-0003"
APP_ROLES = [
    "Group.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "User.Read.All",
    "Group.Create",
    "AdministrativeUnit.Read.All",
]
# Directory roles that let a principal create groups inside an administrative unit when scoped to it.
GROUPS_ADMINISTRATOR = "Groups Administrator"
USER_ADMINISTRATOR = "User Administrator"

GROUP_DEFAULT_PROPERTIES = [
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "serviceProvisioningErrors",
    "theme",
    "visibility",
    "onPremisesProvisioningErrors",
]
GROUP_EXTRA_PROPERTIES = [
    "accessType",
    "allowExternalSenders",
    "autoSubscribeNewMembers",
    "hideFromAddressLists",
    "hideFromOutlookClients",
    "isSubscribedByMail",
    "unseenConversationsCount",
    "unseenCount",
    "unseenMessagesCount",
    "organizationId",
    "isManagementRestricted",
    "members",
    "owners",
]
# What GET /directory/administrativeUnits returns by default: every v1.0 property of the type.
UNIT_DEFAULT_PROPERTIES = [
    "id",
    "deletedDateTime",
    "displayName",
    "description",
    "isMemberManagementRestricted",
    "membershipRule",
    "membershipRuleProcessingState",
    "membershipType",
    "visibility",
]
USER_DEFAULT_PROPERTIES = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
]
USER_EXTRA_PROPERTIES = [
    "accountEnabled",
    "userType",
    "proxyAddresses",
    "createdDateTime",
    "otherMails",
    "department",
    "companyName",
    "country",
    "city",
    "usageLocation",
    "mailNickname",
    "externalUserState",
    "creationType",
    "onPremisesSyncEnabled",
    "employeeId",
    "deletedDateTime",
]

FIRST_NAMES = [
    "Adele",
    "Alex",
    "Allan",
    "Bianca",
    "Brian",
    "Cameron",
    "Christie",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Grady",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Raul",
    "Sanjay",
    "Tomas",
    "Wilna",
    "Zrinka",
    "Oscar",
    "Preston",
    "Joseph",
    "Amara",
    "Kenji",
    "Sofia",
    "Mateo",
    "Aisha",
    "Lars",
    "Ingrid",
]
LAST_NAMES = [
    "Vance",
    "Wilber",
    "Deyoung",
    "Kowalski",
    "Johnson",
    "White",
    "Cline",
    "Berger",
    "Siciliani",
    "Braun",
    "Bowen",
    "Archie",
    "Gonzalez",
    "Sayers",
    "Langer",
    "Lauer",
    "Sherman",
    "Gu",
    "Holloway",
    "Robbins",
    "Bowen",
    "Garcia",
    "Wilke",
    "Fernandez",
    "Gupta",
    "Razi",
    "Mehta",
    "Navarro",
    "Ward",
    "Morales",
    "Price",
    "Okafor",
    "Tanaka",
    "Rossi",
    "Lindqvist",
    "Haugen",
    "Mensah",
    "Costa",
    "Novak",
    "Dubois",
]
DEPARTMENTS = ["Sales", "Marketing", "Engineering", "Finance", "HR", "Legal", "Operations", "Support"]
GUEST_DOMAINS = ["fabrikam.com", "gmail.com", "outlook.com", "tailspintoys.com", "northwindtraders.com"]


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def security_identifier(object_id: str) -> str:
    words = struct.unpack("<4I", uuid.UUID(object_id).bytes_le)
    return "S-1-12-1-" + "-".join(str(word) for word in words)


def _generated_user(rng: random.Random, tenant_domain: str, index: int, guest: bool) -> dict[str, Any]:
    first = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))]
    last = LAST_NAMES[rng.randrange(len(LAST_NAMES))]
    alias = f"{first}.{last}{index}".lower()
    user: dict[str, Any] = {
        "id": stable_id(tenant_domain, "user", str(index)),
        "displayName": f"{first} {last}",
        "givenName": first,
        "surname": last,
        "jobTitle": None,
        "department": DEPARTMENTS[rng.randrange(len(DEPARTMENTS))],
        "accountEnabled": True,
    }
    if guest:
        external_domain = GUEST_DOMAINS[rng.randrange(len(GUEST_DOMAINS))]
        external = f"{alias}@{external_domain}"
        user.update(
            userPrincipalName=f"{alias}_{external_domain}#EXT#@{tenant_domain}",
            mail=external,
            userType="Guest",
            proxyAddresses=[f"SMTP:{external}"],
            externalUserState="Accepted",
            creationType="Invitation",
        )
    else:
        mail = f"{alias}@{tenant_domain}"
        short = f"{first[0]}{last}{index}".lower()
        user.update(
            userPrincipalName=mail,
            mail=mail,
            userType="Member",
            # Every third member has a vanity alias, so lookups by alias need proxyAddresses/any().
            proxyAddresses=[f"SMTP:{mail}"] + ([f"smtp:{short}@{tenant_domain}"] if index % 3 == 0 else []),
            jobTitle=rng.choice(["Engineer", "Manager", "Analyst", "Director", "Consultant", None]),
        )
    return user


def generate_users(tenant_domain: str, count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(f"{tenant_domain}:{seed}")
    # About one in ten generated users is a guest, as in a typical collaborating tenant.
    return [_generated_user(rng, tenant_domain, index, guest=index % 10 == 9) for index in range(count)]


def generate_groups(
    tenant_domain: str, users: list[dict[str, Any]], count: int, seed: int = 7
) -> list[dict[str, Any]]:
    rng = random.Random(f"{tenant_domain}:groups:{seed}")
    member_ids = [user["id"] for user in users if user.get("userType") != "Guest"]
    all_ids = [user["id"] for user in users]
    groups: list[dict[str, Any]] = []
    for index in range(count):
        topic = rng.choice(DEPARTMENTS)
        unified = index % 4 != 3
        nickname = f"{topic.lower()}-team-{index}"
        size = min(len(all_ids), int(rng.paretovariate(1.2) * 5))
        members = rng.sample(
            all_ids if unified else member_ids, min(size, len(all_ids if unified else member_ids))
        )
        owners = rng.sample(member_ids, min(2, len(member_ids))) if member_ids else []
        groups.append(
            {
                "id": stable_id(tenant_domain, "group", str(index)),
                "displayName": f"{topic} Team {index}",
                "description": f"Generated {topic.lower()} group {index}",
                "groupTypes": ["Unified"] if unified else [],
                "mailEnabled": unified,
                "securityEnabled": not unified,
                "mailNickname": nickname,
                "visibility": "Private" if unified else None,
                "members": members,
                "owners": owners,
            }
        )
    return groups


def size_for(user_count: int) -> str:
    if user_count < 50:
        return "S"
    return "M" if user_count <= 500 else "L"


def default_apps(expired_secret: bool = True) -> list[dict[str, Any]]:
    apps = [
        {
            "clientId": DEFAULT_CLIENT_ID,
            "displayName": "Equa Microsoft 365 sync",
            "secrets": [{"value": DEFAULT_CLIENT_SECRET, "expires": "2099-12-31T00:00:00Z"}],
            "roles": list(APP_ROLES),
            "requestedRoles": list(APP_ROLES),
        },
        {
            "clientId": UNCONSENTED_CLIENT_ID,
            "displayName": "Equa (awaiting admin consent)",
            "secrets": [{"value": UNCONSENTED_CLIENT_SECRET, "expires": "2099-12-31T00:00:00Z"}],
            "roles": [],
            "requestedRoles": list(APP_ROLES),
        },
    ]
    if expired_secret:
        apps.append(
            {
                "clientId": EXPIRED_CLIENT_ID,
                "displayName": "Equa (expired secret)",
                "secrets": [{"value": EXPIRED_CLIENT_SECRET, "expires": "2020-01-01T00:00:00Z"}],
                "roles": list(APP_ROLES),
                "requestedRoles": list(APP_ROLES),
            }
        )
    return apps


def default_seed() -> dict[str, Any]:
    """One small tenant holding every kind of group the integration meets. Ids are stable across runs."""
    domain = DEFAULT_TENANT_DOMAIN
    users = generate_users(domain, 40)
    ids = [user["id"] for user in users]
    members = [user["id"] for user in users if user["userType"] == "Member"]
    guests = [user["id"] for user in users if user["userType"] == "Guest"]

    def group(key: str, **props: Any) -> dict[str, Any]:
        return {"id": stable_id(domain, "seed-group", key), **props}

    groups = [
        group(
            "all-company",
            displayName="All Company",
            description="Everyone in the company",
            groupTypes=["Unified"],
            mailEnabled=True,
            securityEnabled=False,
            mailNickname="allcompany",
            visibility="Public",
            members=ids[:30],
            owners=members[:1],
        ),
        group(
            "engineering",
            displayName="Engineering",
            description="Engineering team",
            groupTypes=["Unified"],
            mailEnabled=True,
            securityEnabled=True,
            mailNickname="engineering",
            visibility="Private",
            members=members[:12] + guests[:1],
            owners=members[:2],
        ),
        group(
            "marketing",
            displayName="Marketing",
            description="Marketing team",
            groupTypes=["Unified"],
            mailEnabled=True,
            securityEnabled=False,
            mailNickname="marketing",
            visibility="Private",
            members=members[12:20],
            owners=members[12:13],
        ),
        group(
            "empty-team",
            displayName="Project Falcon",
            description="New project, no members yet",
            groupTypes=["Unified"],
            mailEnabled=True,
            securityEnabled=True,
            mailNickname="project-falcon",
            visibility="Private",
            members=[],
            owners=members[:1],
        ),
        group(
            "security",
            displayName="VPN Users",
            description="Security group for VPN access",
            groupTypes=[],
            mailEnabled=False,
            securityEnabled=True,
            mailNickname="vpn-users",
            members=members[5:15],
            owners=[],
        ),
        group(
            "dynamic",
            displayName="All Sales (dynamic)",
            description="Dynamic membership",
            groupTypes=["DynamicMembership"],
            mailEnabled=False,
            securityEnabled=True,
            mailNickname="all-sales-dynamic",
            membershipRule='(user.department -eq "Sales")',
            membershipRuleProcessingState="On",
            members=[u["id"] for u in users if u.get("department") == "Sales"],
            owners=[],
        ),
        group(
            "mail-security",
            displayName="Finance Approvers",
            description="Mail-enabled security group",
            groupTypes=[],
            mailEnabled=True,
            securityEnabled=True,
            mailNickname="finance-approvers",
            members=members[20:24],
            owners=[],
        ),
        group(
            "distribution",
            displayName="Newsletter",
            description="Distribution list",
            groupTypes=[],
            mailEnabled=True,
            securityEnabled=False,
            mailNickname="newsletter",
            members=members[24:30],
            owners=[],
        ),
        group(
            "on-prem",
            displayName="Legacy File Share",
            description="Synced from on-premises AD",
            groupTypes=[],
            mailEnabled=False,
            securityEnabled=True,
            mailNickname="legacy-file-share",
            onPremisesSyncEnabled=True,
            onPremisesSamAccountName="LegacyFileShare",
            onPremisesDomainName="corp.contoso.com",
            onPremisesNetBiosName="CORP",
            onPremisesLastSyncDateTime="2024-05-01T08:00:00Z",
            members=members[:6],
            owners=[],
        ),
        group(
            "leadership-council",
            displayName="Leadership Council",
            description="Hidden membership: only members and owners see who belongs",
            groupTypes=["Unified"],
            mailEnabled=True,
            securityEnabled=False,
            mailNickname="leadership-council",
            visibility="HiddenMembership",
            members=members[:4],
            owners=members[:1],
        ),
        group(
            "role-assignable",
            displayName="Helpdesk Administrators",
            description="Role-assignable group",
            groupTypes=["Unified"],
            mailEnabled=True,
            securityEnabled=True,
            mailNickname="helpdesk-admins",
            visibility="Private",
            isAssignableToRole=True,
            members=members[:3],
            owners=members[:1],
        ),
    ]
    group_ids = {g["displayName"]: g["id"] for g in groups}
    units = [
        {
            "id": stable_id(domain, "seed-unit", "equa-managed-groups"),
            "displayName": "Equa managed groups",
            "description": "Groups the Equa integration may link and manage",
            "members": [
                group_ids[name]
                for name in ("Engineering", "Marketing", "Project Falcon", "Leadership Council")
            ],
            # Creating a group inside a unit takes a directory role scoped to it, besides the permissions.
            "scopedRoleMembers": [{"clientId": DEFAULT_CLIENT_ID, "roles": [GROUPS_ADMINISTRATOR]}],
        },
        {
            "id": stable_id(domain, "seed-unit", "network-access"),
            "displayName": "Network access",
            "description": "Security groups that grant network access",
            "members": [group_ids["VPN Users"]],
        },
    ]
    return {
        "tenants": [
            {
                "id": DEFAULT_TENANT_ID,
                "domain": domain,
                "displayName": "Contoso",
                "size": "S",
                "apps": default_apps(),
                "users": users,
                "groups": groups,
                "administrativeUnits": units,
            }
        ]
    }


def generated_seed(users: int, groups: int, seed: int = 7) -> dict[str, Any]:
    """A realistic tenant of the given size, identical on every run for the same arguments."""
    domain = DEFAULT_TENANT_DOMAIN
    user_list = generate_users(domain, users, seed)
    return {
        "tenants": [
            {
                "id": DEFAULT_TENANT_ID,
                "domain": domain,
                "displayName": "Contoso",
                "size": size_for(users),
                "apps": default_apps(),
                "users": user_list,
                "groups": generate_groups(domain, user_list, groups, seed),
            }
        ]
    }


# ---- completing Graph objects ------------------------------------------------------------------


def complete_user(user: dict[str, Any], tenant_domain: str) -> dict[str, Any]:
    out = dict(user)
    out.setdefault("id", str(uuid.uuid4()))
    upn = out.get("userPrincipalName") or f"{out.get('mailNickname') or out['id'][:8]}@{tenant_domain}"
    out["userPrincipalName"] = upn
    for name in USER_DEFAULT_PROPERTIES:
        out.setdefault(name, [] if name == "businessPhones" else None)
    out.setdefault("userType", "Guest" if "#EXT#" in upn else "Member")
    out.setdefault("accountEnabled", True)
    out.setdefault("proxyAddresses", [f"SMTP:{out['mail']}"] if out.get("mail") else [])
    out.setdefault("createdDateTime", "2024-01-15T09:00:00Z")
    out.setdefault("mailNickname", upn.split("@", 1)[0])
    for name in USER_EXTRA_PROPERTIES:
        out.setdefault(name, None)
    return out


def complete_group(group: dict[str, Any], tenant_domain: str, created: str | None = None) -> dict[str, Any]:
    out = {k: v for k, v in group.items() if k not in ("members", "owners")}
    out.setdefault("id", str(uuid.uuid4()))
    created = created or "2024-02-01T10:00:00Z"
    mail_enabled = bool(out.get("mailEnabled"))
    nickname = out.get("mailNickname")
    defaults: dict[str, Any] = {
        "deletedDateTime": None,
        "classification": None,
        "createdDateTime": created,
        "description": None,
        "expirationDateTime": None,
        "groupTypes": [],
        "isAssignableToRole": None,
        "mail": f"{nickname}@{tenant_domain}" if mail_enabled and nickname else None,
        "membershipRule": None,
        "membershipRuleProcessingState": None,
        "onPremisesDomainName": None,
        "onPremisesLastSyncDateTime": None,
        "onPremisesNetBiosName": None,
        "onPremisesSamAccountName": None,
        "onPremisesSecurityIdentifier": None,
        "onPremisesSyncEnabled": None,
        "preferredDataLocation": None,
        "preferredLanguage": None,
        "renewedDateTime": created,
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "securityIdentifier": security_identifier(out["id"]),
        "serviceProvisioningErrors": [],
        "theme": None,
        "visibility": None,
        "onPremisesProvisioningErrors": [],
    }
    for name, value in defaults.items():
        out.setdefault(name, value)
    out.setdefault("proxyAddresses", [f"SMTP:{out['mail']}"] if out.get("mail") else [])
    if "Unified" in out["groupTypes"] and out["visibility"] is None:
        out["visibility"] = "Public"
    for name in GROUP_DEFAULT_PROPERTIES + GROUP_EXTRA_PROPERTIES:
        if name not in ("members", "owners"):
            out.setdefault(name, None)
    return out


def complete_unit(unit: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in unit.items() if k not in ("members", "scopedRoleMembers")}
    out.setdefault("id", str(uuid.uuid4()))
    out.setdefault("membershipType", "Assigned")
    for name in UNIT_DEFAULT_PROPERTIES:
        out.setdefault(name, None)
    return out


def load_unit_roles(tenant: Tenant, unit_id: str, entries: list[dict[str, Any]]) -> None:
    """Seeded scopedRoleMembers: each names an app (`clientId`) and the roles it holds scoped to the unit."""
    for entry in entries:
        tenant.set_unit_roles(unit_id, str(entry["clientId"]), list(entry.get("roles", [])))


# ---- loading -----------------------------------------------------------------------------------


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _certificate(entry: dict[str, Any]) -> Certificate:
    pem = entry.get("pem") or entry.get("certificate")
    if pem:
        cert = x509.load_pem_x509_certificate(pem.encode())
        thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t is SHA-1 by definition
        return Certificate(thumbprint, cert.public_key(), cert.fingerprint(hashes.SHA256()).hex().upper())
    return Certificate(str(entry["thumbprint"]).replace(":", "").upper())


def load_app(entry: dict[str, Any], tenant_id: str) -> App:
    client_id = entry.get("clientId") or str(uuid.uuid4())
    return App(
        client_id=client_id,
        display_name=entry.get("displayName", "Application"),
        secrets=[Secret(s["value"], _parse_time(s.get("expires"))) for s in entry.get("secrets", [])],
        certificates=[_certificate(c) for c in entry.get("certificates", [])],
        roles=set(entry.get("roles", [])),
        requested_roles=set(entry.get("requestedRoles", entry.get("roles", []))),
        service_principal_id=entry.get("servicePrincipalId") or stable_id(tenant_id, "sp", client_id),
        home_tenant_id=tenant_id,
        multi_tenant=entry.get("signInAudience") in MULTI_TENANT_AUDIENCES,
        redirect_uris=[str(uri) for uri in entry.get("redirectUris", [])],
    )


MULTI_TENANT_AUDIENCES = {"AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount"}


def service_principal(registration: App, tenant_id: str, roles: set[str] | None = None) -> App:
    """The app's service principal in a tenant: the registration's credentials, the roles consented there."""
    return App(
        client_id=registration.client_id,
        display_name=registration.display_name,
        secrets=registration.secrets,  # the same lists: a credential belongs to the registration
        certificates=registration.certificates,
        roles=set(registration.requested_roles if roles is None else roles),
        requested_roles=registration.requested_roles,
        service_principal_id=stable_id(tenant_id, "sp", registration.client_id),
        home_tenant_id=registration.home_tenant_id,
        multi_tenant=registration.multi_tenant,
        redirect_uris=registration.redirect_uris,
    )


def load_account(tenant: Tenant, entry: dict[str, Any]) -> Account:
    """A sign-in account; its user is created in the tenant when the seed does not hold it already."""
    upn = str(entry["userPrincipalName"])
    user = tenant.find_user(upn)
    if user is None:
        alias = upn.split("@", 1)[0]
        user = complete_user(
            {
                "id": entry.get("id") or stable_id(tenant.domain, "account", upn.lower()),
                "userPrincipalName": upn,
                "mail": upn,
                "displayName": entry.get("displayName") or alias.replace(".", " ").title(),
                "jobTitle": "Administrator" if entry.get("admin") else None,
            },
            tenant.domain,
        )
        tenant.put_user(user)
    account = Account(user["id"], user["userPrincipalName"], str(entry["password"]), bool(entry.get("admin")))
    tenant.accounts[upn.lower()] = account
    return account


def load_tenant(entry: dict[str, Any]) -> Tenant:
    """One seed tenant: its apps (registered there), users, groups, units and sign-in accounts."""
    tenant_id = (entry.get("id") or str(uuid.uuid4())).lower()
    domain = entry.get("domain") or f"tenant{tenant_id[:8]}.onmicrosoft.com"
    users = [complete_user(u, domain) for u in entry.get("users", [])]
    tenant = Tenant(
        id=tenant_id,
        domain=domain,
        size=entry.get("size") or size_for(len(users)),
        display_name=entry.get("displayName", domain.split(".")[0].title()),
        allow_guests_in_groups=entry.get("allowGuestsInGroups", True),
        verified_domains=[str(d) for d in entry.get("verifiedDomains", [])],
    )
    for app_entry in entry.get("apps", []):
        app = load_app(app_entry, tenant_id)
        tenant.apps[app.client_id] = app
    for user in users:
        tenant.put_user(user)
    for raw in entry.get("groups", []):
        group = complete_group(raw, domain)
        tenant.put_group(group, record=False)
        for member_id in raw.get("members", []):
            tenant.members[group["id"]].add(member_id)
        for owner_id in raw.get("owners", []):
            tenant.owners[group["id"]].add(owner_id)
    for raw in entry.get("administrativeUnits", []):
        unit = complete_unit(raw)
        tenant.put_unit(unit)
        for member_id in raw.get("members", []):
            tenant.unit_members[unit["id"]].add(member_id)
        load_unit_roles(tenant, unit["id"], raw.get("scopedRoleMembers", []))
    for raw in entry.get("accounts", []):
        load_account(tenant, raw)
    return tenant


def add_service_principals(directory: Directory, tenant: Tenant, entries: list[dict[str, Any]]) -> None:
    """Service principals of apps registered in another tenant (admin consent already given in this one)."""
    for raw in entries:
        registration = directory.registrations.get(raw["clientId"])
        if registration is None:
            raise ValueError(f"service principal of unknown app {raw['clientId']}")
        roles = set(raw["roles"]) if raw.get("roles") is not None else None
        tenant.apps[registration.client_id] = service_principal(registration, tenant.id, roles)


def load_seed(seed: dict[str, Any]) -> Directory:
    directory = Directory()
    loaded: list[tuple[dict[str, Any], Tenant]] = []
    for entry in seed.get("tenants", []):
        tenant = load_tenant(entry)
        directory.add(tenant)
        loaded.append((entry, tenant))
    for entry, tenant in loaded:
        add_service_principals(directory, tenant, entry.get("servicePrincipals", []))
    return directory


# ---- several tenants: a multi-tenant app and the customers who consent to it ----------------------

PUBLISHER_TENANT_ID = "0b4c1f2e-6a7d-4e8f-9a0b-1c2d3e4f5a6b"
PUBLISHER_TENANT_DOMAIN = "equadev.onmicrosoft.com"
FABRIKAM_TENANT_ID = "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d"
FABRIKAM_TENANT_DOMAIN = "fabrikam.onmicrosoft.com"
# What the multi-tenant app asks for: the single-tenant roles, and reading the tenant's name and domains.
MULTI_TENANT_APP_ROLES = [*APP_ROLES, "Organization.Read.All"]
# Sign-in accounts of the demo tenants: (sign-in name, password), shown by the demo so a person can consent.
DEMO_ADMINS = {
    PUBLISHER_TENANT_ID: ("admin@equadev.onmicrosoft.com", "Equa-Admin-2026!"),
    DEFAULT_TENANT_ID: ("admin@contoso.onmicrosoft.com", "Contoso-Admin-2026!"),
    FABRIKAM_TENANT_ID: ("admin@fabrikam.onmicrosoft.com", "Fabrikam-Admin-2026!"),
}
DEMO_USER_PASSWORD = "Member-User-2026!"  # the password of each demo tenant's one non-administrator account


def multi_tenant_app(redirect_uris: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The Equa app registered as multi-tenant (any organization's admin may consent), with its secret."""
    return {
        "clientId": DEFAULT_CLIENT_ID,
        "displayName": "Equa Microsoft 365 sync",
        "signInAudience": "AzureADMultipleOrgs",
        "secrets": [{"value": DEFAULT_CLIENT_SECRET, "expires": "2099-12-31T00:00:00Z"}],
        "roles": list(MULTI_TENANT_APP_ROLES),
        "requestedRoles": list(MULTI_TENANT_APP_ROLES),
        "redirectUris": list(redirect_uris),
    }


def _accounts(tenant_id: str, member_upn: str) -> list[dict[str, Any]]:
    admin, password = DEMO_ADMINS[tenant_id]
    return [
        {
            "userPrincipalName": admin,
            "password": password,
            "admin": True,
            "displayName": "Tenant Administrator",
        },
        {"userPrincipalName": member_upn, "password": DEMO_USER_PASSWORD, "admin": False},
    ]


def _fabrikam() -> dict[str, Any]:
    domain = FABRIKAM_TENANT_DOMAIN
    users = generate_users(domain, 24)
    members = [user["id"] for user in users if user["userType"] == "Member"]

    def group(key: str, name: str, nickname: str, member_ids: list[str], owners: list[str]) -> dict[str, Any]:
        return {
            "id": stable_id(domain, "seed-group", key),
            "displayName": name,
            "description": f"{name} (Fabrikam)",
            "groupTypes": ["Unified"],
            "mailEnabled": True,
            "securityEnabled": False,
            "mailNickname": nickname,
            "visibility": "Private",
            "members": member_ids,
            "owners": owners,
        }

    return {
        "id": FABRIKAM_TENANT_ID,
        "domain": domain,
        "verifiedDomains": ["fabrikam.com"],
        "displayName": "Fabrikam",
        "size": "S",
        "apps": [],
        "users": users,
        "groups": [
            group("research", "Fabrikam Research", "research", members[:10], members[:1]),
            group("sales", "Fabrikam Sales", "sales", members[10:16], members[10:11]),
            group("launch", "Product Launch", "product-launch", [], members[:1]),
        ],
        "accounts": _accounts(FABRIKAM_TENANT_ID, users[0]["userPrincipalName"]),
    }


def multi_tenant_seed(
    redirect_uris: list[str] | tuple[str, ...] = (), *, contoso_consented: bool = True
) -> dict[str, Any]:
    """The multi-tenant demo: the publisher's tenant, where the app is registered, and two customer tenants.

    - Equa (`PUBLISHER_TENANT_ID`, first, so `RunningEmulator.client_id`/`client_secret` are the app's);
    - Contoso (`DEFAULT_TENANT_ID`): the default tenant's users, groups and units; the app is consented there
      (unless `contoso_consented` is false);
    - Fabrikam (`FABRIKAM_TENANT_ID`): 24 users and three Microsoft 365 groups; the app is not consented there.

    Each tenant has an administrator (`DEMO_ADMINS`) and one member account (`DEMO_USER_PASSWORD`) for the
    consent page. `redirect_uris` registers the app's redirect URIs (empty: any redirect is accepted).
    """
    contoso = default_seed()["tenants"][0]
    contoso.update(
        apps=[],
        verifiedDomains=["contoso.com"],
        accounts=_accounts(DEFAULT_TENANT_ID, contoso["users"][0]["userPrincipalName"]),
        servicePrincipals=[{"clientId": DEFAULT_CLIENT_ID}] if contoso_consented else [],
    )
    publisher_users = generate_users(PUBLISHER_TENANT_DOMAIN, 5)
    publisher = {
        "id": PUBLISHER_TENANT_ID,
        "domain": PUBLISHER_TENANT_DOMAIN,
        "displayName": "Equa",
        "size": "S",
        "apps": [multi_tenant_app(redirect_uris)],
        "users": publisher_users,
        "groups": [],
        "accounts": _accounts(PUBLISHER_TENANT_ID, publisher_users[0]["userPrincipalName"]),
    }
    return {"tenants": [publisher, contoso, _fabrikam()]}
