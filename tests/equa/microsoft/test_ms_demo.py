"""`equa demo` starts with no setting or account, serves the app, and the login, token and CLI line it prints work;
its Microsoft 365 lags as Graph does."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from graph_emulator.seeds import default_seed
from graph_emulator.testing import EmulatorControl


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_demo_starts_serves_and_signs_in(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_", "EQUA_"))}
    equa = Path(sys.executable).with_name("equa")
    process = subprocess.Popen(
        [str(equa), "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while not any(line.startswith("Stop with Ctrl+C") for line in output):
            assert time.monotonic() < deadline, "".join(output)
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(output)
            output.append(line)
        text = "".join(output)
        email = re.search(r"^Email\s+(\S+)", text, re.M)
        password = re.search(r"^Password\s+(\S+)", text, re.M)
        assert email and password, text
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, text
                time.sleep(0.2)
            session = http.post(
                "/api/v1/session", json={"email": email.group(1), "password": password.group(1)}
            )
            assert session.status_code == 200, session.text
            orgs = http.get("/api/v1/organizations", headers={"X-CSRF-Token": session.json()["csrfToken"]})
            assert orgs.status_code == 200
            org = orgs.json()[0]
            status = http.get(f"/api/v1/organizations/{org['id']}/microsoft/status")
            assert status.status_code == 200, status.text
            assert status.json()["enabled"] is True and status.json()["health"] == "ok"
            members = http.get(f"/api/v1/organizations/{org['id']}/members").json()
            assert len(members) >= 10
            # The demo runs in the `granted` scope with Engineering granted: the picker offers it and nothing
            # else of the tenant, and another tenant group is out of reach.
            picker = http.get(f"/api/v1/organizations/{org['id']}/microsoft/groups").json()["items"]
            assert [item["displayName"] for item in picker] == ["Engineering"]
            vpn = next(
                g["id"] for g in default_seed()["tenants"][0]["groups"] if g["displayName"] == "VPN Users"
            )
            refused = http.post(
                f"/api/v1/organizations/{org['id']}/microsoft/link-group",
                json={"groupId": vpn},
                headers={"X-CSRF-Token": session.json()["csrfToken"]},
            )
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "microsoft_group_out_of_scope"

        # The demo's Microsoft 365 is eventually consistent, as Microsoft's is: the emulator's default profile.
        emulator = re.search(r"offline emulator \((https://127\.0\.0\.1:\d+), tenant ", text)
        assert emulator, text
        control = EmulatorControl(emulator.group(1), tmp_path / "demo" / "emulator" / "ca.pem")
        try:
            consistency = control.consistency()
        finally:
            control.close()
        assert consistency["lag_seconds"] == 1.0 and consistency["effective_lag_seconds"] > 0

        # The printed API token works on its own, and the printed CLI line reaches the demo's database.
        token = re.search(r"^Token\s+(equa_\S+)", text, re.M)
        cli = re.search(r"^CLI\s+(\S*equa) (--data-dir .+)$", text, re.M)
        assert token and cli, text
        with httpx.Client(base_url=base, timeout=10) as api:
            by_token = api.get(
                f"/api/v1/organizations/{org['id']}/microsoft/status",
                headers={"Authorization": f"Bearer {token.group(1)}"},
            )
            assert by_token.status_code == 200, by_token.text
        listed = subprocess.run(
            [cli.group(1), *cli.group(2).split()],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert re.search(
            r"\bdemo\s+" + re.escape(token.group(1)[:12]) + r"\S*\s.*\bactive$", listed.stdout, re.M
        )
    finally:
        process.terminate()
        try:
            rest, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
    # The terminal shows the app's own requests; Graph calls (httpx) only at DEBUG.
    log = "".join(output) + rest
    assert re.search(r'"GET /api/v1/organizations/\S+/microsoft/status HTTP/1.1" 200', log), log
    assert "HTTP Request:" not in log, log
