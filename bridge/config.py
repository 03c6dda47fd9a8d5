"""Server configuration: the YAML file, its schema, and the typed frozen objects it becomes.

Theory of operation. The file is parsed with PyYAML's safe loader, but composed into a node
tree first (``yaml.compose``) so every value keeps the line it came from. The schema is the
dataclasses below: each field's ``metadata["kind"]`` says what it accepts, and the loader
walks the node tree against it. Any mistake raises ``ConfigError`` with one sentence an
operator can act on::

    config.yaml:12: imap.port: expected an integer 1-65535, got 'abc'.
    Fix: set imap.port to a port number such as 1143.

Secrets (``admin.token``, ``secrets.encryption_key``) may be given as the value itself,
``<key>_file`` (a path, e.g. a systemd ``LoadCredential=`` file) or ``<key>_env`` (an
environment variable name) — exactly one. They are read at load time, registered for log
redaction, and held in ``Secret`` objects whose repr never shows the value.

Cross-field rules checked after the walk: TLS needs both cert and key; a listener on a
non-loopback address without TLS is refused unless ``allow_insecure_public_listen`` is true
(then it is a warning in ``Config.warnings`` and the log).

May import the standard library, PyYAML, ``bridge.errors``, ``bridge.secrets`` and
``bridge.logsetup``; nothing from the protocol layers.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import ipaddress
import logging
import os
import re
import secrets as _stdlib_secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from bridge.errors import ConfigError
from bridge.logsetup import register_secret
from bridge.secrets import SecretBox, decode_key

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STATE_DIR",
    "AdminConfig",
    "Config",
    "ExpungeMode",
    "HttpListen",
    "ImapListen",
    "LimitsConfig",
    "LoggingConfig",
    "PlaintextAuth",
    "Secret",
    "SecretsConfig",
    "SmtpListen",
    "SyncConfig",
    "TlsConfig",
    "default_config",
    "ensure_admin_token",
    "is_loopback_host",
    "load_config",
    "plaintext_auth_allowed",
    "secret_box",
]

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH: Final = Path("/etc/graph-mail-bridge/config.yaml")
DEFAULT_STATE_DIR: Final = Path("/var/lib/graph-mail-bridge")
ADMIN_TOKEN_FILE: Final = "admin-token"
DATABASE_FILE: Final = "bridge.db"


# --------------------------------------------------------------------------- values


class PlaintextAuth(enum.Enum):
    """When LOGIN / AUTH PLAIN may be used on a connection that is not encrypted."""

    ALWAYS = "always"  # YAML true
    NEVER = "never"  # YAML false: only after STARTTLS or on the TLS port
    LOOPBACK = "loopback"  # only when the peer is on the same host


class ExpungeMode(enum.Enum):
    """What IMAP EXPUNGE does in Graph."""

    DELETE = "delete"  # DELETE /messages/{id}: Graph moves it to Recoverable Items
    TRASH = "trash"  # move to Deleted Items (the IMAP \\Trash folder)
    PERMANENT = "permanent"  # POST /messages/{id}/permanentDelete (global cloud only)


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret loaded from the config. ``source`` says where it came from, for messages."""

    value: str = field(repr=False)
    source: str = "config value"

    def __str__(self) -> str:
        return f"<secret from {self.source}>"


def _kind(kind: _Kind) -> dict[str, Any]:
    """Field metadata: the loader reads ``metadata["kind"]`` to parse the key."""
    return {"kind": kind}


class _Bad(Exception):
    """A value failed its kind's check: what was expected and how to fix it."""

    def __init__(self, expected: str, fix: str) -> None:
        super().__init__(expected)
        self.expected = expected
        self.fix = fix


class _Kind:
    """What a config key accepts. ``parse`` returns the typed value or raises ``_Bad``."""

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        raise _Bad("a valid value", f"see config.example.yaml for {key}.")


class _Int(_Kind):
    def __init__(self, lo: int, hi: int | None, example: int, nullable: bool = False) -> None:
        self.lo, self.hi, self.example, self.nullable = lo, hi, example, nullable

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is None and self.nullable:
            return None
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and value >= self.lo and (self.hi is None or value <= self.hi):
            return value
        rng = f"{self.lo}-{self.hi}" if self.hi is not None else f">= {self.lo}"
        null = " or null" if self.nullable else ""
        raise _Bad(f"an integer {rng}{null}", f"set {key} to a number such as {self.example}.")


class _Port(_Int):
    def __init__(self, example: int, nullable: bool = False) -> None:
        super().__init__(1, 65535, example, nullable)

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        try:
            return super().parse(value, key, ctx)
        except _Bad as bad:
            null = " (or null to disable this listener)" if self.nullable else ""
            raise _Bad(
                bad.expected, f"set {key} to a port number such as {self.example}{null}."
            ) from None


class _Bool(_Kind):
    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if isinstance(value, bool):
            return value
        raise _Bad("true or false", f"set {key} to true or false (without quotes).")


class _AutoBool(_Kind):
    """true, false, or null meaning 'decided from other settings'."""

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is None or isinstance(value, bool):
            return value
        raise _Bad("true, false or null", f"set {key} to true, false or null (automatic).")


_HOSTNAME = re.compile(
    r"(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


class _Host(_Kind):
    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if isinstance(value, str) and value:
            try:
                ipaddress.ip_address(value)
                return value
            except ValueError:
                if _HOSTNAME.fullmatch(value):
                    return value
        raise _Bad(
            "an IP address or host name",
            f"set {key} to 127.0.0.1 (this host only) or the address to listen on.",
        )


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class _Duration(_Kind):
    def __init__(self, example: str, minimum: float = 0.0) -> None:
        self.example, self.minimum = example, minimum

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        seconds: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and (m := _DURATION.fullmatch(value)):
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        if seconds is not None and seconds >= self.minimum:
            return seconds
        low = f" of at least {self.minimum:g} s" if self.minimum else ""
        raise _Bad(
            f'a duration{low} (seconds, or a string like "30s", "5m", "1h")',
            f"set {key} to a duration such as {self.example}.",
        )


_SIZE = re.compile(r"(?i)\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*")
_SIZE_UNITS: Final = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


class _Size(_Kind):
    def __init__(self, example: str) -> None:
        self.example = example

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str) and (m := _SIZE.fullmatch(value)):
            size = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower() if m.group(2) else None]
            if size > 0:
                return size
        raise _Bad(
            'a size in bytes, or a string like "35MiB"',
            f"set {key} to a size such as {self.example}.",
        )


class _Choice(_Kind):
    def __init__(self, enum_cls: type[enum.Enum]) -> None:
        self.enum_cls = enum_cls

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        for member in self.enum_cls:
            if value == member.value:
                return member
        names = ", ".join(str(m.value) for m in self.enum_cls)
        raise _Bad(f"one of {names}", f"set {key} to one of: {names}.")


class _Words(_Kind):
    def __init__(self, *words: str) -> None:
        self.words = words

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if isinstance(value, str) and value.lower() in self.words:
            return value.lower()
        names = ", ".join(self.words)
        raise _Bad(f"one of {names}", f"set {key} to one of: {names}.")


class _PlaintextAuthKind(_Kind):
    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is True:
            return PlaintextAuth.ALWAYS
        if value is False:
            return PlaintextAuth.NEVER
        if value == "loopback":
            return PlaintextAuth.LOOPBACK
        raise _Bad(
            'true, false or "loopback"',
            f'set {key} to "loopback" (allowed without TLS only for connections from this '
            "host), true (always) or false (only over TLS).",
        )


class _StrList(_Kind):
    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is None:
            return ()
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        raise _Bad("a list of strings", f"set {key} to a list such as [alice, bob] or [].")


class _PathKind(_Kind):
    def __init__(self, example: str, nullable: bool = True, must_exist: bool = False) -> None:
        self.example, self.nullable, self.must_exist = example, nullable, must_exist

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is None and self.nullable:
            return None
        if not isinstance(value, str) or not value:
            null = " or null" if self.nullable else ""
            raise _Bad(f"a file path{null}", f"set {key} to a path such as {self.example}.")
        path = ctx.resolve(value)
        if self.must_exist and not path.is_file():
            raise _Bad(
                f"an existing readable file (no file at {path})",
                f"create the file or correct the path in {key}.",
            )
        return path


class _Url(_Kind):
    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            m = re.fullmatch(r"(https?)://([^/:\s]+|\[[0-9a-fA-F:]+\])(:\d+)?(/\S*)?", value)
            if m and (m.group(1) == "https" or is_loopback_host(m.group(2).strip("[]"))):
                return value.rstrip("/")
        raise _Bad(
            "an https:// URL or null (Graph delivers notifications only over HTTPS)",
            f"set {key} to the public https:// address that reaches this bridge's HTTP "
            "listener, or null to poll only.",
        )


class _SecretKind(_Kind):
    """Marker: accepted as ``key``, ``key_file`` or ``key_env``; the loader handles it."""

    def __init__(self, validate: Callable[[str], None] | None = None, fix: str = "") -> None:
        self.validate, self.fix = validate, fix


class _Section(_Kind):
    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True, slots=True)
class ImapListen:
    host: str = field(default="127.0.0.1", metadata=_kind(_Host()))
    port: int = field(default=1143, metadata=_kind(_Port(1143)))
    # Implicit TLS (RFC 8314 §3.3). None when disabled or when no certificate is configured.
    tls_port: int | None = field(default=1993, metadata=_kind(_Port(1993, nullable=True)))
    # RFC 3501 §6.2.1. Resolved at load: null in the file means "on when tls is configured".
    starttls: bool = field(default=False, metadata=_kind(_AutoBool()))
    allow_plaintext_auth: PlaintextAuth = field(
        default=PlaintextAuth.LOOPBACK, metadata=_kind(_PlaintextAuthKind())
    )


@dataclass(frozen=True, slots=True)
class SmtpListen:
    host: str = field(default="127.0.0.1", metadata=_kind(_Host()))
    port: int = field(default=1587, metadata=_kind(_Port(1587)))
    tls_port: int | None = field(default=1465, metadata=_kind(_Port(1465, nullable=True)))
    starttls: bool = field(default=False, metadata=_kind(_AutoBool()))
    allow_plaintext_auth: PlaintextAuth = field(
        default=PlaintextAuth.LOOPBACK, metadata=_kind(_PlaintextAuthKind())
    )
    # A retry of a send whose outcome is unknown (the bridge died, or Graph did not
    # answer) waits this long for the message to show up in Sent Items before it is sent
    # again; until then the client gets 451 and retries later.
    unconfirmed_send_wait: float = field(default=120.0, metadata=_kind(_Duration("2m", 1.0)))


@dataclass(frozen=True, slots=True)
class HttpListen:
    """Webhooks, admin API, /metrics and /health share this one listener (plain HTTP;
    put a TLS-terminating reverse proxy in front for anything public)."""

    host: str = field(default="127.0.0.1", metadata=_kind(_Host()))
    port: int = field(default=8025, metadata=_kind(_Port(8025)))


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: Path | None = field(
        default=None, metadata=_kind(_PathKind("/etc/graph-mail-bridge/cert.pem", must_exist=True))
    )
    key_file: Path | None = field(
        default=None, metadata=_kind(_PathKind("/etc/graph-mail-bridge/key.pem", must_exist=True))
    )

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None and self.key_file is not None


@dataclass(frozen=True, slots=True)
class SyncConfig:
    poll_interval: float = field(default=30.0, metadata=_kind(_Duration("30s", 1.0)))
    background_poll_interval: float = field(default=300.0, metadata=_kind(_Duration("5m", 1.0)))
    webhook_public_url: str | None = field(default=None, metadata=_kind(_Url()))
    prefetch_days: int = field(default=7, metadata=_kind(_Int(0, 36500, 7)))
    body_cache_mb: int = field(default=2048, metadata=_kind(_Int(0, None, 2048)))
    expunge_mode: ExpungeMode = field(
        default=ExpungeMode.DELETE, metadata=_kind(_Choice(ExpungeMode))
    )
    hidden_folders: bool = field(default=False, metadata=_kind(_Bool()))
    # Graph allows 4 concurrent requests per mailbox per app (facts §4.1); more only
    # earns 429s.
    max_concurrency_per_mailbox: int = field(default=4, metadata=_kind(_Int(1, 4, 4)))
    # Graph's limit is 10,000 requests per 10 minutes per mailbox per app; stay under it.
    request_budget: int = field(default=9000, metadata=_kind(_Int(1, 10000, 9000)))
    request_budget_window: float = field(default=600.0, metadata=_kind(_Duration("10m", 1.0)))


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = field(
        default="info", metadata=_kind(_Words("trace", "debug", "info", "warning", "error"))
    )
    format: str = field(default="text", metadata=_kind(_Words("text", "json")))
    trace_accounts: tuple[str, ...] = field(default=(), metadata=_kind(_StrList()))


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_connections: int = field(default=1000, metadata=_kind(_Int(1, None, 1000)))
    max_connections_per_address: int = field(default=100, metadata=_kind(_Int(1, None, 100)))
    max_message_size: int = field(default=35 * 1024 * 1024, metadata=_kind(_Size("35MiB")))
    # RFC 3501 §5.4: the autologout timer must be at least 30 minutes.
    idle_timeout: float = field(default=1860.0, metadata=_kind(_Duration("31m", 1800.0)))


def _check_token(value: str) -> None:
    if len(value) < 16:
        raise _Bad(
            "an admin token of at least 16 characters",
            "use a long random token, e.g. the output of `openssl rand -base64 32`.",
        )


def _check_key(value: str) -> None:
    try:
        decode_key(value)
    except ValueError as exc:
        raise _Bad(
            f"a base64-encoded 32-byte key ({exc})",
            "generate one with `openssl rand -base64 32` or "
            '`python -c "import bridge.secrets as s; print(s.generate_key())"`.',
        ) from None


@dataclass(frozen=True, slots=True)
class AdminConfig:
    # None: a token is generated into <state_dir>/admin-token (see ensure_admin_token).
    token: Secret | None = field(default=None, metadata=_kind(_SecretKind(_check_token)))


@dataclass(frozen=True, slots=True)
class SecretsConfig:
    # None: client secrets are stored unencrypted and `check` warns.
    encryption_key: Secret | None = field(default=None, metadata=_kind(_SecretKind(_check_key)))

    @property
    def key_bytes(self) -> bytes | None:
        return decode_key(self.encryption_key.value) if self.encryption_key else None


@dataclass(frozen=True, slots=True)
class Config:
    imap: ImapListen = field(default_factory=ImapListen, metadata=_kind(_Section(ImapListen)))
    smtp: SmtpListen = field(default_factory=SmtpListen, metadata=_kind(_Section(SmtpListen)))
    http: HttpListen = field(default_factory=HttpListen, metadata=_kind(_Section(HttpListen)))
    tls: TlsConfig = field(default_factory=TlsConfig, metadata=_kind(_Section(TlsConfig)))
    allow_insecure_public_listen: bool = field(default=False, metadata=_kind(_Bool()))
    state_dir: Path = field(
        default=DEFAULT_STATE_DIR,
        metadata=_kind(_PathKind(str(DEFAULT_STATE_DIR), nullable=False)),
    )
    sync: SyncConfig = field(default_factory=SyncConfig, metadata=_kind(_Section(SyncConfig)))
    logging: LoggingConfig = field(
        default_factory=LoggingConfig, metadata=_kind(_Section(LoggingConfig))
    )
    limits: LimitsConfig = field(
        default_factory=LimitsConfig, metadata=_kind(_Section(LimitsConfig))
    )
    admin: AdminConfig = field(default_factory=AdminConfig, metadata=_kind(_Section(AdminConfig)))
    secrets: SecretsConfig = field(
        default_factory=SecretsConfig, metadata=_kind(_Section(SecretsConfig))
    )
    # Where this config came from (None for default_config) and the warnings loading it
    # produced; not part of equality so a loaded file can be compared with the defaults.
    source: Path | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def database_path(self) -> Path:
        return self.state_dir / DATABASE_FILE

    @property
    def admin_token_path(self) -> Path:
        return self.state_dir / ADMIN_TOKEN_FILE


# --------------------------------------------------------------------------- helpers


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_auth_allowed(policy: PlaintextAuth, *, tls_active: bool, peer_loopback: bool) -> bool:
    """May a client send a password on this connection? Over TLS always (RFC 8314 §3);
    in clear only as ``policy`` allows."""
    if tls_active or policy is PlaintextAuth.ALWAYS:
        return True
    return policy is PlaintextAuth.LOOPBACK and peer_loopback


def secret_box(config: Config) -> SecretBox:
    """The sealer for secrets at rest, keyed by ``secrets.encryption_key`` (or clear)."""
    return SecretBox(config.secrets.key_bytes)


def ensure_admin_token(config: Config) -> str:
    """The admin API token: configured, or read from / generated into
    ``<state_dir>/admin-token`` (mode 0600). Logs the file's path, never the token."""
    if config.admin.token is not None:
        return config.admin.token.value
    path = config.admin_token_path
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            register_secret(token)
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = _stdlib_secrets.token_urlsafe(32)
    # O_EXCL + 0600 at creation: the token is never readable by others, even briefly.
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.replace(tmp, path)
    register_secret(token)
    log.info("generated an admin API token", extra={"path": str(path)})
    return token


def default_config(
    state_dir: Path | str = DEFAULT_STATE_DIR,
    *,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> Config:
    """All defaults, with ``state_dir`` and optionally a TLS certificate (used by ``demo``
    and tests). Resolved exactly as a file with only those keys would be."""
    config = Config(state_dir=Path(state_dir), tls=TlsConfig(cert_file, key_file))
    return _resolve_tls_listeners(config, frozenset({"imap", "smtp"}))


def _resolve_tls_listeners(config: Config, auto_starttls: frozenset[str]) -> Config:
    """Without a certificate there is no implicit-TLS port and no STARTTLS; with one,
    STARTTLS is on for the listeners in ``auto_starttls`` (key absent or null)."""
    listeners: dict[str, Any] = {}
    for name in ("imap", "smtp"):
        section = getattr(config, name)
        if not config.tls.enabled:
            listeners[name] = dataclasses.replace(section, tls_port=None, starttls=False)
        elif name in auto_starttls or section.starttls is None:
            listeners[name] = dataclasses.replace(section, starttls=True)
    return dataclasses.replace(config, **listeners)


# --------------------------------------------------------------------------- loader


class _Context:
    def __init__(self, file: Path, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.base_dir = file.parent
        self.loader = loader
        self.warnings: list[str] = []

    def resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def error(self, node: yaml.Node | None, key: str, message: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ConfigError(f"{self.file}{line}: {key}: {message}")

    def bad(self, node: yaml.Node, key: str, bad: _Bad, got: Any) -> ConfigError:
        shown = _describe(got)
        return self.error(node, key, f"expected {bad.expected}, got {shown}. Fix: {bad.fix}")

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_SECRET_SUFFIXES: Final = ("", "_file", "_env")


def _accepted_keys(cls: type[Any]) -> dict[str, tuple[str, str]]:
    """Map every key the file may use to (field name, form)."""
    keys: dict[str, tuple[str, str]] = {}
    for f in dataclasses.fields(cls):
        if "kind" not in f.metadata:
            continue
        if isinstance(f.metadata["kind"], _SecretKind):
            for suffix in _SECRET_SUFFIXES:
                keys[f.name + suffix] = (f.name, suffix)
        else:
            keys[f.name] = (f.name, "")
    return keys


def _load_section(
    node: yaml.Node, cls: type[Any], prefix: str, ctx: _Context
) -> tuple[Any, dict[str, yaml.Node]]:
    """Build ``cls`` from a mapping node; also return the node of each key given."""
    if not isinstance(node, yaml.MappingNode):
        where = prefix or "the top level"
        got = _describe(ctx.value(node))
        fix = (
            f"write {prefix} as a mapping of keys (see config.example.yaml)."
            if prefix
            else "the file must be a mapping of sections such as imap:, smtp:, sync:."
        )
        raise ctx.error(node, where, f"expected a mapping, got {got}. Fix: {fix}")
    accepted = _accepted_keys(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    given: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = ctx.value(key_node)
        path = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(key, str):
            raise ctx.error(key_node, path, "keys must be strings. Fix: remove or rename it.")
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.6)
            where = f"in {prefix}" if prefix else "at the top level"
            hint = (
                f"did you mean {prefix + '.' if prefix else ''}{close[0]}?"
                if close
                else f"valid keys {where}: {', '.join(sorted(accepted))}."
            )
            raise ctx.error(
                key_node, path, f"unknown key. Fix: {hint} Remove the key if it is not needed."
            )
        if key in given:
            raise ctx.error(key_node, path, "given twice. Fix: keep one of the two lines.")
        given[key] = (key_node, value_node)

    values: dict[str, Any] = {}
    nodes: dict[str, yaml.Node] = {}
    for name, f in fields.items():
        kind = f.metadata.get("kind")
        if kind is None:
            continue
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(kind, _SecretKind):
            # "token: null" means "not given", so it does not count as a second form.
            forms = [
                (name + s, s)
                for s in _SECRET_SUFFIXES
                if name + s in given and ctx.value(given[name + s][1]) is not None
            ]
            if len(forms) > 1:
                second = given[forms[1][0]][0]
                listed = " and ".join(f"{prefix}.{k}" for k, _ in forms)
                raise ctx.error(
                    second,
                    path,
                    f"given more than once ({listed}). Fix: keep exactly one of "
                    f"{path}, {path}_file or {path}_env.",
                )
            if forms:
                key, suffix = forms[0]
                key_node, value_node = given[key]
                values[name] = _load_secret(value_node, f"{prefix}.{key}", suffix, kind, ctx)
                nodes[name] = key_node
            continue
        if name not in given:
            continue
        key_node, value_node = given[name]
        nodes[name] = key_node
        if isinstance(kind, _Section):
            if isinstance(value_node, yaml.ScalarNode) and ctx.value(value_node) is None:
                continue  # "imap:" with nothing under it means all defaults
            values[name], sub_nodes = _load_section(value_node, kind.cls, path, ctx)
            for sub, sub_node in sub_nodes.items():
                nodes[f"{name}.{sub}"] = sub_node
            continue
        raw = ctx.value(value_node)
        try:
            values[name] = kind.parse(raw, path, ctx)
        except _Bad as bad:
            raise ctx.bad(value_node, path, bad, raw) from None
    # _AutoBool fields may be None here; _finish resolves them before anything reads them.
    return cls(**values), nodes


def _load_secret(
    node: yaml.Node, key: str, suffix: str, kind: _SecretKind, ctx: _Context
) -> Secret:
    raw = ctx.value(node)
    if suffix == "":
        if not isinstance(raw, str) or not raw:
            # A number may be the secret itself: say what it is, never show it.
            got = "a number" if isinstance(raw, (int, float)) else _describe(raw)
            raise ctx.error(
                node,
                key,
                f"expected the secret as a string, got {got}. "
                f"Fix: quote the value, or better use {key}_file or {key}_env.",
            )
        value, source = raw, "config value"
    elif suffix == "_file":
        if not isinstance(raw, str) or not raw:
            raise ctx.error(
                node,
                key,
                f"expected a file path, got {_describe(raw)}. "
                f"Fix: set {key} to the path of a file that holds only the secret.",
            )
        path = ctx.resolve(raw)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ctx.error(
                node,
                key,
                f"cannot read {path} ({exc.strerror or exc.__class__.__name__}). "
                "Fix: create the file, correct the path, or give the bridge's user read access.",
            ) from None
        if not value:
            raise ctx.error(node, key, f"{path} is empty. Fix: write the secret into the file.")
        source = f"file {path}"
    else:
        if not isinstance(raw, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", raw):
            raise ctx.error(
                node,
                key,
                f"expected an environment variable name, got {_describe(raw)}. "
                f"Fix: set {key} to a name such as GRAPH_MAIL_BRIDGE_SECRET.",
            )
        env_value = os.environ.get(raw, "").strip()
        if not env_value:
            raise ctx.error(
                node,
                key,
                f"the environment variable {raw} is not set or empty. "
                f"Fix: export {raw} before starting the bridge, or use another form of the secret.",
            )
        value, source = env_value, f"environment variable {raw}"
    register_secret(value)
    if kind.validate is not None:
        try:
            kind.validate(value)
        except _Bad as bad:
            # Never echo the secret itself: name where it came from instead.
            raise ctx.error(
                node, key, f"expected {bad.expected}, got the value from {source}. Fix: {bad.fix}"
            ) from None
    return Secret(value=value, source=source)


def _finish(config: Config, nodes: dict[str, yaml.Node], ctx: _Context) -> Config:
    """Cross-field rules and automatic values."""
    tls = config.tls
    if (tls.cert_file is None) != (tls.key_file is None):
        given, missing = (
            ("cert_file", "key_file") if tls.key_file is None else ("key_file", "cert_file")
        )
        raise ctx.error(
            nodes.get(f"tls.{given}"),
            f"tls.{missing}",
            f"missing: tls.{given} is set, and TLS needs both a certificate and its key. "
            f"Fix: set tls.{missing}, or remove tls.{given} to run without TLS.",
        )
    for name in ("imap", "smtp"):
        if not tls.enabled and getattr(config, name).starttls is True:
            raise ctx.error(
                nodes.get(f"{name}.starttls"),
                f"{name}.starttls",
                "STARTTLS needs a certificate, and tls.cert_file is not set. "
                f"Fix: set tls.cert_file and tls.key_file, or set {name}.starttls to null.",
            )
    auto = frozenset(n for n in ("imap", "smtp") if f"{n}.starttls" not in nodes)
    config = _resolve_tls_listeners(config, auto)
    warnings = list(ctx.warnings)
    for name in ("imap", "smtp", "http"):
        host = getattr(config, name).host
        encrypted = tls.enabled and name != "http"
        if is_loopback_host(host) or encrypted:
            continue
        what = "plain HTTP (admin API, webhooks)" if name == "http" else "without TLS"
        if not config.allow_insecure_public_listen:
            fix = (
                "keep http.host on 127.0.0.1 and put a TLS reverse proxy in front"
                if name == "http"
                else "set tls.cert_file and tls.key_file"
            )
            raise ctx.error(
                nodes.get(f"{name}.host"),
                f"{name}.host",
                f"{host} is not a loopback address and would serve {what}, so passwords "
                f"would cross the network in clear. Fix: {fix}, or set "
                "allow_insecure_public_listen: true if the network is trusted.",
            )
        warnings.append(
            f"{name}.host is {host}, not loopback, and serves {what} because "
            "allow_insecure_public_listen is true."
        )
    for warning in warnings:
        log.warning("config: %s", warning)
    return dataclasses.replace(config, warnings=tuple(warnings))


def load_config(path: Path | str) -> Config:
    """Read, validate and resolve the YAML config at ``path``; ``ConfigError`` on mistakes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: the configuration file does not exist. Fix: pass --config with the path "
            "of your config file (start from config.example.yaml)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the configuration file ({exc}). "
            "Fix: check the path and that the file is readable UTF-8 text."
        ) from None
    loader = yaml.SafeLoader(text)
    ctx = _Context(path, loader)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark else ""
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError(
                f"{path}{line}: YAML syntax error: {problem}. Fix: correct the indentation "
                "or quoting on that line (values with ':' or '#' need quotes)."
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: YAML error: {exc}. Fix: correct the file.") from None
        if root is None:
            config, nodes = Config(), dict[str, yaml.Node]()
        else:
            config, nodes = _load_section(root, Config, "", ctx)
        if "state_dir" not in nodes and os.environ.get("STATE_DIRECTORY"):
            # systemd's StateDirectory= exports the directory it created for us.
            state = Path(os.environ["STATE_DIRECTORY"].split(":")[0])
            config = dataclasses.replace(config, state_dir=state)
        config = _finish(config, nodes, ctx)
    finally:
        loader.dispose()
    return dataclasses.replace(config, source=path)
