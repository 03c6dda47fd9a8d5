"""The command line: app/account commands against a temporary config and state dir, and
proof that a client secret never shows up anywhere."""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.secrets import verify_password

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SECRET = "Zk9~Qv_cli-client-secret-2b7e4d"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(*argv: str, stdin: str = "") -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cfg(bridge_config: Path) -> str:
    return str(bridge_config)


@pytest.fixture
def app_id(cfg: str, tmp_path: Path) -> str:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n", encoding="utf-8")
    result = run(
        "app",
        "add",
        "--config",
        cfg,
        "--name",
        "Contoso",
        "--tenant",
        "contoso.onmicrosoft.com",
        "--client-id",
        "11111111-2222-3333-4444-555555555555",
        "--secret-file",
        str(secret_file),
        "--id",
        "contoso",
        "--json",
    )
    assert result.code == 0, result.err
    data = result.json()
    assert isinstance(data, dict) and data["id"] == "contoso"
    assert data["credential"] == "secret" and data["secretEncrypted"] is True
    return "contoso"


def test_app_list_show_remove(cfg: str, app_id: str) -> None:
    listed = run("app", "list", "--config", cfg)
    assert listed.code == 0 and "contoso" in listed.out and "CLIENT ID" in listed.out
    shown = run("app", "show", app_id, "--config", cfg)
    assert "Tenant:      contoso.onmicrosoft.com" in shown.out
    as_json = run("app", "list", "--config", cfg, "--json").json()
    assert isinstance(as_json, dict) and as_json["total"] == 1
    rotated = run(
        "app",
        "update",
        app_id,
        "--config",
        cfg,
        "--name",
        "Renamed",
        "--secret-stdin",
        "--json",
        stdin="rotated-client-secret-1",
    )
    assert rotated.code == 0, rotated.err
    assert "rotated-client-secret-1" not in rotated.out + rotated.err
    data = rotated.json()
    assert isinstance(data, dict) and data["name"] == "Renamed" and data["secretUpdated"]
    assert run("app", "remove", app_id, "--config", cfg).code == 0
    missing = run("app", "show", app_id, "--config", cfg)
    assert missing.code == 1 and "no application with id 'contoso'" in missing.err


def test_account_add_prints_the_password_once(cfg: str, app_id: str, tmp_path: Path) -> None:
    added = run(
        "account",
        "add",
        "--config",
        cfg,
        "--app",
        app_id,
        "--user",
        "alice@contoso.com",
        "--id",
        "alice",
        "--send-as",
        "sales@contoso.com",
        "--send-as",
        "info@contoso.com",
        "--no-resolve",
    )
    assert added.code == 0, added.err
    password_line = next(x for x in added.out.splitlines() if x.startswith("Password:"))
    password = password_line.split()[-1]
    assert len(password) == 20
    assert "Login:       alice@contoso.com" in added.out and "shown only now" in added.out

    stored = (
        sqlite3.connect(tmp_path / "state" / "bridge.db")
        .execute("SELECT password_hash FROM accounts WHERE id = 'alice'")
        .fetchone()[0]
    )
    assert stored.startswith("scrypt$") and password not in stored
    assert verify_password(password, stored)

    for argv in (("account", "show", "alice"), ("account", "list"), ("account", "show", "alice")):
        for extra in ((), ("--json",)):
            result = run(*argv, "--config", cfg, *extra)
            assert result.code == 0
            assert password not in result.out and password not in result.err
            assert "alice@contoso.com" in result.out
    shown = run("account", "show", "alice", "--config", cfg, "--json").json()
    assert isinstance(shown, dict)
    assert shown["sendAs"] == ["sales@contoso.com", "info@contoso.com"]
    assert shown["state"] == "new" and "password" not in json.dumps(shown).lower()


def test_account_add_json_and_password_stdin(cfg: str, app_id: str) -> None:
    result = run(
        "account",
        "add",
        "--config",
        cfg,
        "--app",
        app_id,
        "--user",
        "bob@contoso.com",
        "--login",
        "bob",
        "--password-stdin",
        "--no-resolve",
        "--json",
        stdin="my-chosen-password\n",
    )
    assert result.code == 0, result.err
    data = result.json()
    assert isinstance(data, dict)
    assert data["credentials"] == {"login": "bob"}
    assert "my-chosen-password" not in result.out

    short = run(
        "account",
        "add",
        "--config",
        cfg,
        "--app",
        app_id,
        "--user",
        "c@contoso.com",
        "--password-stdin",
        "--no-resolve",
        stdin="short\n",
    )
    assert short.code == 2 and "shorter than 8" in short.err and "short\n" not in short.err


def test_account_update_set_password_remove(cfg: str, app_id: str, tmp_path: Path) -> None:
    run(
        "account",
        "add",
        "--config",
        cfg,
        "--app",
        app_id,
        "--user",
        "a@contoso.com",
        "--id",
        "a",
        "--no-resolve",
    )
    updated = run(
        "account",
        "update",
        "a",
        "--config",
        cfg,
        "--name",
        "Alice A",
        "--login",
        "alice",
        "--send-as",
        "x@contoso.com",
        "--json",
    )
    data = updated.json()
    assert isinstance(data, dict)
    assert (data["name"], data["login"], data["sendAs"]) == ("Alice A", "alice", ["x@contoso.com"])
    cleared = run("account", "update", "a", "--config", cfg, "--clear-send-as", "--json").json()
    assert isinstance(cleared, dict) and cleared["sendAs"] == []

    reset = run("account", "set-password", "a", "--config", cfg, "--json").json()
    assert isinstance(reset, dict)
    new_password = reset["password"]
    stored = (
        sqlite3.connect(tmp_path / "state" / "bridge.db")
        .execute("SELECT password_hash FROM accounts WHERE id = 'a'")
        .fetchone()[0]
    )
    assert verify_password(new_password, stored)

    assert run("account", "remove", "a", "--config", cfg).code == 0
    gone = run("account", "show", "a", "--config", cfg)
    assert gone.code == 1 and "no account with id 'a'" in gone.err


def test_duplicate_login_is_a_problem_not_a_crash(cfg: str, app_id: str) -> None:
    first = run(
        "account",
        "add",
        "--config",
        cfg,
        "--app",
        app_id,
        "--user",
        "u@contoso.com",
        "--no-resolve",
    )
    assert first.code == 0
    again = run(
        "account",
        "add",
        "--config",
        cfg,
        "--app",
        app_id,
        "--user",
        "U@contoso.com",
        "--no-resolve",
    )
    assert again.code == 1 and "already used by another account" in again.err


def test_config_errors_exit_2_with_the_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("state_dir: s\nimap:\n  port: abc\n", encoding="utf-8")
    result = run("app", "list", "--config", str(bad))
    assert result.code == 2
    assert f"{bad}:3: imap.port: expected an integer 1-65535" in result.err
    missing = run("account", "list", "--config", str(tmp_path / "none.yaml"))
    assert missing.code == 2 and "does not exist" in missing.err


def test_config_from_environment(cfg: str, app_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPH_MAIL_BRIDGE_CONFIG", cfg)
    result = run("app", "list", "--json")
    data = result.json()
    assert isinstance(data, dict) and data["apps"][0]["id"] == app_id


def test_usage_errors_exit_2() -> None:
    assert run("app", "add", "--name", "x").code == 2
    assert run("nonsense").code == 2
    assert run("--version").code == 0


def test_app_add_without_a_secret_is_a_usage_error(cfg: str) -> None:
    result = run(
        "app", "add", "--config", cfg, "--name", "n", "--tenant", "t.example", "--client-id", "c"
    )
    assert result.code == 2 and "--secret-file" in result.err


def test_account_add_keeps_the_account_when_graph_is_unreachable(cfg: str, tmp_path: Path) -> None:
    """Nothing listens on 127.0.0.1:9: the account is kept, state connectError, with a
    sentence, and the password is still shown (its only chance)."""
    secret_file = tmp_path / "s"
    secret_file.write_text(CLIENT_SECRET, encoding="utf-8")
    added_app = run(
        "app",
        "add",
        "--config",
        cfg,
        "--name",
        "Offline",
        "--tenant",
        "contoso.example",
        "--client-id",
        "c1",
        "--cloud",
        "custom",
        "--login-url",
        "https://127.0.0.1:9",
        "--graph-url",
        "https://127.0.0.1:9",
        "--secret-file",
        str(secret_file),
        "--id",
        "off",
    )
    assert added_app.code == 0, added_app.err
    result = run(
        "account",
        "add",
        "--config",
        cfg,
        "--app",
        "off",
        "--user",
        "z@contoso.example",
        "--id",
        "z",
        "--json",
    )
    assert result.code == 0, result.err
    data = result.json()
    assert isinstance(data, dict)
    assert data["account"]["state"] in ("connectError", "authenticationError")
    assert data["account"]["lastError"]["message"]
    assert len(data["credentials"]["password"]) == 20
    assert CLIENT_SECRET not in result.out + result.err
    listed = run("account", "show", "z", "--config", cfg, "--json").json()
    assert isinstance(listed, dict) and listed["state"] == data["account"]["state"]


def test_client_secret_never_appears_anywhere(tmp_path: Path, encryption_key: str) -> None:
    """Run the real command (`python -m bridge`) through every app command, with debug
    logging, in text and JSON, including failing ones, and search all output and the
    database for the secret."""
    (tmp_path / "key").write_text(encryption_key, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "state_dir: state\nlogging:\n  level: debug\nsecrets:\n  encryption_key_file: key\n",
        encoding="utf-8",
    )
    env = {**os.environ, "BRIDGE_TEST_SECRET": CLIENT_SECRET, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "bridge"]
    transcripts: list[str] = []

    def cli(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*base, *argv, "--config", str(config)],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        transcripts.append(proc.stdout + proc.stderr)
        return proc

    add = ["app", "add", "--name", "C", "--tenant", "contoso.example", "--client-id", "c"]
    assert cli(*add, "--secret-env", "BRIDGE_TEST_SECRET", "--id", "one").returncode == 0
    assert cli(*add, "--secret-stdin", "--id", "two", "--json", stdin=CLIENT_SECRET).returncode == 0
    # Failures while the secret is loaded: duplicate id, bad tenant, bad cloud combination.
    assert cli(*add, "--secret-env", "BRIDGE_TEST_SECRET", "--id", "one").returncode == 1
    bad_tenant = ["app", "add", "--name", "C", "--tenant", "common", "--client-id", "c"]
    assert cli(*bad_tenant, "--secret-stdin", stdin=CLIENT_SECRET).returncode == 1
    assert cli(*add, "--cloud", "custom", "--secret-stdin", stdin=CLIENT_SECRET).returncode == 1
    offline = [*add, "--cloud", "custom", "--login-url", "https://127.0.0.1:9"]
    offline += ["--graph-url", "https://127.0.0.1:9", "--id", "off"]
    assert cli(*offline, "--secret-env", "BRIDGE_TEST_SECRET").returncode == 0
    # Resolving through Graph (unreachable here) runs msal and the Graph client with
    # debug logging on.
    account = cli("account", "add", "--app", "off", "--user", "u@contoso.example", "--json")
    assert account.returncode == 0 and '"connectError"' in account.stdout
    for argv in (("app", "list"), ("app", "show", "one"), ("app", "show", "two")):
        assert cli(*argv).returncode == 0
        assert cli(*argv, "--json").returncode == 0
    everything = "\n".join(transcripts)
    assert "already exists" in everything and "common" in everything
    assert CLIENT_SECRET not in everything
    raw = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
    assert CLIENT_SECRET.encode() not in raw
