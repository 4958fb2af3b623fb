"""`equa demo --multi-tenant`: two tenants and two organizations, one connected and one ready to connect."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_multi_tenant_demo_connects_one_organization_and_prints_how_to_connect_the_other(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_", "EQUA_"))}
    equa = Path(sys.executable).with_name("equa")
    process = subprocess.Popen(
        [str(equa), "demo", "--multi-tenant", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
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
        tenant_admin = re.search(r"^\s+Tenant admin\s+(\S+)", text, re.M)
        assert email and password and tenant_admin, text
        assert tenant_admin.group(1) == "admin@fabrikam.onmicrosoft.com"
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
            csrf = {"X-CSRF-Token": session.json()["csrfToken"]}
            orgs = {org["name"]: org["id"] for org in http.get("/api/v1/organizations").json()}
            assert set(orgs) == {"Contoso (demo)", "Fabrikam (demo)"}
            contoso = http.get(f"/api/v1/organizations/{orgs['Contoso (demo)']}/microsoft/status").json()
            assert contoso["connection"] == "connected" and contoso["tenantName"] == "Contoso"
            assert contoso["health"] == "ok"
            fabrikam = http.get(f"/api/v1/organizations/{orgs['Fabrikam (demo)']}/microsoft/status").json()
            assert fabrikam["connection"] == "not_connected"
            started = http.post(
                f"/api/v1/organizations/{orgs['Fabrikam (demo)']}/microsoft/connect", headers=csrf
            )
            assert started.status_code == 200, started.text
            # The consent page asks for the tenant administrator's sign-in.
            page = httpx.get(started.json()["consentUrl"], verify=False, timeout=10)
            assert page.status_code == 200 and "Sign in" in page.text
        cli = re.search(r"^CLI\s+(\S*equa) (--data-dir .+)$", text, re.M)
        assert cli, text
        listed = subprocess.run(
            [cli.group(1), *cli.group(2).split()],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert "Contoso (demo)" in listed.stdout and "connected" in listed.stdout
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
