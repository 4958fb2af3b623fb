"""`equa serve`'s access log names each request's path and status, never its query values, an invitation's token or
the client's IP address.

uvicorn logs every request at INFO with its query string, and an invitation link carries its token in the path:
search terms and addresses would reach the log collectors, and whoever reads the logs could take an invited
address with the token.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import httpx
from served_support import served_installation

from equa.logging_setup import PrivateAccessLine

CANARY = f"canary{uuid.uuid4().hex[:10]}"


def test_the_access_log_keeps_paths_and_statuses_but_no_query_values_or_invitation_tokens(
    tmp_path: Path,
) -> None:
    with (
        served_installation(tmp_path, f"{CANARY}.admin@example.com", EQUA_LOG_LEVEL="INFO") as (served, org),
        httpx.Client(base_url=served.base_url, headers=org.headers, timeout=30) as http,
    ):
        members = f"/api/v1/organizations/{org.organization_id}/members"
        invited = http.post(members, json={"email": f"{CANARY}.invitee@example.com"})
        assert invited.status_code == 201, invited.text
        token = invited.json()["invitationUrl"].rsplit("/invitations/", 1)[1]
        assert http.get(f"/api/v1/invitations/{token}").status_code == 200
        assert http.get(f"/invitations/{token}").status_code == 200
        assert http.get(members, params={"search": f"{CANARY}.invitee@example.com"}).status_code == 200
        served.stop()
        log = served.output()

    access_lines = [line for line in log.splitlines() if "uvicorn.access" in line]
    assert any(f'"POST {members} HTTP/1.1" 201' in line for line in access_lines), log[-3000:]
    assert any(f'"GET {members} HTTP/1.1" 200' in line for line in access_lines), log[-3000:]
    assert any('"GET /invitations/inv_*** HTTP/1.1" 200' in line for line in access_lines), log[-3000:]
    assert [line for line in log.splitlines() if CANARY in line or token in line] == []
    # The client's IP address is not in the log either; one pseudonym stands for it, whatever the port.
    assert not [line for line in access_lines if "127.0.0.1" in line], access_lines[:3]
    assert len({line.split(" - ", 1)[0].rsplit(" ", 1)[-1] for line in access_lines}) == 1, access_lines[:3]
    assert all(" client-" in line for line in access_lines), access_lines[:3]


def _access_record(client: str) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        (client, "GET", "/api/v1/organizations?search=someone", "1.1", 200), None,
    )  # fmt: skip


def test_a_client_keeps_one_pseudonym_across_ports_and_another_key_gives_another() -> None:
    lines = PrivateAccessLine("one installation's key")
    other_installation = PrivateAccessLine("another installation's key")

    def line(access: PrivateAccessLine, client: str) -> str:
        record = _access_record(client)
        access.filter(record)
        return record.getMessage()

    first, second = line(lines, "203.0.113.7:50000"), line(lines, "203.0.113.7:50001")
    assert first == second and first.startswith("client-") and "203.0.113.7" not in first
    assert first.endswith('"GET /api/v1/organizations HTTP/1.1" 200')
    assert line(lines, "203.0.113.8:50000") != first
    assert line(other_installation, "203.0.113.7:50000") != first
    ipv6 = line(lines, "2001:db8::1:443")
    assert ipv6 == line(lines, "2001:db8::1:8443") and "2001:db8" not in ipv6
