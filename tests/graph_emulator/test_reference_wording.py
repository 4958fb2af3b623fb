"""The emulator's answers against the wording and shape in the shared Microsoft reference material.

Each test loads what it compares with from shared/graph-reference (beside the checkout) at run time. Where the reference gives a
status, code, message or the place of a field, the emulator must give the same; where the reference is silent
(noted in each test), only the general Graph error shape is checked.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from emulator_helpers import Graph, error_of, fetch_token

from graph_emulator import seeds
from reference_examples import reference_dir

REFERENCE = reference_dir()  # skips this module when the examples are absent
DOMAIN = seeds.DEFAULT_TENANT_DOMAIN
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


# ---- reading the reference ----------------------------------------------------------------------


@dataclass
class Example:
    """One '### title' section of a reference .http file: optional status line and headers, then a JSON body."""

    status: int | None
    headers: dict[str, str]
    body: Any


@cache
def http_examples(name: str) -> dict[str, Example]:
    sections: dict[str, Example] = {}
    for chunk in re.split(r"^### ", (REFERENCE / name).read_text(), flags=re.M)[1:]:
        title, _, rest = chunk.partition("\n")
        lines = rest.strip("\n").splitlines()
        status = None
        headers: dict[str, str] = {}
        if lines and lines[0].startswith("HTTP/"):
            status = int(lines[0].split()[1])
            lines = lines[1:]
            while lines and lines[0].strip():
                key, _, value = lines.pop(0).partition(":")
                headers[key.strip()] = value.strip()
        text = "\n".join(lines).strip()
        body: Any = None
        if text.startswith("{"):
            body = json.loads(text)
        sections[title.strip()] = Example(status, headers, body)
    return sections


@cache
def reference_json(name: str) -> dict[str, Any]:
    return dict(json.loads((REFERENCE / name).read_text()))


@cache
def readme_section(heading: str) -> str:
    text = (REFERENCE / "README.md").read_text()
    found = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert found, f"README.md has no '## {heading}' section"
    return " ".join(found.group(1).split())  # one line: the README wraps its sentences


def batch_example_item(item_id: str) -> dict[str, Any]:
    """One item of the documented $batch response (json-batching.http)."""
    body = http_examples("json-batching.http")["Example JSON batch response"].body
    return next(item for item in body["responses"] if item["id"] == item_id)


def documented_403() -> dict[str, Any]:
    """Microsoft's troubleshooting article: the 403 for a member change Graph will not make."""
    examples = http_examples("troubleshoot-403-add-user-to-group.http")
    title = next(t for t in examples if t.startswith("403 "))
    return dict(examples[title].body)


def throttled_example() -> Example:
    return http_examples("throttling.http")["Sample throttled response"]


# ---- comparing ----------------------------------------------------------------------------------


def gid(key: str) -> str:
    return seeds.stable_id(DOMAIN, "seed-group", key)


def ref(object_id: str) -> str:
    return f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"


def batch(graph: Graph, requests: list[dict[str, Any]]) -> httpx.Response:
    return graph.post("/$batch", json={"requests": requests})


def assert_date_like(ours: str, theirs: str) -> None:
    """Same format as the reference's innerError date: UTC, seconds, no zone suffix."""
    dt.datetime.strptime(theirs, DATE_FORMAT)
    dt.datetime.strptime(ours, DATE_FORMAT)


def assert_error_shaped_like(body: dict[str, Any], reference: dict[str, Any]) -> None:
    """The same keys at the same places as a reference error body, down to innerError."""
    assert set(body) == set(reference) == {"error"}
    assert set(body["error"]) == set(reference["error"])
    assert set(body["error"]["innerError"]) == set(reference["error"]["innerError"])
    assert_date_like(body["error"]["innerError"]["date"], reference["error"]["innerError"]["date"])


def assert_same_error(body: dict[str, Any], reference: dict[str, Any]) -> None:
    """Shape, code and message as the reference has them."""
    assert_error_shaped_like(body, reference)
    assert body["error"]["code"] == reference["error"]["code"]
    assert body["error"]["message"] == reference["error"]["message"]


def assert_error_item_headers(item: dict[str, Any]) -> None:
    """A failed $batch item carries the header names and values the documented failed items carry."""
    documented = batch_example_item("3")["headers"]
    assert {"Cache-Control", "x-ms-resource-unit", "Content-Type"} <= set(documented)
    assert item["headers"]["Cache-Control"] == documented["Cache-Control"]
    assert item["headers"]["Content-Type"] == documented["Content-Type"]
    assert int(item["headers"]["x-ms-resource-unit"]) >= 1


def assert_throttled_like_reference(status: int, headers: Mapping[str, str], body: dict[str, Any]) -> None:
    """429, Retry-After and the body of Microsoft's sample throttled response (throttling.http)."""
    sample = throttled_example()
    ours_headers = {k.lower(): v for k, v in headers.items()}
    assert status == sample.status == 429
    assert ours_headers["content-type"] == sample.headers["Content-Type"]
    assert "Retry-After" in sample.headers and int(ours_headers["retry-after"]) >= 1
    assert set(body) == set(sample.body) == {"error"}
    ours, theirs = body["error"], sample.body["error"]
    assert set(ours) == set(theirs)
    assert ours["code"] == theirs["code"] and ours["message"] == theirs["message"]
    assert set(ours["innerError"]) == set(theirs["innerError"])
    for key in ("code", "message", "status"):
        assert ours["innerError"][key] == theirs["innerError"][key]
    assert_date_like(ours["innerError"]["date"], theirs["innerError"]["date"])


def batch_until(
    graph: Graph, requests: list[dict[str, Any]], wanted: set[int], tries: int = 40
) -> list[dict]:
    """Items of answered batches until every status in `wanted` has been seen among them (faults are random)."""
    items: list[dict[str, Any]] = []
    for _ in range(tries):
        response = batch(graph, requests)
        if response.status_code == 200:
            items.extend(response.json()["responses"])
        if wanted <= {item["status"] for item in items}:
            return items
    raise AssertionError(f"no answered batch had items with status {sorted(wanted)}")


# ---- 1. $batch limits ---------------------------------------------------------------------------


def test_batch_limit_is_the_documented_one_and_a_bigger_batch_is_refused_whole(graph, emu):
    stated = re.search(r"at most (\d+) requests", readme_section("$batch"))
    assert stated, "README.md no longer states the $batch limit"
    limit = int(stated.group(1))
    items = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(limit + 1)]
    full = batch(graph, items[:limit])
    assert full.status_code == 200 and len(full.json()["responses"]) == limit
    emu.reset_stats()
    refused = batch(graph, items)
    # The reference gives the limit but not the status, code or message of the refusal: the emulator's own
    # 400 is only checked for Graph's error shape (README, "Graph error body"), and that nothing ran.
    assert refused.status_code == 400
    error_of(refused)
    assert emu.stats()["batch_subrequests"] == 0


def test_duplicate_ids_fail_the_whole_batch_with_400(graph, emu):
    assert "ids unique (else the whole batch is 400)" in readme_section("$batch")
    group = gid("marketing")
    member = emu.group_members(group)[0]
    emu.reset_stats()
    response = batch(graph, [
        {"id": "1", "method": "DELETE", "url": f"/groups/{group}/members/{member}/$ref"},
        {"id": "1", "method": "GET", "url": "/users?$top=1"},
    ])  # fmt: skip
    assert response.status_code == 400
    error_of(response)  # code and message: the reference does not give them
    assert member in emu.group_members(group)
    assert emu.stats()["batch_subrequests"] == 0


def test_depends_on_an_id_not_in_the_batch_refuses_the_batch(graph, emu):
    # The reference is silent on this case; the emulator treats it as a malformed batch, like duplicate ids.
    emu.reset_stats()
    response = batch(graph, [
        {"id": "1", "method": "GET", "url": "/users?$top=1"},
        {"id": "2", "method": "GET", "url": "/users?$top=1", "dependsOn": ["9"]},
    ])  # fmt: skip
    assert response.status_code == 400
    error_of(response)
    assert emu.stats()["batch_subrequests"] == 0


def test_item_depending_on_a_failed_one_is_424_with_the_documented_item_shape(graph):
    assert "`dependsOn` failures give 424" in readme_section("$batch")
    documented = batch_example_item("3")
    response = batch(graph, [
        {"id": "1", "method": "GET", "url": "/groups/00000000-0000-0000-0000-000000000000"},
        {"id": "2", "method": "GET", "url": "/users?$top=1", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": "/users?$top=1", "dependsOn": ["2"]},
    ])  # fmt: skip
    assert response.status_code == 200  # the envelope succeeds even when items fail
    answers = {item["id"]: item for item in response.json()["responses"]}
    assert set(answers["1"]) == set(documented) == {"id", "status", "headers", "body"}
    assert answers["1"]["status"] == 404
    for item_id in ("2", "3"):  # a failure passes down the chain
        item = answers[item_id]
        assert set(item) == set(documented)
        assert item["status"] == 424
        assert_error_item_headers(item)
        # Code and message of the 424 are not in the reference; its place in the body is.
        assert_error_shaped_like(item["body"], documented["body"])


# ---- 2. 429, 503 and 504 ------------------------------------------------------------------------


def test_throttled_request_matches_the_sample_throttled_response(graph, emu):
    sample = throttled_example()
    emu.set_faults(rate_429=1.0, retry_after_seconds=int(sample.headers["Retry-After"]))
    response = graph.get("/users?$top=1", headers={"client-request-id": "wording-check"})
    assert_throttled_like_reference(response.status_code, response.headers, response.json())
    assert response.headers["Retry-After"] == sample.headers["Retry-After"]
    assert response.json()["error"]["innerError"]["request-id"] == response.headers["request-id"]
    # The sample's innerError has no client-request-id; the response header still echoes it.
    assert response.headers["client-request-id"] == "wording-check"


def test_throttled_batch_envelope_matches_the_sample(graph, emu):
    emu.set_faults(rate_429=1.0, retry_after_seconds=4)
    response = batch(graph, [{"id": "1", "method": "GET", "url": "/users?$top=1"}])
    assert_throttled_like_reference(response.status_code, response.headers, response.json())
    assert response.headers["Retry-After"] == "4"


def test_throttled_batch_items_carry_their_own_status_and_retry_after(graph, emu):
    assert "A throttled item has status 429 and its own `Retry-After`" in readme_section("$batch")
    emu.set_faults(rate_429=0.3, retry_after_seconds=6, seed_random=11)
    requests = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(10)]
    items = batch_until(graph, requests, {200, 429})
    throttled = [item for item in items if item["status"] == 429]
    for item in throttled:
        assert item["headers"]["Retry-After"] == "6"
        assert_error_item_headers(item)
        assert_throttled_like_reference(item["status"], item["headers"], item["body"])


def test_503_and_504_have_graphs_error_shape_for_a_request(graph, emu):
    # The reference says 503 and 504 are retried but gives neither body: only the shape of the documented
    # error bodies is compared, and the emulator's codes and messages are left as they are.
    documented = batch_example_item("3")["body"]
    for status in (503, 504):
        emu.set_faults(**{f"rate_{status}": 1.0})
        response = graph.get("/users?$top=1", headers={"client-request-id": f"fault-{status}"})
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/json"
        body = response.json()
        assert_error_shaped_like(body, documented)
        assert body["error"]["code"] and body["error"]["message"]
        assert body["error"]["innerError"]["request-id"] == response.headers["request-id"]
        assert body["error"]["innerError"]["client-request-id"] == f"fault-{status}"
        envelope = batch(graph, [{"id": "1", "method": "GET", "url": "/users?$top=1"}])
        assert envelope.status_code == status
        assert_error_shaped_like(envelope.json(), documented)


def test_503_and_504_items_inside_a_batch(graph, emu):
    documented = batch_example_item("3")
    emu.set_faults(rate_503=0.2, rate_504=0.2, seed_random=5)
    requests = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(10)]
    items = batch_until(graph, requests, {503, 504})
    for item in items:
        if item["status"] in (503, 504):
            assert set(item) == set(documented)
            assert_error_item_headers(item)
            assert_error_shaped_like(item["body"], documented["body"])


# ---- 3. groups whose membership Graph will not change -------------------------------------------


def _non_member(graph: Graph, emu, key: str) -> str:
    members = set(emu.group_members(gid(key)))
    users = graph.get("/users", params={"$top": "999", "$select": "id,userType"}).json()["value"]
    return next(u["id"] for u in users if u["id"] not in members and u["userType"] != "Guest")


def _member_changes(graph: Graph, emu, key: str) -> list[tuple[str, httpx.Response]]:
    """Add by $ref, add by members@odata.bind, remove by $ref: each must be refused."""
    group = gid(key)
    newcomer = _non_member(graph, emu, key)
    member = emu.group_members(group)[0]
    headers = {"client-request-id": f"kind-{key}"}
    return [
        ("add $ref", graph.post(f"/groups/{group}/members/$ref", json={"@odata.id": ref(newcomer)},
                                headers=headers)),
        ("add bind", graph.patch(f"/groups/{group}", json={"members@odata.bind": [ref(newcomer)]},
                                 headers=headers)),
        ("remove", graph.delete(f"/groups/{group}/members/{member}/$ref", headers=headers)),
    ]  # fmt: skip


def test_dynamic_group_membership_changes_get_the_documented_403(graph, emu):
    group = emu.get_group(gid("dynamic"))
    assert group is not None and group["membershipRule"]
    assert "DynamicMembership" in group["groupTypes"]
    assert "dynamic groups" in readme_section("Groups")
    before = set(emu.group_members(gid("dynamic")))
    documented = documented_403()
    for what, response in _member_changes(graph, emu, "dynamic"):
        assert response.status_code == 403, what
        assert_same_error(response.json(), documented)
        assert response.json()["error"]["innerError"]["client-request-id"] == "kind-dynamic"
    assert set(emu.group_members(gid("dynamic"))) == before


def test_dynamic_group_refusal_inside_a_batch(graph, emu):
    group = gid("dynamic")
    newcomer = _non_member(graph, emu, "dynamic")
    response = batch(graph, [{"id": "1", "method": "POST", "url": f"/groups/{group}/members/$ref",
                              "headers": {"Content-Type": "application/json"},
                              "body": {"@odata.id": ref(newcomer)}}])  # fmt: skip
    (item,) = response.json()["responses"]
    assert item["status"] == 403
    assert_error_item_headers(item)
    assert_same_error(item["body"], documented_403())


def test_mail_enabled_security_and_distribution_groups_get_the_documented_403(graph, emu):
    documented = documented_403()
    for key in ("mail-security", "distribution"):
        before = set(emu.group_members(gid(key)))
        for what, response in _member_changes(graph, emu, key):
            assert response.status_code == 403, (key, what)
            assert_same_error(response.json(), documented)
        assert set(emu.group_members(gid(key))) == before


def test_role_assignable_group_needs_role_management_and_answers_the_documented_403(graph, emu):
    group = emu.get_group(gid("role-assignable"))
    assert group is not None and group["isAssignableToRole"] is True
    documented = documented_403()
    newcomer = _non_member(graph, emu, "role-assignable")
    refused = graph.post(f"/groups/{gid('role-assignable')}/members/$ref", json={"@odata.id": ref(newcomer)})
    assert refused.status_code == 403
    assert_same_error(refused.json(), documented)
    emu.set_app_roles(emu.client_id, [*seeds.APP_ROLES, "RoleManagement.ReadWrite.Directory"])
    privileged = Graph(emu, fetch_token(emu))
    try:
        allowed = privileged.post(
            f"/groups/{gid('role-assignable')}/members/$ref", json={"@odata.id": ref(newcomer)}
        )
    finally:
        privileged.http.close()
    assert allowed.status_code == 204


def test_on_premises_synced_group_membership_is_refused(graph, emu):
    # The reference says the membership of a group synced from on-premises cannot be changed, and gives no
    # status, code or message for it: the emulator's own answer is checked for Graph's error shape only.
    group = emu.get_group(gid("on-prem"))
    assert group is not None and group["onPremisesSyncEnabled"] is True
    assert "groups synced from on-premises (`onPremisesSyncEnabled:true`)" in readme_section("Groups")
    before = set(emu.group_members(gid("on-prem")))
    for what, response in _member_changes(graph, emu, "on-prem"):
        assert 400 <= response.status_code < 500, what
        error_of(response)
    assert set(emu.group_members(gid("on-prem"))) == before


# ---- 4. adding a member that is already there ---------------------------------------------------


def test_adding_an_existing_member_is_the_observed_400(graph, emu):
    observed = reference_json("observed-graph-errors.json")["member_already_exists_400"]
    fixtures = reference_json("group-membership-management-test-fixtures.json")
    assert fixtures["messages"]["member_already_exists_400"] == observed["message"]
    assert fixtures["status_code_pairs"][str(observed["http_status"])] == observed["code"]
    group = gid("marketing")
    existing = emu.group_members(group)[0]
    newcomer = _non_member(graph, emu, "marketing")
    before = set(emu.group_members(group))
    by_ref = graph.post(f"/groups/{group}/members/$ref", json={"@odata.id": ref(existing)})
    # All or nothing: one existing member fails the whole PATCH, the newcomer is not added either.
    by_bind = graph.patch(f"/groups/{group}", json={"members@odata.bind": [ref(newcomer), ref(existing)]})
    for response in (by_ref, by_bind):
        assert response.status_code == observed["http_status"]
        error = error_of(response)
        assert error["code"] == observed["code"] and error["message"] == observed["message"]
    assert set(emu.group_members(group)) == before


def test_batch_items_match_the_group_membership_management_fixtures(graph, emu):
    fixtures = reference_json("group-membership-management-test-fixtures.json")
    success, template = fixtures["batch_item_success"], fixtures["batch_item_error_template"]
    add, remove = fixtures["add_batch_item_request"], fixtures["remove_batch_item_request"]
    group = gid("marketing")
    existing = emu.group_members(group)[0]
    newcomer = _non_member(graph, emu, "marketing")
    outsider = seeds.stable_id(DOMAIN, "user", "999")

    def relative(url: str) -> str:
        # The fixtures hold the SDK's absolute URLs; on the wire a $batch item's url is relative.
        return url.replace("https://graph.microsoft.com/v1.0", "")

    def add_item(item_id: str, user: str) -> dict[str, Any]:
        bind = [u.replace("{userId}", user) for u in add["body"]["members@odata.bind"]]
        return {"id": item_id, "method": add["method"], "url": relative(add["url"]).replace("{groupId}", group),
                "headers": {"Content-Type": "application/json"}, "body": {"members@odata.bind": bind}}  # fmt: skip

    def remove_item(item_id: str, user: str) -> dict[str, Any]:
        url = relative(remove["url"]).replace("{groupId}", group).replace("{userId}", user)
        return {"id": item_id, "method": remove["method"], "url": url}

    response = batch(graph, [add_item("1", newcomer), add_item("2", existing), remove_item("3", outsider)])
    answers = {item["id"]: item for item in response.json()["responses"]}

    added = answers["1"]
    assert set(added) == set(success)
    assert added["status"] == success["status"]
    assert added["headers"] == success["headers"]
    assert added["body"] is success["body"] is None

    messages, pairs = fixtures["messages"], fixtures["status_code_pairs"]
    expected = {
        "2": ("400", messages["member_already_exists_400"].replace("{id}", existing)),
        "3": ("404", messages["member_not_found_404"].replace("{id}", outsider)),
    }
    for item_id, (status, message) in expected.items():
        item = answers[item_id]
        assert set(item) == set(template)
        assert str(item["status"]) == status and status in template["status"]
        assert set(template["headers"]) <= set(item["headers"])
        assert item["headers"]["Content-Type"] == template["headers"]["Content-Type"]
        assert item["headers"]["Cache-Control"] == template["headers"]["Cache-Control"]
        body = item["body"]
        assert set(body) == set(template["body"])
        assert set(body["error"]) == set(template["body"]["error"])
        assert set(body["error"]["innerError"]) == set(template["body"]["error"]["innerError"])
        assert body["error"]["code"] == pairs[status]
        assert body["error"]["message"] == message
    assert newcomer in emu.group_members(group)


def test_retry_after_on_503_applies_to_the_batch_envelope_too(graph, emu):
    emu.set_faults(rate_503=1.0, retry_after_on_503=True, retry_after_seconds=3)
    plain = graph.get("/users?$top=1")
    envelope = batch(graph, [{"id": "1", "method": "GET", "url": "/users?$top=1"}])
    assert (plain.status_code, envelope.status_code) == (503, 503)
    assert plain.headers["Retry-After"] == envelope.headers["Retry-After"] == "3"
