"""Configuration: the example file is the defaults, and every mistake names file, line,
key and fix."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from bridge.config import (
    Config,
    ExpungeMode,
    PlaintextAuth,
    default_config,
    ensure_admin_token,
    load_config,
    plaintext_auth_allowed,
    secret_box,
)
from bridge.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"

WriteConfig = Callable[..., Path]


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_example_loads_and_equals_the_defaults() -> None:
    assert load_config(EXAMPLE) == default_config()


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        if "kind" not in f.metadata:
            continue
        sub = getattr(f.metadata["kind"], "cls", None)
        if sub is not None:
            keys += _leaf_keys(sub, f"{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def test_example_documents_every_key_with_a_comment() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    lines = text.splitlines()
    for key in _leaf_keys(Config):
        section, _, leaf = key.rpartition(".")
        if section:
            block = re.search(rf"(?ms)^{section}:\n(.*?)(?=^\S|\Z)", text)
            assert block is not None, f"section {section} missing from the example"
            assert re.search(rf"(?m)^  {leaf}:", block.group(1)), f"{key} not in the example"
        else:
            assert re.search(rf"(?m)^{leaf}:", text), f"{key} not in the example"
    # Every section has an explanatory comment right above it.
    for index, line in enumerate(lines):
        if re.match(r"^[a-z_]+:", line):
            assert lines[index - 1].startswith("#"), f"no comment above {line!r}"
    # The secret alternatives are documented too.
    for alt in ("token_file", "token_env", "encryption_key_file", "encryption_key_env"):
        assert alt in text


def test_empty_file_gives_defaults(write_config: WriteConfig, tmp_path: Path) -> None:
    config = load_config(write_config("state_dir: st\n"))
    assert config == default_config(tmp_path / "st")
    assert config.imap.host == "127.0.0.1" and config.imap.port == 1143
    assert config.imap.tls_port is None  # no certificate → no IMAPS listener
    assert config.limits.max_message_size == 35 * 1024 * 1024
    assert config.database_path == tmp_path / "st" / "bridge.db"


def test_typed_values_units_and_enums(write_config: WriteConfig) -> None:
    config = load_config(
        write_config(
            "sync:\n"
            "  poll_interval: 5m\n"
            "  background_poll_interval: 90\n"
            "  expunge_mode: trash\n"
            "  webhook_public_url: https://bridge.example.com/hooks/\n"
            "limits:\n"
            "  max_message_size: 10MB\n"
            "  idle_timeout: 1h\n"
            "imap:\n"
            "  allow_plaintext_auth: false\n"
            "smtp:\n"
            "  allow_plaintext_auth: true\n"
            "logging:\n"
            "  format: json\n"
            "  trace_accounts: [alice, bob]\n"
        )
    )
    assert config.sync.poll_interval == 300.0
    assert config.sync.background_poll_interval == 90.0
    assert config.sync.expunge_mode is ExpungeMode.TRASH
    assert config.sync.webhook_public_url == "https://bridge.example.com/hooks"
    assert config.limits.max_message_size == 10_000_000
    assert config.limits.idle_timeout == 3600.0
    assert config.imap.allow_plaintext_auth is PlaintextAuth.NEVER
    assert config.smtp.allow_plaintext_auth is PlaintextAuth.ALWAYS
    assert config.logging.trace_accounts == ("alice", "bob")


def test_wrong_type_names_file_line_key_and_fix(write_config: WriteConfig) -> None:
    path = write_config("# comment\nimap:\n  host: 127.0.0.1\n  port: abc\n")
    assert _error(path) == (
        f"{path}:4: imap.port: expected an integer 1-65535, got 'abc'. "
        "Fix: set imap.port to a port number such as 1143."
    )


def test_unknown_key_suggests_the_closest(write_config: WriteConfig) -> None:
    path = write_config("sync:\n  poll_intervall: 30s\n")
    message = _error(path)
    assert message.startswith(f"{path}:2: sync.poll_intervall: unknown key.")
    assert "did you mean sync.poll_interval?" in message


def test_unknown_top_level_key_without_close_match_lists_valid_keys(
    write_config: WriteConfig,
) -> None:
    message = _error(write_config("imap: {}\nzzz: 1\n"))
    assert ":2: zzz: unknown key." in message and "valid keys at the top level" in message
    assert "state_dir" in message


@pytest.mark.parametrize(
    ("yaml_text", "line", "key", "expected"),
    [
        ("sync:\n  expunge_mode: nuke\n", 2, "sync.expunge_mode", "one of delete, trash"),
        ("sync:\n  poll_interval: soon\n", 2, "sync.poll_interval", "a duration"),
        ("sync:\n  max_concurrency_per_mailbox: 9\n", 2, "sync.max_concurrency_per_mailbox", "1-4"),
        ("limits:\n  idle_timeout: 60\n", 2, "limits.idle_timeout", "at least 1800"),
        ("logging:\n  level: loud\n", 2, "logging.level", "one of trace, debug"),
        ("smtp:\n  tls_port: 70000\n", 2, "smtp.tls_port", "1-65535 or null"),
        ("imap:\n  starttls: maybe\n", 2, "imap.starttls", "true, false or null"),
        ("imap: 5\n", 1, "imap", "expected a mapping"),
        (
            "sync:\n  webhook_public_url: http://example.com/x\n",
            2,
            "sync.webhook_public_url",
            "https:// URL",
        ),
        (
            "allow_insecure_public_listen: yes please\n",
            1,
            "allow_insecure_public_listen",
            "true or false",
        ),
    ],
)
def test_bad_values(
    write_config: WriteConfig, yaml_text: str, line: int, key: str, expected: str
) -> None:
    path = write_config(yaml_text)
    message = _error(path)
    assert message.startswith(f"{path}:{line}: {key}: ")
    assert expected in message
    assert "Fix: " in message


def test_yaml_syntax_error_has_a_line(write_config: WriteConfig) -> None:
    path = write_config("imap:\n  port: 1143\n bad indentation: [\n")
    message = _error(path)
    assert message.startswith(f"{path}:") and "YAML syntax error" in message and "Fix:" in message


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.yaml")
    assert "does not exist" in message and "--config" in message


def test_two_forms_of_one_secret(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_TOKEN_FOR_TEST", "x" * 20)
    path = write_config(
        "admin:\n  token: abcdefghijklmnopqrstuvwxyz\n  token_env: ADMIN_TOKEN_FOR_TEST\n"
    )
    message = _error(path)
    assert message.startswith(f"{path}:3: admin.token: given more than once")
    assert "keep exactly one of admin.token, admin.token_file or admin.token_env" in message
    assert "abcdefghijklmnopqrstuvwxyz" not in message


def test_secret_from_file_and_env(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encryption_key: str
) -> None:
    (tmp_path / "token.txt").write_text("file-token-0123456789\n", encoding="utf-8")
    monkeypatch.setenv("BRIDGE_TEST_KEY", encryption_key)
    config = load_config(
        write_config(
            "admin:\n  token_file: token.txt\nsecrets:\n  encryption_key_env: BRIDGE_TEST_KEY\n"
        )
    )
    assert config.admin.token is not None
    assert config.admin.token.value == "file-token-0123456789"
    assert config.admin.token.source == f"file {tmp_path / 'token.txt'}"
    assert "file-token" not in repr(config)
    assert encryption_key not in repr(config)
    assert secret_box(config).encrypting


def test_secret_problems_never_echo_the_secret(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORT_KEY", "bm90LWEta2V5LWF0LWFsbA==")
    message = _error(write_config("secrets:\n  encryption_key_env: SHORT_KEY\n"))
    assert ":2: secrets.encryption_key_env: expected a base64-encoded 32-byte key" in message
    assert "bm90LWEta2V5" not in message and "environment variable SHORT_KEY" in message

    monkeypatch.delenv("MISSING_VAR", raising=False)
    message = _error(write_config("admin:\n  token_env: MISSING_VAR\n"))
    assert "admin.token_env: the environment variable MISSING_VAR is not set" in message

    message = _error(write_config("admin:\n  token_file: /nonexistent/token\n"))
    assert ":2: admin.token_file: cannot read /nonexistent/token" in message


def test_public_listener_without_tls_is_refused(write_config: WriteConfig) -> None:
    path = write_config("imap:\n  port: 1143\n  host: 0.0.0.0\n")
    message = _error(path)
    assert message.startswith(f"{path}:3: imap.host: 0.0.0.0 is not a loopback address")
    assert "allow_insecure_public_listen: true" in message and "tls.cert_file" in message


def test_public_listener_opt_in_warns(write_config: WriteConfig) -> None:
    config = load_config(
        write_config("allow_insecure_public_listen: true\nsmtp:\n  host: 192.0.2.10\n")
    )
    assert config.smtp.host == "192.0.2.10"
    assert len(config.warnings) == 1 and "smtp.host is 192.0.2.10" in config.warnings[0]


def test_tls_configured(write_config: WriteConfig, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    config = load_config(
        write_config("tls:\n  cert_file: both.pem\n  key_file: key.pem\nimap:\n  host: 0.0.0.0\n")
    )
    assert config.tls.enabled and config.tls.cert_file == tmp_path / "both.pem"
    assert config.imap.tls_port == 1993 and config.imap.starttls is True
    assert config.smtp.tls_port == 1465 and config.warnings == ()
    assert default_config(
        tmp_path, cert_file=tmp_path / "both.pem", key_file=tmp_path / "key.pem"
    ).imap.starttls


def test_tls_needs_both_files(write_config: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x", encoding="utf-8")
    message = _error(write_config("tls:\n  cert_file: cert.pem\n"))
    assert ":2: tls.key_file: missing" in message and "Fix:" in message
    message = _error(write_config("tls:\n  cert_file: missing.pem\n  key_file: cert.pem\n"))
    assert ":2: tls.cert_file: expected an existing readable file" in message


def test_starttls_without_certificate(write_config: WriteConfig) -> None:
    message = _error(write_config("smtp:\n  starttls: true\n"))
    assert ":2: smtp.starttls: STARTTLS needs a certificate" in message


def test_admin_token_generated_once_with_mode_0600(tmp_path: Path) -> None:
    config = default_config(tmp_path / "state")
    token = ensure_admin_token(config)
    path = tmp_path / "state" / "admin-token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(token) >= 32
    assert ensure_admin_token(config) == token


def test_plaintext_auth_policy() -> None:
    loop = PlaintextAuth.LOOPBACK
    assert plaintext_auth_allowed(loop, tls_active=False, peer_loopback=True)
    assert not plaintext_auth_allowed(loop, tls_active=False, peer_loopback=False)
    assert plaintext_auth_allowed(loop, tls_active=True, peer_loopback=False)
    assert not plaintext_auth_allowed(PlaintextAuth.NEVER, tls_active=False, peer_loopback=True)
    assert plaintext_auth_allowed(PlaintextAuth.ALWAYS, tls_active=False, peer_loopback=False)


def test_numeric_secret_is_not_echoed(write_config: WriteConfig) -> None:
    message = _error(write_config("admin:\n  token: 98765432109876543210\n"))
    assert ":2: admin.token: expected the secret as a string, got a number" in message
    assert "98765432109876543210" not in message
