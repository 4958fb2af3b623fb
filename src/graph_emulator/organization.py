"""Graph /organization: the tenant's own directory object (name, verified domains, tenant type)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import bad_request, not_found
from .listing import entity
from .odata import context_suffix, parse_options, project
from .router import GraphRequest, GraphResponse, route
from .state import Tenant
from .v1_properties import ORGANIZATION_V1

if TYPE_CHECKING:
    from .runtime import Emulator

READ_ORGANIZATION = frozenset(
    {"Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
ORGANIZATION_DEFAULT = [
    "id",
    "deletedDateTime",
    "businessPhones",
    "city",
    "country",
    "countryLetterCode",
    "createdDateTime",
    "displayName",
    "marketingNotificationEmails",
    "onPremisesLastSyncDateTime",
    "onPremisesSyncEnabled",
    "postalCode",
    "preferredLanguage",
    "securityComplianceNotificationMails",
    "securityComplianceNotificationPhones",
    "state",
    "street",
    "technicalNotificationMails",
    "tenantType",
    "assignedPlans",
    "provisionedPlans",
    "verifiedDomains",
]


def organization_of(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "deletedDateTime": None,
        "businessPhones": [],
        "city": None,
        "country": None,
        "countryLetterCode": "US",
        "createdDateTime": "2024-01-01T00:00:00Z",
        "displayName": tenant.display_name,
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": None,
        "onPremisesSyncEnabled": None,
        "postalCode": None,
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": None,
        "street": None,
        "technicalNotificationMails": [],
        "tenantType": "AAD",
        "assignedPlans": [],
        "provisionedPlans": [],
        "verifiedDomains": [
            {
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": True,
                "isInitial": True,
                "name": tenant.domain,
                "type": "Managed",
            },
            *(
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": False,
                    "isInitial": False,
                    "name": domain,
                    "type": "Managed",
                }
                for domain in tenant.verified_domains
            ),
        ],
    }


@route("GET", "/organization", "read")
def list_organization(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_ORGANIZATION)
    opts = parse_options(
        req.query, req.headers, allowed=set(ORGANIZATION_V1), type_name="microsoft.graph.organization"
    )
    body = {
        "@odata.context": f"{req.graph_base}/$metadata#{context_suffix('organization', opts.select)}",
        "value": [project(organization_of(req.tenant), opts.select, ORGANIZATION_DEFAULT)],
    }
    return GraphResponse(200, body)


@route("GET", "/organization/{id}", "read")
def get_organization(req: GraphRequest, emu: Emulator, params: dict[str, str]) -> GraphResponse:
    req.require(READ_ORGANIZATION)
    opts = parse_options(
        req.query, req.headers, allowed=set(ORGANIZATION_V1), type_name="microsoft.graph.organization"
    )
    if params["id"] != req.tenant.id:
        if len(params["id"]) != len(req.tenant.id):
            raise bad_request(f"Invalid object identifier '{params['id']}'.")
        raise not_found(params["id"])
    context = context_suffix("organization", opts.select) + "/$entity"
    return entity(req, context, project(organization_of(req.tenant), opts.select, ORGANIZATION_DEFAULT))
