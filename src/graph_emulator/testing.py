"""Starting the emulator from tests and driving it through its /_emulator controls."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx

from . import seeds
from .runtime import DEFAULT_LAG_SECONDS, Emulator
from .server import EmulatorServer
from .testing_fleet import FleetHelpers
from .testing_tenants import TenantHelpers


class EmulatorControl:
    """Client of the /_emulator control API; works for an emulator in this or another process."""

    def __init__(self, base_url: str, ca_path: Path | str, tenant: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        context = ssl.create_default_context(cafile=str(ca_path))
        self._http = httpx.Client(
            base_url=f"{self.base_url}/_emulator", verify=context, trust_env=False, timeout=30.0
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        query = dict(params or {})
        if self.tenant and "tenant" not in query:
            query["tenant"] = self.tenant
        response = self._http.request(method, path, json=json, params=query)
        if response.status_code >= 400:
            raise RuntimeError(
                f"emulator control {method} {path} failed: {response.status_code} {response.text}"
            )
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")  # type: ignore[no-any-return]

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/info")  # type: ignore[no-any-return]

    def reset(self, seed: dict[str, Any] | None = None) -> None:
        self._call("POST", "/reset", {"seed": seed})

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self._call("PUT", "/faults", faults)  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")  # type: ignore[no-any-return]

    def set_batch_item_faults(self, *rules: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", "/batch-item-faults", {"rules": list(rules)})  # type: ignore[no-any-return]

    def batch_item_faults(self) -> dict[str, Any]:
        return self._call("GET", "/batch-item-faults")  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        self._call("DELETE", "/stats")

    def add_user(self, **graph_user: Any) -> dict[str, Any]:
        return self._call("POST", "/users", graph_user)  # type: ignore[no-any-return]

    def add_group(
        self,
        members: list[str] | tuple[str, ...] = (),
        owners: list[str] | tuple[str, ...] = (),
        **graph_group: Any,
    ) -> dict[str, Any]:
        body = {**graph_group, "members": list(members), "owners": list(owners)}
        return self._call("POST", "/groups", body)  # type: ignore[no-any-return]

    def add_members(self, group_id: str, user_ids: list[str]) -> None:
        self._call("POST", f"/groups/{group_id}/members", {"ids": list(user_ids)})

    def group_members(self, group_id: str) -> list[str]:
        return self._call("GET", f"/groups/{group_id}/members")["ids"]  # type: ignore[no-any-return]

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        response = self._http.get(
            f"/groups/{group_id}", params={"tenant": self.tenant} if self.tenant else None
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def find_groups(self, **props: Any) -> list[dict[str, Any]]:
        params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in props.items()}
        return self._call("GET", "/groups", params=params)["value"]  # type: ignore[no-any-return]

    def delete_group_behind_app(self, group_id: str, tenant: str | None = None) -> None:
        self._call("DELETE", f"/groups/{group_id}", params={"tenant": tenant} if tenant else None)

    def deleted_items(self) -> list[dict[str, Any]]:
        return self._call("GET", "/deleted-items")["value"]  # type: ignore[no-any-return]

    def age_deleted_item(self, group_id: str, days: float) -> None:
        self._call("PUT", f"/deleted-items/{group_id}", {"age_days": days})

    def administrative_units(self) -> list[dict[str, Any]]:
        return self._call("GET", "/administrative-units")["value"]  # type: ignore[no-any-return]

    def add_administrative_unit(
        self, members: list[str] | tuple[str, ...] = (), **graph_unit: Any
    ) -> dict[str, Any]:
        body = {**graph_unit, "members": list(members)}
        return self._call("POST", "/administrative-units", body)  # type: ignore[no-any-return]

    def add_unit_members(self, unit_id: str, object_ids: list[str]) -> None:
        self._call("POST", f"/administrative-units/{unit_id}/members", {"ids": list(object_ids)})

    def remove_unit_members(self, unit_id: str, object_ids: list[str]) -> None:
        self._call("DELETE", f"/administrative-units/{unit_id}/members", {"ids": list(object_ids)})

    def unit_members(self, unit_id: str) -> list[str]:
        return self._call("GET", f"/administrative-units/{unit_id}/members")["ids"]  # type: ignore[no-any-return]

    def set_unit_roles(self, unit_id: str, client_id: str, roles: list[str]) -> dict[str, list[str]]:
        body = {"clientId": client_id, "roles": list(roles)}
        return self._call("PUT", f"/administrative-units/{unit_id}/roles", body)  # type: ignore[no-any-return]

    def revoke_tokens(self) -> None:
        self._call("POST", "/revoke-tokens")

    def set_app_roles(self, client_id: str, roles: list[str], tenant: str | None = None) -> None:
        """The roles the app's service principal holds (in `tenant`, else the emulator's default tenant)."""
        params = {"tenant": tenant} if tenant else None
        self._call("PUT", f"/apps/{client_id}/roles", {"roles": list(roles)}, params)

    def set_tenant_policy(
        self, *, allow_guests_in_groups: bool | None = None, decline_consent: bool | None = None
    ) -> None:
        self._call(
            "PUT",
            "/tenant-policy",
            {"allow_guests_in_groups": allow_guests_in_groups, "decline_consent": decline_consent},
        )

    def replicate_now(self) -> None:
        self._call("POST", "/replicate-now")

    def set_lag(self, lag_seconds: float) -> dict[str, Any]:
        return self._call("PUT", "/consistency", {"lag_seconds": lag_seconds})  # type: ignore[no-any-return]

    def consistency(self) -> dict[str, Any]:
        return self._call("GET", "/consistency")  # type: ignore[no-any-return]

    # ---- tenants and consent -----------------------------------------------------------------------

    def tenants(self) -> list[dict[str, Any]]:
        return self._call("GET", "/tenants")["value"]  # type: ignore[no-any-return]

    def create_tenant(self, **spec: Any) -> dict[str, Any]:
        return self._call("POST", "/tenants", spec)  # type: ignore[no-any-return]

    def consent_state(self, tenant: str) -> list[dict[str, Any]]:
        return self._call("GET", "/consent", params={"tenant": tenant})["value"]  # type: ignore[no-any-return]

    def grant_consent(self, tenant: str, client_id: str | None = None) -> list[dict[str, Any]]:
        body = {"clientId": client_id} if client_id else {}
        return self._call("POST", "/consent/grant", body, {"tenant": tenant})["value"]  # type: ignore[no-any-return]

    def revoke_consent(
        self, tenant: str, client_id: str | None = None, mode: str = "service_principal"
    ) -> bool:
        body: dict[str, Any] = {"mode": mode, **({"clientId": client_id} if client_id else {})}
        return bool(self._call("POST", "/consent/revoke", body, {"tenant": tenant})["revoked"])

    def fleet(self) -> dict[str, Any]:
        return self._call("GET", "/fleet")  # type: ignore[no-any-return]

    def delta_tokens(self) -> dict[str, Any]:
        return self._call("GET", "/delta")  # type: ignore[no-any-return]

    def set_delta_lifetime(self, seconds: float) -> dict[str, Any]:
        return self._call("PUT", "/delta", {"lifetime_seconds": seconds})  # type: ignore[no-any-return]

    def expire_delta_tokens(self, tenant: str | None = None, status: int = 400) -> dict[str, Any]:
        # Without a tenant every tenant's tokens expire (this control ignores the client's default tenant).
        params = {"tenant": tenant} if tenant else {"tenant": ""}
        return self._call("POST", "/delta/expire", {"status": status}, params)  # type: ignore[no-any-return]

    def throttle_tenant(
        self, tenant: str, rate_429: float = 1.0, retry_after_seconds: int = 1
    ) -> dict[str, Any]:
        body = {"rate_429": rate_429, "retry_after_seconds": retry_after_seconds}
        return self._call("PUT", "/tenant-throttle", body, {"tenant": tenant})  # type: ignore[no-any-return]

    def set_redirect_uris(self, client_id: str, redirect_uris: list[str]) -> None:
        self._call("PUT", f"/apps/{client_id}/redirect-uris", {"redirectUris": list(redirect_uris)})


def _first_tenant(emu: Emulator) -> dict[str, Any]:
    """The first tenant of a generated directory (a fleet), in a seed's shape."""
    tenant = emu.directory.default
    apps = [
        {"clientId": app.client_id, "secrets": [{"value": secret.value} for secret in app.secrets]}
        for app in tenant.apps.values()
    ]
    return {"id": tenant.id, "domain": tenant.domain, "apps": apps}


class RunningEmulator(TenantHelpers, FleetHelpers):
    """An emulator serving HTTPS on a background thread; stop() (or leaving the `with` block) shuts it down."""

    def __init__(self, server: EmulatorServer, seed: dict[str, Any]) -> None:
        self._server = server
        self.emulator = server.emulator
        self.base_url = server.base_url
        self.graph_url = f"{self.base_url}/v1.0"
        self.ca_path = server.tls.ca_path
        tenant = seed["tenants"][0] if seed.get("tenants") else _first_tenant(server.emulator)
        self.tenant_id: str = tenant["id"]
        self.tenant_domain: str = tenant["domain"]
        apps = {app["clientId"]: app for app in tenant.get("apps", [])}
        self.client_id = seeds.DEFAULT_CLIENT_ID
        self.client_secret = apps.get(self.client_id, {}).get("secrets", [{}])[0].get("value", "")
        self.unconsented_client_id = seeds.UNCONSENTED_CLIENT_ID
        self.unconsented_client_secret = (
            apps.get(self.unconsented_client_id, {}).get("secrets", [{}])[0].get("value", "")
        )
        self.authority = f"{self.base_url}/{self.tenant_id}"
        self.token_url = f"{self.authority}/oauth2/v2.0/token"
        self.control = EmulatorControl(self.base_url, self.ca_path)

    def __repr__(self) -> str:
        return f"RunningEmulator(base_url={self.base_url!r}, tenant_id={self.tenant_id!r})"

    # ---- ready settings for Microsoft's clients ----------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A context that trusts the emulator's own certificate authority (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def httpx_settings(self) -> dict[str, Any]:
        """Keyword arguments for httpx.Client/AsyncClient talking to Graph on the emulator."""
        return {"base_url": self.graph_url, "verify": self.ssl_context(), "trust_env": False}

    def msal_settings(self) -> dict[str, Any]:
        """Keyword arguments for msal.ConfidentialClientApplication, with an http_client that trusts ca_path.

        Instance discovery is off: MSAL asks login.microsoftonline.com for it whatever the authority.
        """
        import requests

        session = requests.Session()
        session.verify = str(self.ca_path)
        session.trust_env = False  # else REQUESTS_CA_BUNDLE would override verify
        return {
            "client_id": self.client_id,
            "client_credential": self.client_secret,
            "authority": self.authority,
            "instance_discovery": False,
            "http_client": session,
        }

    def azure_identity_settings(self) -> dict[str, Any]:
        """Keyword arguments for azure.identity.ClientSecretCredential (and its aio twin)."""
        return {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "authority": self.base_url,
            "disable_instance_discovery": True,
            "connection_verify": str(self.ca_path),
        }

    @property
    def scope(self) -> str:
        return "https://graph.microsoft.com/.default"

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self.control.close()
        self._server.stop()

    def reset(self, seed: dict[str, Any] | None = None) -> None:
        self.control.reset(seed)

    def set_faults(self, **faults: Any) -> None:
        self.control.set_faults(**faults)

    def stats(self) -> dict[str, Any]:
        return self.control.stats()

    def set_batch_item_faults(self, *rules: dict[str, Any]) -> None:
        """Fail the next $batch items that match each rule ({status, times, method, path}: batch_faults.py)."""
        self.control.set_batch_item_faults(*rules)

    def batch_item_faults(self) -> dict[str, Any]:
        """The rules left, and how many items they failed."""
        return self.control.batch_item_faults()

    def reset_stats(self) -> None:
        self.control.reset_stats()

    def add_user(self, **graph_user: Any) -> dict[str, Any]:
        return self.control.add_user(**graph_user)

    def add_group(
        self,
        members: list[str] | tuple[str, ...] = (),
        owners: list[str] | tuple[str, ...] = (),
        **graph_group: Any,
    ) -> dict[str, Any]:
        return self.control.add_group(members, owners, **graph_group)

    def add_members(self, group_id: str, user_ids: list[str]) -> None:
        self.control.add_members(group_id, user_ids)

    def group_members(self, group_id: str) -> list[str]:
        return self.control.group_members(group_id)

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        return self.control.get_group(group_id)

    def find_groups(self, **props: Any) -> list[dict[str, Any]]:
        return self.control.find_groups(**props)

    def delete_group_behind_app(self, group_id: str, tenant: str | None = None) -> None:
        """Delete the group as an administrator would: a Microsoft 365 group goes to deleted items for 30 days
        (in `tenant`, else the emulator's default tenant)."""
        self.control.delete_group_behind_app(group_id, tenant)

    def deleted_items(self) -> list[dict[str, Any]]:
        """The deleted groups still restorable (id, deletedDateTime, displayName)."""
        return self.control.deleted_items()

    def age_deleted_item(self, group_id: str, days: float) -> None:
        """Make a deleted group `days` older; past 30 days it is gone for good."""
        self.control.age_deleted_item(group_id, days)

    def administrative_units(self) -> list[dict[str, Any]]:
        return self.control.administrative_units()

    def add_administrative_unit(
        self, members: list[str] | tuple[str, ...] = (), **graph_unit: Any
    ) -> dict[str, Any]:
        return self.control.add_administrative_unit(members, **graph_unit)

    def add_unit_members(self, unit_id: str, object_ids: list[str]) -> None:
        self.control.add_unit_members(unit_id, object_ids)

    def remove_unit_members(self, unit_id: str, object_ids: list[str]) -> None:
        """Take objects out of a unit, as a tenant administrator would in Microsoft Entra."""
        self.control.remove_unit_members(unit_id, object_ids)

    def unit_members(self, unit_id: str) -> list[str]:
        return self.control.unit_members(unit_id)

    def set_unit_roles(
        self, unit_id: str, roles: list[str], client_id: str | None = None
    ) -> dict[str, list[str]]:
        """The directory roles the app (this emulator's, unless `client_id`) holds scoped to the unit."""
        return self.control.set_unit_roles(unit_id, client_id or self.client_id, roles)

    def revoke_tokens(self) -> None:
        self.control.revoke_tokens()

    def set_app_roles(self, client_id: str, roles: list[str], tenant: str | None = None) -> None:
        self.control.set_app_roles(client_id, roles, tenant)

    def set_tenant_policy(
        self, *, allow_guests_in_groups: bool | None = None, decline_consent: bool | None = None
    ) -> None:
        self.control.set_tenant_policy(
            allow_guests_in_groups=allow_guests_in_groups, decline_consent=decline_consent
        )

    def replicate_now(self) -> None:
        """Settle every replication lag at once (objects, memberships, the index)."""
        self.control.replicate_now()

    def set_lag(self, lag_seconds: float) -> None:
        """Change the replication lag until the next reset; 0 makes every write visible at once."""
        self.control.set_lag(lag_seconds)


def start_emulator(
    data_dir: Path,
    *,
    seed: dict[str, Any] | None = None,
    users: int = 0,
    groups: int = 0,
    time_scale: float = 1.0,
    throttling: bool = True,
    faults: dict[str, Any] | None = None,
    port: int = 0,
    lag_seconds: float | None = None,
) -> RunningEmulator:
    """Start an HTTPS emulator on a background thread and return once it answers."""
    if seed is None:
        seed = seeds.generated_seed(users, groups) if (users or groups) else seeds.default_seed()
    lag = DEFAULT_LAG_SECONDS if lag_seconds is None else lag_seconds
    emu = Emulator(seed, time_scale=time_scale, throttling=throttling, faults=faults, lag_seconds=lag)
    server = EmulatorServer(emu, Path(data_dir), port)
    server.start()
    server.wait_started()
    running = RunningEmulator(server, seed)
    running.control.health()
    return running
