"""A fleet of tenants for scale benches: N tenants of sizes S/M/L, groups of 5-2,000 members, a membership total.

Built straight into the directory (users, groups and member sets in bulk, no Graph requests, no seed dicts to
copy), deterministic for the same arguments. `fleet_seed(...)` is a seed that `load_directory` expands, so `reset`
builds the fleet again; the layout (tenants, their groups and sizes) is kept on `Directory.fleet`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

from .seeds import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FIRST_NAMES,
    LAST_NAMES,
    MULTI_TENANT_APP_ROLES,
    USER_DEFAULT_PROPERTIES,
    USER_EXTRA_PROPERTIES,
    complete_group,
    load_seed,
    service_principal,
    stable_id,
)
from .state import App, Directory, MemberSet, Secret, Tenant

# Users of a tenant of each size (Microsoft's throttling sizes: S under 50 users, M up to 500, L over 500).
USERS_BY_SIZE = {"S": 40, "M": 400, "L": 2200}
SIZE_MIX = (("S", 0.4), ("M", 0.35), ("L", 0.25))
GROUP_WEIGHT = {"S": 1, "M": 2, "L": 4}  # larger tenants link more groups


@dataclass(frozen=True)
class FleetSpec:
    tenants: int = 100
    groups: int = 2000
    memberships: int = 400_000
    min_members: int = 5
    max_members: int = 2000
    seed: int = 7

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FleetSpec:
        spec = cls(**{k: int(v) for k, v in raw.items() if k in cls.__dataclass_fields__})
        if spec.tenants < 1 or spec.groups < spec.tenants:
            raise ValueError("a fleet needs at least one tenant and one group per tenant")
        if not 1 <= spec.min_members <= spec.max_members:
            raise ValueError("min_members must be at least 1 and at most max_members")
        return spec


def load_directory(seed: dict[str, Any]) -> Directory:
    """The seed's directory: its tenants, and the fleet it describes (`"fleet": {...}`), if any."""
    directory = load_seed(seed)
    if seed.get("fleet"):
        build_fleet(directory, seed["fleet"])
    return directory


def fleet_seed(
    tenants: int = 100,
    groups: int = 2000,
    memberships: int = 400_000,
    *,
    min_members: int = 5,
    max_members: int = 2000,
    seed: int = 7,
) -> dict[str, Any]:
    """A seed of `tenants` tenants holding `groups` Microsoft 365 groups and `memberships` memberships in all.

    The first tenant is the Equa app's home (multi-tenant registration); every tenant has consented to it.
    """
    spec = FleetSpec(tenants, groups, memberships, min_members, max_members, seed)
    return {"fleet": dict(spec.__dict__), "tenants": []}


def _sizes(rng: random.Random, count: int) -> list[str]:
    sizes = [size for size, share in SIZE_MIX for _ in range(round(share * count))]
    sizes = (sizes + ["S"] * count)[:count]
    rng.shuffle(sizes)
    return sizes


def _groups_per_tenant(sizes: list[str], total: int) -> list[int]:
    weights = [GROUP_WEIGHT[size] for size in sizes]
    extra = total - len(sizes)  # one group each, the rest by weight
    shares = [extra * w / sum(weights) for w in weights]
    counts = [1 + math.floor(share) for share in shares]
    by_remainder = sorted(range(len(sizes)), key=lambda i: shares[i] - math.floor(shares[i]), reverse=True)
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return counts


def fit_sizes(raw: list[float], low: list[int], high: list[int], total: int) -> list[int]:
    """Integer sizes within [low, high], shaped like `raw`, summing to exactly `total`."""
    if not sum(low) <= total <= sum(high):
        raise ValueError(f"{total} memberships cannot fit between {sum(low)} and {sum(high)}")

    def at(scale: float) -> list[int]:
        return [min(h, max(lo, round(r * scale))) for r, lo, h in zip(raw, low, high, strict=True)]

    lo_scale, hi_scale = 0.0, 1.0
    while sum(at(hi_scale)) < total:
        hi_scale *= 2
    for _ in range(60):
        middle = (lo_scale + hi_scale) / 2
        if sum(at(middle)) < total:
            lo_scale = middle
        else:
            hi_scale = middle
    sizes = at(hi_scale)
    missing = total - sum(sizes)
    step = 1 if missing > 0 else -1
    index = 0
    while missing:  # rounding: a member more or less, group by group
        bound = high[index] if step > 0 else low[index]
        if sizes[index] != bound:
            sizes[index] += step
            missing -= step
        index = (index + 1) % len(sizes)
    return sizes


def _user_template() -> dict[str, Any]:
    template: dict[str, Any] = dict.fromkeys(USER_DEFAULT_PROPERTIES + USER_EXTRA_PROPERTIES)
    template.update(accountEnabled=True, userType="Member", createdDateTime="2024-01-15T09:00:00Z")
    return template


def _guid(rng: random.Random) -> str:
    digits = f"{rng.getrandbits(128):032x}"
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-{digits[20:]}"


def _users(rng: random.Random, tenant: Tenant, count: int, template: dict[str, Any]) -> list[str]:
    """`count` member users, written into the tenant's maps and indexes in bulk."""
    users: dict[str, dict[str, Any]] = {}
    for index in range(count):
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        last = LAST_NAMES[(index // len(FIRST_NAMES)) % len(LAST_NAMES)]
        alias = f"{first}.{last}{index}".lower()
        upn = f"{alias}@{tenant.domain}"
        user = dict(template)
        user.update(
            id=_guid(rng),
            displayName=f"{first} {last}",
            givenName=first,
            surname=last,
            userPrincipalName=upn,
            mail=upn,
            mailNickname=alias,
            proxyAddresses=[f"SMTP:{upn}"],
            businessPhones=[],
            otherMails=[],
        )
        users[user["id"]] = user
    tenant.users.update(users)
    tenant.upn_index.update((user["userPrincipalName"], user_id) for user_id, user in users.items())
    tenant.mail_index.update((user["mail"], user_id) for user_id, user in users.items())
    tenant.proxy_index.update((f"smtp:{user['mail']}", {user_id}) for user_id, user in users.items())
    tenant.users_sorted = None
    return list(users)


def build_fleet(directory: Directory, raw_spec: dict[str, Any]) -> dict[str, Any]:
    """Add the fleet's tenants to `directory`; answers (and keeps on `directory.fleet`) the layout."""
    started = time.perf_counter()
    spec = FleetSpec.from_dict(raw_spec)
    rng = random.Random(f"fleet:{spec.seed}")
    sizes = _sizes(rng, spec.tenants)
    counts = _groups_per_tenant(sizes, spec.groups)
    caps = [min(spec.max_members, USERS_BY_SIZE[size]) for size in sizes]
    low = [min(spec.min_members, cap) for cap, count in zip(caps, counts, strict=True) for _ in range(count)]
    high = [cap for cap, count in zip(caps, counts, strict=True) for _ in range(count)]
    # Log-uniform between the bounds: many small groups, a few large ones.
    raw = [math.exp(rng.uniform(math.log(lo), math.log(hi))) for lo, hi in zip(low, high, strict=True)]
    group_sizes = fit_sizes(raw, low, high, spec.memberships)
    template = _user_template()
    registration: App | None = None
    layout: list[dict[str, Any]] = []
    cursor = 0
    for index, (size, count) in enumerate(zip(sizes, counts, strict=True)):
        tenant_id = stable_id("fleet", str(spec.seed), str(index))
        tenant = Tenant(
            id=tenant_id,
            domain=f"fleet{index:03d}.onmicrosoft.com",
            size=size,
            display_name=f"Fleet {index:03d}",
        )
        if registration is None:
            registration = App(
                client_id=DEFAULT_CLIENT_ID,
                display_name="Equa Microsoft 365 sync",
                secrets=[Secret(DEFAULT_CLIENT_SECRET)],
                certificates=[],
                roles=set(MULTI_TENANT_APP_ROLES),
                requested_roles=set(MULTI_TENANT_APP_ROLES),
                service_principal_id=stable_id(tenant_id, "sp", DEFAULT_CLIENT_ID),
                home_tenant_id=tenant_id,
                multi_tenant=True,
            )
            tenant.apps[DEFAULT_CLIENT_ID] = registration
        else:
            tenant.apps[DEFAULT_CLIENT_ID] = service_principal(registration, tenant_id)
        user_ids = _users(rng, tenant, USERS_BY_SIZE[size], template)
        groups = []
        for number in range(count):
            members = group_sizes[cursor]
            cursor += 1
            group = complete_group(
                {
                    "id": _guid(rng),
                    "displayName": f"Team {index:03d}-{number:03d}",
                    "groupTypes": ["Unified"],
                    "mailEnabled": True,
                    "securityEnabled": False,
                    "mailNickname": f"team-{number:03d}",
                    "visibility": "Private",
                },
                tenant.domain,
            )
            tenant.put_group(group, record=False)
            tenant.members[group["id"]] = MemberSet(set(rng.sample(user_ids, members)))
            groups.append({"id": group["id"], "members": members})
        directory.add(tenant)
        layout.append(
            {"id": tenant_id, "domain": tenant.domain, "size": size, "users": len(user_ids), "groups": groups}
        )
    directory.fleet = {
        "tenants": layout,
        "groups": spec.groups,
        "memberships": sum(group_sizes),
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    return directory.fleet
