"""`equa serve`'s access log names each request's path and status, never its query values or an invitation's token.

uvicorn logs every request at INFO with its query string, and an invitation link carries its token in the path:
search terms and addresses would reach the log collectors, and whoever reads the logs could take an invited
address with the token.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from served_support import served_installation

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
