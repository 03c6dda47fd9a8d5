"""The ``graph-mail-bridge`` command line (also ``python -m bridge``).

Subcommands: ``serve``, ``demo``, ``simulator``, ``check`` (delegated to ``bridge.app`` and
``bridge.simulator.cli``, imported only when used so the administrative commands work on
their own), and ``app add|list|show|update|remove`` / ``account add|list|show|update|remove|
set-password``, which work directly on the store in ``state_dir``.

Everything is non-interactive: secrets come from a file, an environment variable or
stdin, never from the command line (where ``ps`` and shell history would show them).
Output is human text, or JSON with ``--json``. A generated local password is printed
exactly once, by ``account add`` / ``account set-password``; nothing prints a client
secret.

Exit codes: 0 ok, 1 a problem was found (unknown id, conflict, Graph error), 2 usage or
configuration error (the ConfigError sentence goes to stderr).

May import everything; nothing imports it except ``bridge.__main__``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, cast

from bridge import __version__
from bridge.errors import BridgeError, ConfigError
from bridge.logsetup import redact, register_secret, setup_logging
from bridge.store import mailstate  # imported first: its tables exist before a Store opens

__all__ = ["CONFIG_ENV", "build_parser", "main"]

CONFIG_ENV = "GRAPH_MAIL_BRIDGE_CONFIG"
DEFAULT_CONFIG = "/etc/graph-mail-bridge/config.yaml"
MIN_PASSWORD_LENGTH = 8


class UsageError(BridgeError):
    """Wrong or missing options (exit code 2)."""


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help=f"configuration file (default: ${CONFIG_ENV} or {DEFAULT_CONFIG})",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    parser = argparse.ArgumentParser(
        prog="graph-mail-bridge",
        description="IMAP and SMTP submission on localhost for Microsoft 365 mailboxes, "
        "through Microsoft Graph.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("serve", parents=[common], help="run the bridge (the daemon)")
    commands.add_parser(
        "check",
        parents=[common],
        help="validate the config, tokens, roles and every mailbox; non-zero if anything is wrong",
    )

    demo = commands.add_parser(
        "demo",
        help="run the bridge against a built-in Graph simulator (no Microsoft account needed)",
    )
    demo.add_argument("--dir", metavar="PATH", help="state directory of the demo")
    demo.add_argument("--imap-port", type=int, metavar="PORT")
    demo.add_argument("--smtp-port", type=int, metavar="PORT")
    demo.add_argument("--http-port", type=int, metavar="PORT")
    demo.add_argument(
        "--settings-json",
        metavar="PATH",
        help="write host, ports, login, password and the simulator's address as JSON",
    )
    demo.add_argument(
        "--new-mail-interval",
        type=float,
        metavar="SECONDS",
        help="deliver a new demo message this often (default 60)",
    )

    commands.add_parser(
        "simulator",
        help="run the Graph simulator on its own (see `simulator --help`)",
        add_help=False,
    )

    _add_app_commands(commands, common)
    _add_account_commands(commands, common)
    return parser


def _add_app_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    app = commands.add_parser("app", help="OAuth2 applications (Entra app registrations)")
    sub = app.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = sub.add_parser("add", parents=[common], help="register an application")
    add.add_argument("--name", required=True, help="a name for people")
    add.add_argument(
        "--tenant", required=True, help="tenant id (GUID) or verified domain (the 'authority')"
    )
    add.add_argument("--client-id", required=True, help="application (client) id")
    add.add_argument(
        "--cloud", default="global", choices=["global", "gcc-high", "dod", "china", "custom"]
    )
    add.add_argument("--login-url", help="custom cloud: token endpoint host, https://...")
    add.add_argument("--graph-url", help="custom cloud: Graph root, https://...")
    add.add_argument("--ca-file", help="custom cloud: extra CA certificates (PEM)")
    add.add_argument("--id", help="application id (default: a random short id)")
    _add_credential_options(add)

    sub.add_parser("list", parents=[common], help="list applications")
    show = sub.add_parser("show", parents=[common], help="show one application")
    show.add_argument("id")
    update = sub.add_parser(
        "update", parents=[common], help="rename an application or rotate its secret/certificate"
    )
    update.add_argument("id")
    update.add_argument("--name", help="a new name")
    _add_credential_options(update)
    remove = sub.add_parser("remove", parents=[common], help="remove an unused application")
    remove.add_argument("id")


def _add_credential_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--secret-file", metavar="PATH", help="file holding the client secret")
    source.add_argument("--secret-env", metavar="NAME", help="environment variable holding it")
    source.add_argument("--secret-stdin", action="store_true", help="read it from stdin")
    source.add_argument(
        "--certificate-key-file", metavar="PATH", help="PEM private key of a certificate"
    )
    parser.add_argument(
        "--certificate-thumbprint", help="SHA-1 thumbprint (hex) of that certificate"
    )


def _add_account_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    account = commands.add_parser("account", help="accounts (local login → mailbox)")
    sub = account.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = sub.add_parser("add", parents=[common], help="add an account")
    add.add_argument("--id", help="account id (default: a random short id)")
    add.add_argument("--name", help="display name")
    add.add_argument("--email", help="the mailbox's primary address")
    add.add_argument("--app", required=True, help="application id")
    add.add_argument("--user", required=True, help="mailbox: UPN, address or object id")
    add.add_argument("--login", help="local login name (default: the email address)")
    add.add_argument(
        "--send-as",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="an extra address this account may send as (repeatable)",
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the local password from stdin instead of generating one",
    )
    add.add_argument(
        "--no-resolve",
        action="store_true",
        help="do not look the mailbox up in Graph now (offline use)",
    )

    sub.add_parser("list", parents=[common], help="list accounts")
    show = sub.add_parser("show", parents=[common], help="show one account")
    show.add_argument("id")

    update = sub.add_parser("update", parents=[common], help="change an account")
    update.add_argument("id")
    update.add_argument("--name")
    update.add_argument("--email")
    update.add_argument("--login")
    update.add_argument("--user", help="another mailbox (the account is resolved again)")
    update.add_argument(
        "--send-as",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="replace the send-as list (repeatable)",
    )
    update.add_argument("--clear-send-as", action="store_true", help="empty the send-as list")

    remove = sub.add_parser("remove", parents=[common], help="remove an account")
    remove.add_argument("id")

    setpw = sub.add_parser(
        "set-password", parents=[common], help="set a new local password (printed once)"
    )
    setpw.add_argument("id")
    setpw.add_argument("--password-stdin", action="store_true")


# --------------------------------------------------------------------------- plumbing


class _Output:
    def __init__(self, as_json: bool, out: IO[str], err: IO[str]) -> None:
        self.as_json, self.out, self.err = as_json, out, err

    def emit(self, data: Any, text: str) -> None:
        if self.as_json:
            self.out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            self.out.write(text.rstrip("\n") + "\n")


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def _read_secret(args: argparse.Namespace, stdin: IO[str]) -> str | None:
    if args.secret_file:
        try:
            value = Path(args.secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(
                f"cannot read --secret-file {args.secret_file} "
                f"({exc.strerror or exc.__class__.__name__})."
            ) from None
        source = f"--secret-file {args.secret_file}"
    elif args.secret_env:
        value = os.environ.get(args.secret_env, "").strip()
        source = f"--secret-env {args.secret_env}"
    elif args.secret_stdin:
        value = stdin.read().strip()
        source = "stdin"
    else:
        return None
    if not value:
        raise UsageError(f"the client secret from {source} is empty.")
    register_secret(value)
    return value


def _read_credential(
    args: argparse.Namespace, stdin: IO[str]
) -> tuple[str | None, str | None, str | None]:
    """(client secret, certificate key PEM, thumbprint) from the options; all may be None."""
    secret = _read_secret(args, stdin)
    if not (args.certificate_key_file or args.certificate_thumbprint):
        return secret, None, None
    if not (args.certificate_key_file and args.certificate_thumbprint):
        raise UsageError(
            "a certificate needs both --certificate-key-file and --certificate-thumbprint."
        )
    try:
        key_pem = Path(args.certificate_key_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read --certificate-key-file {args.certificate_key_file} "
            f"({exc.strerror or exc.__class__.__name__})."
        ) from None
    register_secret(key_pem.strip())
    return secret, key_pem, args.certificate_thumbprint.replace(":", "").upper()


def _read_password(stdin: IO[str]) -> str:
    line = stdin.readline().rstrip("\r\n")
    register_secret(line)
    if len(line) < MIN_PASSWORD_LENGTH:
        raise UsageError(
            f"the password from stdin is shorter than {MIN_PASSWORD_LENGTH} characters."
        )
    return line


def _run(result: Any) -> Any:
    """Run what a lazily imported entry point returned, whether sync or async."""
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _exit_code(result: Any) -> int:
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


# --------------------------------------------------------------------------- commands


def _entry(name: str) -> Callable[..., Any]:
    """``bridge.app.<name>``, imported only now: the administrative commands must work
    without the daemon's dependencies being importable."""
    module = importlib.import_module("bridge.app")
    function = getattr(module, name, None)
    if function is None:
        raise BridgeError(f"this installation has no `{name}` command (bridge.app.{name}).")
    return cast(Callable[..., Any], function)


def _cmd_serve(args: argparse.Namespace, out: _Output, stdin: IO[str]) -> int:
    return _exit_code(_run(_entry("serve")(_config_path(args))))


def _cmd_check(args: argparse.Namespace, out: _Output, stdin: IO[str]) -> int:
    return _exit_code(_run(_entry("check")(_config_path(args))))


def _cmd_demo(args: argparse.Namespace, out: _Output, stdin: IO[str]) -> int:
    return _exit_code(_run(_entry("demo")(args)))


class _StoreSession:
    """Config, store and sealer for one administrative command."""

    def __init__(self, args: argparse.Namespace, log_stream: IO[str]) -> None:
        from bridge.config import load_config, secret_box
        from bridge.store import (
            Store,
            accounts,  # registers the accounts migrations
        )

        self.accounts = accounts
        self.config = load_config(_config_path(args))
        # Commands print their own results; log lines only for warnings, unless the
        # config asks for debug/trace output while troubleshooting.
        level = self.config.logging.level
        verbose = level in ("debug", "trace")
        setup_logging(level if verbose else "warning", self.config.logging.format, log_stream)
        self.sealer = secret_box(self.config)
        try:
            self.store = Store.open_sync(self.config.database_path)
        except (OSError, sqlite3.Error) as exc:
            where = self.config.source or "the configuration"
            raise ConfigError(
                f"{where}: state_dir: cannot open the database {self.config.database_path} "
                f"({exc}). Fix: create {self.config.state_dir} and make it writable for this "
                "user, or point state_dir at a writable directory."
            ) from None

    def read(self, fn: Callable[[Any], Any]) -> Any:
        return self.store.read_sync(fn)

    def write(self, fn: Callable[[Any], Any]) -> Any:
        return self.store.write_sync(fn)

    def close(self) -> None:
        self.store.close_sync()


def _app_text(app: dict[str, Any]) -> str:
    rows = [
        ("Application", app["id"]),
        ("Name", app["name"]),
        ("Cloud", app["cloud"]),
        ("Tenant", app["authority"]),
        ("Client id", app["clientId"]),
        ("Credential", app["credential"]),
    ]
    if app["certificateThumbprint"]:
        rows.append(("Thumbprint", app["certificateThumbprint"]))
    rows.append(("Encrypted", "yes" if app["secretEncrypted"] else "no (no encryption key)"))
    for key, label in (("loginUrl", "Login URL"), ("graphUrl", "Graph URL"), ("caFile", "CA file")):
        if app[key]:
            rows.append((label, app[key]))
    rows.append(("Created", app["created"]))
    return "\n".join(f"{label + ':':<13}{value}" for label, value in rows)


def _account_text(account: dict[str, Any]) -> str:
    rows = [
        ("Account", account["account"]),
        ("Name", account["name"]),
        ("Email", account["email"]),
        ("Application", account["oauth2"]["provider"]),
        ("Mailbox", account["oauth2"]["auth"]["user"]),
        ("Login", account["login"]),
        ("Send as", ", ".join(account["sendAs"]) or "-"),
        ("State", account["state"]),
    ]
    if account["lastError"]:
        rows.append(
            ("Last error", f"{account['lastError']['message']} ({account['lastError']['time']})")
        )
    if account["mailboxId"]:
        rows.append(("Mailbox id", account["mailboxId"]))
    sync = account.get("sync")
    if sync is not None:
        state = (
            "complete"
            if sync["folders"] and sync["foldersSynced"] == sync["folders"]
            else ("not started" if not sync["folders"] else "in progress")
        )
        rows.append(
            (
                "Sync",
                f"{state}: {sync['foldersSynced']}/{sync['folders']} folders, "
                f"{sync['messages']} messages, {sync['bodiesCached']} bodies cached",
            )
        )
    rows.append(("Created", account["created"]))
    return "\n".join(f"{label + ':':<13}{value}" for label, value in rows)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _cmd_app(args: argparse.Namespace, out: _Output, stdin: IO[str]) -> int:
    from bridge.http.admin import app_json

    session = _StoreSession(args, out.err)
    acc = session.accounts
    try:
        if args.action == "add":
            secret, key_pem, thumbprint = _read_credential(args, stdin)
            if secret is None and key_pem is None:
                raise UsageError(
                    "give the client secret with --secret-file, --secret-env or --secret-stdin, "
                    "or a certificate with --certificate-key-file and --certificate-thumbprint."
                )
            ca_file = str(Path(args.ca_file).resolve()) if args.ca_file else None
            app = session.write(
                lambda db: acc.create_app(
                    db,
                    name=args.name,
                    client_id=args.client_id,
                    tenant_id=args.tenant,
                    sealer=session.sealer,
                    cloud=args.cloud,
                    client_secret=secret,
                    certificate_key_pem=key_pem,
                    certificate_thumbprint=thumbprint,
                    login_url=args.login_url,
                    graph_url=args.graph_url,
                    ca_file=ca_file,
                    app_id=args.id,
                )
            )
            data = app_json(app)
            note = (
                ""
                if app.secret_encrypted
                else "\nNote: no secrets.encryption_key is configured, so the "
                f"{app.credential_kind} is stored unencrypted in {session.config.database_path}."
            )
            out.emit(data, f"Added application {app.id}.\n{_app_text(data)}{note}")
        elif args.action == "list":
            apps = session.read(acc.list_apps)
            app_list = [app_json(a) for a in apps]
            rows = [
                [a.id, a.name, a.cloud, a.tenant_id, a.client_id, a.credential_kind] for a in apps
            ]
            text = (
                _table(["ID", "NAME", "CLOUD", "TENANT", "CLIENT ID", "CREDENTIAL"], rows)
                if rows
                else "No applications. Add one with `graph-mail-bridge app add`."
            )
            out.emit({"apps": app_list, "total": len(app_list)}, text)
        elif args.action == "show":
            app = session.read(lambda db: acc.get_app(db, args.id))
            out.emit(app_json(app), _app_text(app_json(app)))
        elif args.action == "update":
            secret, key_pem, thumbprint = _read_credential(args, stdin)
            app = session.write(
                lambda db: acc.update_app(
                    db,
                    args.id,
                    sealer=session.sealer,
                    name=args.name,
                    client_secret=secret,
                    certificate_key_pem=key_pem,
                    certificate_thumbprint=thumbprint,
                )
            )
            data = app_json(app)
            out.emit(data, f"Updated application {app.id}.\n{_app_text(data)}")
        elif args.action == "remove":
            session.write(lambda db: acc.delete_app(db, args.id))
            out.emit({"id": args.id, "deleted": True}, f"Removed application {args.id}.")
        return 0
    finally:
        session.close()


def _resolve(session: _StoreSession, account: Any) -> tuple[Any, str | None]:
    """Look the mailbox up in Graph through bridge.app; never fails the command."""
    try:
        from bridge.app import resolve_account_mailbox

        resolved = _run(resolve_account_mailbox(session.store, session.config, account))
    except Exception as exc:  # whatever broke, the account stays and says why
        detail = redact(str(exc)).strip().rstrip(".") or exc.__class__.__name__
        message = f"Graph could not be reached to resolve the mailbox ({detail})."
        resolved = session.write(
            lambda db: session.accounts.set_account_state(
                db, account.id, session.accounts.AccountState.CONNECT_ERROR, message
            )
        )
        return resolved, message
    if resolved is None:
        resolved = session.read(lambda db: session.accounts.get_account(db, account.id))
    return resolved, resolved.last_error


def _cmd_account(args: argparse.Namespace, out: _Output, stdin: IO[str]) -> int:
    from bridge.http.admin import account_json
    from bridge.secrets import generate_password, hash_password

    session = _StoreSession(args, out.err)
    acc = session.accounts
    try:
        if args.action == "add":
            password = _read_password(stdin) if args.password_stdin else generate_password()
            register_secret(password)
            account_id = args.id or acc.new_app_id()
            email = args.email or (args.user if "@" in args.user else None)
            login = args.login or email or account_id
            password_hash = hash_password(password)
            account = session.write(
                lambda db: acc.create_account(
                    db,
                    account_id=account_id,
                    app_id=args.app,
                    auth_user=args.user,
                    login=login,
                    password_hash=password_hash,
                    name=args.name,
                    email=email,
                    send_as=args.send_as,
                )
            )
            problem = None
            if not args.no_resolve:
                account, problem = _resolve(session, account)
            data: dict[str, Any] = {"account": account_json(account)}
            lines = [f"Added account {account.id}.", _account_text(account_json(account))]
            if args.password_stdin:
                data["credentials"] = {"login": account.login}
            else:
                data["credentials"] = {"login": account.login, "password": password}
                lines += [
                    "",
                    f"Login:       {account.login}",
                    f"Password:    {password}",
                    "This password is shown only now: enter it in the mail client. "
                    "`graph-mail-bridge account set-password` sets a new one.",
                ]
            if problem:
                lines.append(
                    f"The mailbox could not be resolved: {problem} The account is kept; the "
                    "bridge tries again when it starts."
                )
            out.emit(data, "\n".join(lines))
        elif args.action == "list":
            accounts = session.read(acc.list_accounts)
            data_list = [account_json(a) for a in accounts]
            rows = [[a.id, a.login, a.auth_user, a.app_id, a.state.value] for a in accounts]
            text = (
                _table(["ID", "LOGIN", "MAILBOX", "APP", "STATE"], rows)
                if rows
                else "No accounts. Add one with `graph-mail-bridge account add`."
            )
            out.emit({"accounts": data_list, "total": len(data_list)}, text)
        elif args.action == "show":
            account = session.read(lambda db: acc.get_account(db, args.id))
            data = account_json(account)
            data["sync"] = session.read(lambda db: mailstate.sync_progress(db, account.id))
            out.emit(data, _account_text(data))
        elif args.action == "update":
            send_as = [] if args.clear_send_as else args.send_as
            account = session.write(
                lambda db: acc.update_account(
                    db,
                    args.id,
                    name=args.name,
                    email=args.email,
                    login=args.login,
                    send_as=send_as,
                    auth_user=args.user,
                )
            )
            out.emit(
                account_json(account),
                f"Updated account {account.id}.\n{_account_text(account_json(account))}",
            )
        elif args.action == "remove":
            session.write(lambda db: acc.delete_account(db, args.id))
            out.emit({"account": args.id, "deleted": True}, f"Removed account {args.id}.")
        elif args.action == "set-password":
            session.read(lambda db: acc.get_account(db, args.id))
            password = _read_password(stdin) if args.password_stdin else generate_password()
            register_secret(password)
            password_hash = hash_password(password)
            session.write(lambda db: acc.set_password_hash(db, args.id, password_hash))
            if args.password_stdin:
                out.emit({"account": args.id}, f"Set a new password for account {args.id}.")
            else:
                out.emit(
                    {"account": args.id, "password": password},
                    f"New password for account {args.id}: {password}\n"
                    "This password is shown only now.",
                )
        return 0
    finally:
        session.close()


_COMMANDS: dict[str, Callable[[argparse.Namespace, _Output, IO[str]], int]] = {
    "serve": _cmd_serve,
    "check": _cmd_check,
    "demo": _cmd_demo,
    "app": _cmd_app,
    "account": _cmd_account,
}


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[str] | None = None,
) -> int:
    """Entry point of ``graph-mail-bridge``; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    out_stream = stdout or sys.stdout
    err_stream = stderr or sys.stderr
    in_stream = stdin or sys.stdin
    if args_list and args_list[0] == "simulator":
        # The simulator has its own options; hand it everything after the word.
        from bridge.simulator.cli import main as simulator_main

        return _exit_code(simulator_main(args_list[1:]))
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    out = _Output(getattr(args, "json", False), out_stream, err_stream)
    try:
        return _COMMANDS[args.command](args, out, in_stream)
    except ConfigError as exc:
        err_stream.write(f"graph-mail-bridge: {redact(str(exc))}\n")
        return 2
    except UsageError as exc:
        err_stream.write(f"graph-mail-bridge: {redact(str(exc))}\n")
        return 2
    except BridgeError as exc:
        err_stream.write(f"graph-mail-bridge: {redact(str(exc))}\n")
        return 1
    except KeyboardInterrupt:
        return 130
