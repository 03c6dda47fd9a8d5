"""The HTTP control API, the CLI, persistence, and the import rule."""

from __future__ import annotations

import ast
import base64
import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bridge.simulator import Simulator
from bridge.simulator.cli import main

from .conftest import MsalHttpClient
from .test_messages import mime

if TYPE_CHECKING:
    from tests.conftest import SimTenant

ROOT = Path(__file__).resolve().parents[2]


def _client(sim: Simulator) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(sim.ca_file)), timeout=30)


def test_http_control_api(tenant: SimTenant) -> None:
    sim = tenant.sim
    base = f"{sim.base_url}/_sim"
    with _client(sim) as c:
        assert c.get(f"{base}/health").json()["ok"] is True
        r = c.post(
            f"{base}/users/{tenant.alice.id}/deliver",
            json={"mime_base64": base64.b64encode(mime("via http")).decode(), "is_read": True},
        )
        mid = r.json()["id"]
        msgs = c.get(
            f"{base}/users/{tenant.alice.mail}/messages", params={"folder": "inbox"}
        ).json()
        assert [m["id"] for m in msgs["value"]] == [mid]
        assert msgs["value"][0]["isRead"] is True
        assert (
            c.patch(
                f"{base}/users/{tenant.alice.id}/messages/{mid}", json={"flagged": True}
            ).status_code
            == 204
        )
        assert sim.messages(tenant.alice)[0]["flag"]["flagStatus"] == "flagged"
        assert c.get(f"{base}/users/{tenant.alice.id}/messages/{mid}/mime").content == mime(
            "via http"
        )
        fid = c.post(f"{base}/users/{tenant.alice.id}/folders", json={"name": "Ctl"}).json()["id"]
        names = [
            f["displayName"]
            for f in c.get(f"{base}/users/{tenant.alice.id}/folders").json()["value"]
        ]
        assert "Ctl" in names
        assert (
            c.post(
                f"{base}/users/{tenant.alice.id}/messages/{mid}/move", json={"folder": fid}
            ).json()["id"]
            == mid
        )
        faults = c.patch(f"{base}/faults", json={"latency": 0.01}).json()
        assert faults["latency"] == 0.01
        assert c.patch(f"{base}/faults", json={"nonsense": 1}).status_code == 400
        assert c.delete(f"{base}/faults").status_code == 204
        assert sim.faults.latency == 0.0
        counters = c.get(f"{base}/users/{tenant.alice.id}/counters").json()
        assert set(counters) == {"requests", "max_concurrency", "throttled", "in_flight", "by_kind"}
        assert c.get(f"{base}/users/nobody@nowhere.example/folders").status_code == 404
        assert c.post(f"{base}/expire-tokens").status_code == 204


def test_cli_help_and_print_only(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "bridge.simulator", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0 and "--state-dir" in out.stdout
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "tenant: {domain: demo.example}\n"
        "app: {secret: s3cret-value}\n"
        "users:\n  - upn: alice@demo.example\n"
        "  - {upn: desk@demo.example, shared: true, send_as: [alice@demo.example]}\n"
    )
    state = tmp_path / "state"
    assert main(["--state-dir", str(state), "--seed", str(seed), "--print-only"]) == 0
    settings = json.loads(capsys.readouterr().out)
    assert settings["client_secret"] == "s3cret-value"
    assert settings["users"] == ["alice@demo.example", "desk@demo.example"]
    assert Path(settings["ca_file"]).exists()
    # A restart keeps the tenant, app, mail and (when free) the port.
    assert main(["--state-dir", str(state), "--seed", str(seed), "--print-only"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["tenant_id"] == settings["tenant_id"]
    assert again["client_id"] == settings["client_id"]
    assert again["login_url"] == settings["login_url"]
    sim = Simulator(state_dir=state, persist=True)
    assert len(sim.messages("alice@demo.example")) == 1
    assert sim.messages("alice@demo.example")[0]["subject"] == "Welcome to the Graph simulator"
    sim.stop()
    assert main(["--host", "0.0.0.0", "--print-only"]) == 2


def test_persistence_round_trip(tmp_path: Path) -> None:
    sim = Simulator(state_dir=tmp_path, persist=True)
    sim.start()
    t = sim.add_tenant("persist.example")
    app = sim.add_app(t.id)
    u = sim.add_user(t.id, "p@persist.example")
    mid = sim.deliver(u, mime("kept"))
    sim.set_categories(u, mid, ["Green"])
    sim.stop()
    again = Simulator(state_dir=tmp_path, persist=True)
    again.start()
    try:
        [m] = again.messages("p@persist.example")
        assert m["id"] == mid and m["categories"] == ["Green"]
        assert again.mime(u, mid) == mime("kept")
        http = MsalHttpClient(str(again.ca_file))
        r = http.post(
            f"{again.base_url}/{t.id}/oauth2/v2.0/token",
            data={
                "client_id": app.client_id,
                "client_secret": app.secret,
                "grant_type": "client_credentials",
                "scope": f"{again.graph_url}/.default",
            },
        )
        http.close()
        assert r.status_code == 200
    finally:
        again.stop()


def test_simulator_imports_nothing_from_the_bridge() -> None:
    for path in (ROOT / "bridge" / "simulator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert not name.startswith("bridge") or name.startswith("bridge.simulator"), (
                    path,
                    name,
                )
