"""What multi-tenant mode answers when an organization's tenant cannot be used, and the consent failures' words."""

from __future__ import annotations

from dataclasses import dataclass

from equa.errors import AppError
from equa.microsoft.tenants.models import ConnectionState

CONNECT_ACTION = (
    "An administrator of this organization connects its Microsoft 365 tenant: Connect Microsoft 365 in the "
    "organization's settings (POST .../microsoft/connect), then a tenant administrator signs in and accepts."
)
RECONNECT_ACTION = (
    "The tenant no longer lets Equa in (its admin consent was revoked or the app was removed). An administrator "
    "of this organization reconnects: Reconnect in the organization's Microsoft 365 settings "
    "(POST .../microsoft/connect), then a tenant administrator signs in and accepts again."
)
DISCONNECT_ACTION = "Connect Microsoft 365 again whenever the organization wants it back."


def action_for(state: ConnectionState) -> str | None:
    """The action each connection state comes with (connected: none needed)."""
    if state is ConnectionState.NOT_CONNECTED:
        return CONNECT_ACTION
    if state is ConnectionState.CONSENT_REVOKED:
        return RECONNECT_ACTION
    return None


def not_connected() -> AppError:
    return AppError(
        409,
        "microsoft_not_connected",
        "This organization has not connected a Microsoft 365 tenant yet.",
        CONNECT_ACTION,
        extra={"connection": ConnectionState.NOT_CONNECTED.value},
    )


def consent_revoked(tenant_name: str | None) -> AppError:
    where = (
        f"The Microsoft 365 tenant {tenant_name}"
        if tenant_name
        else "The organization's Microsoft 365 tenant"
    )
    return AppError(
        409,
        "microsoft_consent_revoked",
        f"{where} no longer accepts Equa: its admin consent was revoked.",
        RECONNECT_ACTION,
        extra={"connection": ConnectionState.CONSENT_REVOKED.value},
    )


def not_multi_tenant() -> AppError:
    return AppError(
        409,
        "microsoft_single_tenant",
        "This Equa service is connected to one Microsoft 365 tenant for every organization; there is nothing to "
        "connect or disconnect per organization.",
        "An operator turns multi-tenant mode on with MS_AUTH_TENANT_ID=organizations (docs/entra-app-"
        "registration.md).",
    )


def already_connected(tenant_name: str | None) -> AppError:
    return AppError(
        409,
        "microsoft_already_connected",
        f"This organization is already connected to {tenant_name or 'a Microsoft 365 tenant'}.",
        "Disconnect it first (DELETE .../microsoft/connection) to connect another tenant.",
    )


@dataclass(frozen=True)
class ConsentFailure:
    """A consent round trip that came back without a connection: a fixed code, its words and what to do."""

    code: str
    message: str
    action: str


_START_AGAIN = "Start again with Connect Microsoft 365 on this page."

CONSENT_FAILURES: dict[str, ConsentFailure] = {
    failure.code: failure
    for failure in (
        ConsentFailure(
            "consent_declined",
            "Microsoft 365 was not connected: the consent was cancelled or declined.",
            "Connect again, sign in as an administrator of the Microsoft 365 tenant (Global Administrator, "
            "Application Administrator or Cloud Application Administrator) and choose Accept.",
        ),
        ConsentFailure(
            "state_missing",
            "Microsoft 365 was not connected: the answer from Microsoft carried no state, so it cannot be trusted.",
            _START_AGAIN,
        ),
        ConsentFailure(
            "state_invalid",
            "Microsoft 365 was not connected: the answer's state was not issued by this service or was altered.",
            _START_AGAIN,
        ),
        ConsentFailure(
            "state_expired",
            "Microsoft 365 was not connected: the consent took longer than the 15 minutes it is valid for.",
            _START_AGAIN,
        ),
        ConsentFailure(
            "state_used",
            "Microsoft 365 was not connected: this consent answer was already used once.",
            _START_AGAIN,
        ),
        ConsentFailure(
            "state_other_org",
            "Microsoft 365 was not connected: this consent was started for another organization.",
            "Start again from the settings page of the organization you want to connect.",
        ),
        ConsentFailure(
            "state_other_admin",
            "Microsoft 365 was not connected: this consent was started by another administrator.",
            "Sign in as the administrator who started it, or start again with Connect Microsoft 365.",
        ),
        ConsentFailure(
            "not_admin",
            "Microsoft 365 was not connected: you are no longer an administrator of this organization.",
            "Ask an administrator of the organization to connect it.",
        ),
        ConsentFailure(
            "tenant_missing",
            "Microsoft 365 was not connected: the answer from Microsoft named no tenant.",
            _START_AGAIN,
        ),
        ConsentFailure(
            "tenant_refused",
            "Microsoft 365 was not connected: after the consent, the tenant still refused Equa's sign-in or its "
            "permissions.",
            "Wait a minute (a new consent takes a moment to reach every Microsoft server), then Connect again; "
            "if it persists, check in the Entra admin center (Enterprise applications) that the app is enabled "
            "and its permissions are granted.",
        ),
        ConsentFailure(
            "tenant_unavailable",
            "Microsoft 365 was not connected: Microsoft could not be reached to check the tenant.",
            "Try again in a few minutes.",
        ),
        ConsentFailure(
            "already_connected",
            "Microsoft 365 was not connected: this organization is connected to a tenant already.",
            "Disconnect it first to connect another tenant.",
        ),
    )
}
