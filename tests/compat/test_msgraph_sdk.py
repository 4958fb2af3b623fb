"""Microsoft's own Graph SDK (msgraph-sdk) against the emulator: groups, members, delta and $batch.

Run with `make compat` (its own virtual environment, .venv-compat, holds the SDK); `make test` skips this folder.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("msgraph", reason="msgraph-sdk is installed by `make compat` only")

from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.groups.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.models.group import Group
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph_core import GraphClientFactory
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

from graph_emulator import seeds

SCOPES = ["https://graph.microsoft.com/.default"]
MEMBERS = [u["id"] for u in seeds.default_seed()["tenants"][0]["users"] if u["userType"] == "Member"]


def directory_object(object_id: str) -> str:
    return f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"


@pytest.fixture
async def client(graph_emulator) -> AsyncIterator[GraphServiceClient]:
    # Read-your-writes keeps these checks about the SDK's requests, not about waiting for replication.
    graph_emulator.set_lag(0)
    credential = ClientSecretCredential(**graph_emulator.azure_identity_settings())
    auth = AzureIdentityAuthenticationProvider(credential, scopes=SCOPES, allowed_hosts=["127.0.0.1"])
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(graph_emulator.ca_path)))
    )
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = graph_emulator.graph_url
    yield GraphServiceClient(request_adapter=adapter)
    await http.aclose()
    await credential.close()


async def new_group(client: GraphServiceClient, name: str) -> Group:
    body = Group(
        display_name=name,
        mail_enabled=False,
        mail_nickname=f"compat-{uuid.uuid4().hex[:8]}",
        security_enabled=True,
        group_types=[],
    )
    created = await client.groups.post(body)
    assert created is not None and created.id
    return created


async def test_groups_create_get_and_list_with_paging(client):
    created = await new_group(client, "Compat Team")
    fetched = await client.groups.by_group_id(created.id).get()
    assert fetched.display_name == "Compat Team"
    config = RequestConfiguration(
        query_parameters=GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
            top=3, select=["id", "displayName"]
        )
    )
    page = await client.groups.get(request_configuration=config)
    names: list[str] = []
    pages = 0
    while page is not None:
        pages += 1
        names.extend(g.display_name for g in page.value or [])
        if not page.odata_next_link:
            break
        page = await client.groups.with_url(page.odata_next_link).get()
    assert pages > 1
    assert "Compat Team" in names and "Engineering" in names


async def test_members_by_ref_and_by_odata_bind(client):
    group = await new_group(client, "Compat Members")
    members = client.groups.by_group_id(group.id).members
    await members.ref.post(ReferenceCreate(odata_id=directory_object(MEMBERS[0])))
    patch = Group(additional_data={"members@odata.bind": [directory_object(m) for m in MEMBERS[1:3]]})
    await client.groups.by_group_id(group.id).patch(patch)
    listed = await members.get()
    assert sorted(m.id for m in listed.value) == sorted(MEMBERS[:3])
    await members.by_directory_object_id(MEMBERS[1]).ref.delete()
    listed = await members.get()
    assert sorted(m.id for m in listed.value) == sorted([MEMBERS[0], MEMBERS[2]])


async def test_delta_round_then_delta_link(client):
    config = RequestConfiguration(
        query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=["displayName"])
    )
    page = await client.groups.delta.get(request_configuration=config)
    while page.odata_next_link:
        page = await client.groups.delta.with_url(page.odata_next_link).get()
    assert page.odata_delta_link
    created = await new_group(client, "Compat Delta")
    following = await client.groups.delta.with_url(page.odata_delta_link).get()
    assert [g.id for g in following.value] == [created.id]
    assert following.odata_delta_link


async def test_batch(client):
    engineering = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "engineering")
    first = BatchRequestItem(client.groups.by_group_id(engineering).to_get_request_information())
    second = BatchRequestItem(client.groups.to_get_request_information(), depends_on=[first])
    content = BatchRequestContent()
    content.add_request(first.id, first)
    content.add_request(second.id, second)
    response = await client.batch.post(batch_request_content=content)
    assert response.get_response_status_codes() == {first.id: 200, second.id: 200}
    item = response.get_response_by_id(first.id)
    assert item.status == 200 and item.headers.get("Content-Type", "").startswith("application/json")


def test_the_guides_graph_service_client_example_passes_in_another_project(tmp_path):
    """docs/graph-emulator.md's GraphServiceClient example, as written, in a project with only the plugin."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "graph-emulator.md").read_text(encoding="utf-8")
    section = guide.split("## Testing your own Microsoft Graph code offline", 1)[1]
    example = next(b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "GraphServiceClient" in b)
    (tmp_path / "test_example.py").write_text(example, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EQUA_", "MS_"))}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "graph_emulator.pytest_plugin", "-p", "no:cacheprovider",
         "-o", "asyncio_mode=auto", "test_example.py"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b1 passed\b", run.stdout) and f"rootdir: {tmp_path}" in run.stdout, run.stdout
