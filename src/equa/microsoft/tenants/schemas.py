"""Request and response bodies of multi-tenant mode's API."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from equa.accounts.schemas import CamelModel
from equa.microsoft.tenants.routing import TenantView


class ConnectOut(CamelModel):
    consent_url: str = Field(
        description="The admin consent page to open in a browser (valid once, for 15 minutes)."
    )


class ConnectionOut(CamelModel):
    connection: Literal["connected", "not_connected", "consent_revoked"]
    tenant_id: str | None
    tenant_name: str | None
    tenant_domain: str | None
    action: str | None

    @classmethod
    def of(cls, view: TenantView) -> ConnectionOut:
        return cls(
            connection=view.connection.value,
            tenant_id=view.tenant_id,
            tenant_name=view.tenant_name,
            tenant_domain=view.tenant_domain,
            action=view.action,
        )
