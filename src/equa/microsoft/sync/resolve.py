"""Addresses -> directory users, in batched lookups: 15 addresses per $filter, 20 lookups per $batch.

Each address is tried by mail, then (for those still unknown) by userPrincipalName, then by proxyAddresses,
case-insensitively. A lookup that fails after the client's retries raises: the run cannot tell "not in the
tenant" from "could not ask", and must not report people as missing when it does not know.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from equa.microsoft.graph import BatchRequest, GraphClient, GraphError
from equa.microsoft.models import MatchedBy
from equa.microsoft.sync.plan import DirectoryUser, normalize_address

ADDRESSES_PER_FILTER = 15  # Graph's limit on values in one `in` (or OR'ed clauses)
REQUESTS_PER_BATCH = 20  # Graph's limit on requests in one $batch
BATCHES_IN_FLIGHT = 4
USER_FIELDS = "id,mail,userPrincipalName,displayName,userType,proxyAddresses"


def _quoted(value: str) -> str:
    # OData string literal: single quotes doubled.
    return "'" + value.replace("'", "''") + "'"


def filter_by_property(prop: str, addresses: Sequence[str]) -> str:
    return f"{prop} in ({','.join(_quoted(a) for a in addresses)})"


def filter_by_proxy_address(addresses: Sequence[str]) -> str:
    return " or ".join(f"proxyAddresses/any(p:p eq {_quoted('smtp:' + a)})" for a in addresses)


def lookup_url(filter_text: str) -> str:
    query = urlencode(
        {"$filter": filter_text, "$select": USER_FIELDS, "$top": str(ADDRESSES_PER_FILTER * 2)},
        quote_via=quote,
        safe="$,()':",
    )
    return f"/users?{query}"


def directory_user(item: dict[str, object], matched_by: str | None = None) -> DirectoryUser:
    odata_type = str(item.get("@odata.type") or "#microsoft.graph.user")
    return DirectoryUser(
        id=str(item["id"]),
        mail=_text(item.get("mail")),
        user_principal_name=_text(item.get("userPrincipalName")),
        display_name=_text(item.get("displayName")),
        user_type=_text(item.get("userType")),
        is_user=odata_type.endswith(".user"),
        matched_by=matched_by,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@dataclass(frozen=True)
class _Stage:
    matched_by: str
    build_filter: Callable[[list[str]], str]
    match: Callable[[dict[str, object], Iterable[str]], list[str]]


async def _run_lookups(
    graph: GraphClient, lookups: list[tuple[_Stage, list[str]]], found: list[dict[str, DirectoryUser]]
) -> None:
    """Send the lookups 20 per $batch, a few batches at once; found[i] collects what stage i's lookups answer."""
    semaphore = asyncio.Semaphore(BATCHES_IN_FLIGHT)
    stage_index = {id(stage): index for index, stage in enumerate(STAGES)}

    async def one_batch(group: list[tuple[_Stage, list[str]]]) -> None:
        requests = [BatchRequest("GET", lookup_url(stage.build_filter(chunk))) for stage, chunk in group]
        async with semaphore:
            results = await graph.batch(requests)
        for (stage, addresses), result in zip(group, results, strict=True):
            if not result.ok:
                raise result.error or GraphError(
                    f"A user lookup answered HTTP {result.status}.", status=result.status
                )
            users = sorted((result.body or {}).get("value", []), key=lambda u: str(u.get("id")))
            target = found[stage_index[id(stage)]]
            for item in users:
                for address in stage.match(item, addresses):
                    # Several users answering one address: the lowest id wins, the same on every run.
                    target.setdefault(address, directory_user(item, stage.matched_by))

    groups = [lookups[i : i + REQUESTS_PER_BATCH] for i in range(0, len(lookups), REQUESTS_PER_BATCH)]
    await asyncio.gather(*(one_batch(group) for group in groups))


def _match_property(prop: str) -> Callable[[dict[str, object], Iterable[str]], list[str]]:
    def match(item: dict[str, object], addresses: Iterable[str]) -> list[str]:
        value = normalize_address(_text(item.get(prop)))
        return [a for a in addresses if a == value]

    return match


def _match_proxy(item: dict[str, object], addresses: Iterable[str]) -> list[str]:
    proxies = item.get("proxyAddresses")
    if not isinstance(proxies, list):
        return []
    known = {
        p.split(":", 1)[1].lower() for p in proxies if isinstance(p, str) and p.lower().startswith("smtp:")
    }
    return [a for a in addresses if a in known]


STAGES = (
    _Stage(MatchedBy.MAIL.value, lambda c: filter_by_property("mail", c), _match_property("mail")),
    _Stage(
        MatchedBy.USER_PRINCIPAL_NAME.value,
        lambda c: filter_by_property("userPrincipalName", c),
        _match_property("userPrincipalName"),
    ),
    _Stage(MatchedBy.PROXY_ADDRESS.value, filter_by_proxy_address, _match_proxy),
)


async def resolve_addresses(graph: GraphClient, addresses: Iterable[str]) -> dict[str, DirectoryUser]:
    """Directory users by normalized address; addresses not in the tenant are absent from the answer."""
    remaining = sorted({a for a in (normalize_address(x) for x in addresses) if a})
    per_stage: list[dict[str, DirectoryUser]] = [{} for _ in STAGES]
    chunks = _chunks(remaining, ADDRESSES_PER_FILTER)
    if len(chunks) * len(STAGES) <= REQUESTS_PER_BATCH:
        # Few addresses (a re-sync's newcomers, people not in the tenant): every stage in one $batch.
        await _run_lookups(graph, [(stage, chunk) for stage in STAGES for chunk in chunks], per_stage)
    else:
        # Many (a first sync): stage by stage, each asking only for the addresses still unknown.
        for index, stage in enumerate(STAGES):
            known = {a for earlier in per_stage[:index] for a in earlier}
            left = [a for a in remaining if a not in known]
            if not left:
                break
            await _run_lookups(graph, [(stage, c) for c in _chunks(left, ADDRESSES_PER_FILTER)], per_stage)
    found: dict[str, DirectoryUser] = {}
    for stage_found in per_stage:  # mail first, then userPrincipalName, then proxyAddresses
        for address, user in stage_found.items():
            found.setdefault(address, user)
    return found
