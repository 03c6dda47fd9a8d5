"""Thunderbird against ``graph-mail-bridge demo`` (pytest runs it through
``test_thunderbird.py``; it can also be run by hand, keeping its work directory):

    python -m tests.clients.thunderbird_check [--keep DIR] [--timeout SECONDS]

Needs Debian's ``thunderbird`` (``.ci/run`` installs it). What it does:

1. starts ``graph-mail-bridge demo`` on free loopback ports (``--settings-json``) and
   reads, over IMAP, every folder's Message-IDs as the bridge serves them;
2. prepares a fresh Thunderbird profile whose ``user.js`` holds one IMAP account pointing
   at the demo (plain IMAP on loopback, cleartext password) and the demo's SMTP server;
3. starts Thunderbird headless with Marionette (its remote protocol, on a free loopback
   port) and, in Thunderbird's chrome context, gives the account its password (in memory:
   the profile's password store is encrypted, so it cannot be prepared as a file), then
   lets Thunderbird discover the folders and download every message for offline use;
4. reads the folder files Thunderbird wrote under ``ImapMail/`` (mbox) and checks that
   every folder holds exactly the messages the bridge serves, byte for byte (after
   removing what Thunderbird adds: mbox separators and its ``X-Mozilla-*`` status
   headers), and that Thunderbird's own folder index lists the same Message-IDs;
5. stops Thunderbird and the demo. Exit status 0 when everything matched.

Imports only the standard library (it drives external programs).
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import imaplib
import json
import mailbox
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, what: str, timeout: float) -> Any:
    """Poll ``predicate`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


# --- the demo ---------------------------------------------------------------------------


@contextlib.contextmanager
def running_demo(work: Path, timeout: float) -> Iterator[dict[str, Any]]:
    settings_path = work / "settings.json"
    log = (work / "demo.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "demo",
            "--dir",
            str(work / "demo"),
            "--imap-port",
            "0",
            "--smtp-port",
            "0",
            "--http-port",
            "0",
            "--settings-json",
            str(settings_path),
            "--new-mail-interval",
            "0",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: proc.poll() is None and settings_path.exists() and settings_path.stat().st_size,
            "the demo's settings file",
            timeout,
        )
        yield json.loads(settings_path.read_text(encoding="utf-8"))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


_MID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def bridge_view(settings: dict[str, Any]) -> dict[str, dict[str, bytes]]:
    """Folder name -> Message-ID -> BODY[], as the bridge serves them over IMAP."""
    account = settings["accounts"][0]
    imap = imaplib.IMAP4(settings["imap"]["host"], settings["imap"]["port"], timeout=60)
    try:
        imap.login(account["login"], account["password"])
        typ, listing = imap.list('""', "*")
        assert typ == "OK", listing
        view: dict[str, dict[str, bytes]] = {}
        for line in listing:
            assert isinstance(line, bytes)
            found = re.match(rb'\((?P<attrs>[^)]*)\) "/" "?(?P<name>.*?)"?$', line)
            assert found is not None, line
            if b"\\Noselect" in found.group("attrs"):
                continue
            name = found.group("name").decode()
            typ, data = imap.select(f'"{name}"', readonly=True)
            assert typ == "OK", data
            bodies: dict[str, bytes] = {}
            if int(data[0] or 0):
                typ, fetched = imap.fetch("1:*", "(BODY.PEEK[])")
                assert typ == "OK", fetched
                for item in fetched:
                    if isinstance(item, tuple):
                        mid = _MID.search(item[1])
                        bodies[mid.group(1).decode() if mid else ""] = item[1]
            view[name] = bodies
        return view
    finally:
        imap.logout()


# --- Thunderbird --------------------------------------------------------------------------


def write_profile(profile: Path, settings: dict[str, Any], marionette_port: int) -> None:
    """A profile with one IMAP account (and its SMTP server) pointing at the demo."""
    account = settings["accounts"][0]
    prefs = {
        "marionette.port": marionette_port,
        # No first-run dialogs, updates, telemetry or default-client checks.
        "app.update.enabled": False,
        "app.update.auto": False,
        "mail.shell.checkDefaultClient": False,
        "mail.provider.enabled": False,
        "mail.rights.version": 1,
        "mailnews.start_page.enabled": False,
        "toolkit.telemetry.reportingpolicy.firstRun": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "mail.biff.play_sound": False,
        "mail.biff.show_alert": False,
        # The account.
        "mail.accountmanager.accounts": "account1",
        "mail.accountmanager.defaultaccount": "account1",
        "mail.account.account1.server": "server1",
        "mail.account.account1.identities": "id1",
        "mail.server.server1.type": "imap",
        "mail.server.server1.name": f"{account['email']} (graph-mail-bridge demo)",
        "mail.server.server1.hostname": settings["imap"]["host"],
        "mail.server.server1.port": settings["imap"]["port"],
        "mail.server.server1.userName": account["login"],
        "mail.server.server1.socketType": 0,  # plain: the demo listens on loopback only
        "mail.server.server1.authMethod": 3,  # cleartext password
        "mail.server.server1.directory-rel": "[ProfD]ImapMail/bridge",
        "mail.server.server1.login_at_startup": False,  # the check logs in when ready
        "mail.server.server1.check_new_mail": False,
        "mail.server.server1.offline_download": True,
        "mail.server.server1.using_subscription": False,
        "mail.server.server1.storeContractID": "@mozilla.org/msgstore/berkeleystore;1",
        "mail.identity.id1.useremail": account["email"],
        "mail.identity.id1.fullName": "Alice Demo",
        "mail.identity.id1.smtpServer": "smtp1",
        "mail.smtpservers": "smtp1",
        "mail.smtp.defaultserver": "smtp1",
        "mail.smtpserver.smtp1.hostname": settings["smtp"]["host"],
        "mail.smtpserver.smtp1.port": settings["smtp"]["port"],
        "mail.smtpserver.smtp1.username": account["login"],
        "mail.smtpserver.smtp1.authMethod": 3,
        "mail.smtpserver.smtp1.try_ssl": 0,
    }
    profile.mkdir(parents=True)
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in prefs.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n", encoding="utf-8")


class Marionette:
    """The smallest Marionette client (protocol 3: ``length:json`` frames)."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.stream = self.sock.makefile("rb")
        self.next_id = 0
        hello = self._receive()
        assert hello.get("marionetteProtocol") == 3, hello

    def _receive(self) -> Any:
        size = b""
        while (ch := self.stream.read(1)) != b":":
            if not ch:
                raise SystemExit("Thunderbird closed the Marionette connection")
            size += ch
        return json.loads(self.stream.read(int(size)))

    def call(self, command: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        data = json.dumps([0, self.next_id, command, params]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        _, _, error, result = self._receive()
        if error:
            raise SystemExit(f"Marionette {command}: {error.get('message')}")
        return result

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


# Runs in Thunderbird's chrome context: give the account its password, discover the
# folders, refresh each one and download every message for offline use; answer what
# Thunderbird now has per folder.
SYNC_SCRIPT = r"""
const [password, done] = arguments;
(async () => {
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const server = MailServices.accounts.getIncomingServer("server1");
server.password = password;
function run(start) {
  return new Promise((resolve, reject) => {
    start({
      OnStartRunningUrl() {},
      OnStopRunningUrl(url, status) {
        if (Components.isSuccessCode(status)) resolve();
        else reject(new Error(`${url.spec}: 0x${(status >>> 0).toString(16)}`));
      },
      QueryInterface: ChromeUtils.generateQI(["nsIUrlListener"]),
    });
  });
}
const root = server.rootFolder;
await run(l => MailServices.imap.discoverAllFolders(root, l, null));
const out = [];
for (const folder of root.descendants) {
  if (folder.getFlag(Ci.nsMsgFolderFlags.ImapNoselect)) continue;
  const imapFolder = folder.QueryInterface(Ci.nsIMsgImapMailFolder);
  await run(l => imapFolder.updateFolderWithListener(null, l));
  if (folder.getTotalMessages(false) > 0) {
    await run(l => folder.downloadAllForOffline(l, null));
  }
  const ids = [];
  for (const hdr of folder.messages) ids.push(`<${hdr.messageId}>`);
  out.push({
    name: imapFolder.onlineName,
    total: folder.getTotalMessages(false),
    ids,
    path: folder.filePath.path,
  });
}
return { folders: out };
})().then(done, error => done({ error: String(error) }));
"""


@dataclass
class FolderResult:
    name: str
    total: int
    ids: list[str]
    path: str


@contextlib.contextmanager
def running_thunderbird(profile: Path, port: int, timeout: float) -> Iterator[Marionette]:
    binary = shutil.which("thunderbird")
    if binary is None:
        raise SystemExit("thunderbird is not installed (apt-get install thunderbird)")
    log = (profile.parent / "thunderbird.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-remote",
            "--marionette",
            "-remote-allow-system-access",
            "-profile",
            str(profile),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"},
    )
    client: Marionette | None = None
    try:

        def connect() -> Marionette | None:
            if proc.poll() is not None:
                raise SystemExit(f"thunderbird exited with {proc.returncode}")
            try:
                return Marionette(port, timeout)
            except OSError:
                return None

        client = wait_until(connect, "Thunderbird's Marionette port", timeout)
        client.call("WebDriver:NewSession", {})
        client.call("Marionette:SetContext", {"value": "chrome"})
        client.call("WebDriver:SetTimeouts", {"script": int(timeout * 1000)})
        yield client
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.call("Marionette:Quit", {"flags": ["eForceQuit"]})
            client.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()


_MOZILLA_HEADERS = re.compile(rb"\A(?:X-Mozilla-[A-Za-z0-9-]+: [^\n]*\n)+")


def mbox_messages(path: Path) -> dict[str, bytes]:
    """Message-ID -> the message as received, from one of Thunderbird's mbox files.

    Thunderbird writes ``From -`` separator lines, prepends its own ``X-Mozilla-*``
    status headers and ends each message with one extra line end; everything between
    is the message as the server sent it. Those additions are removed here."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    out: dict[str, bytes] = {}
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():  # iterating a Mailbox yields messages, not keys
            data = _MOZILLA_HEADERS.sub(b"", box.get_bytes(key), count=1)
            for ending in (b"\r\n", b"\n"):
                if data.endswith(ending + ending):
                    data = data[: -len(ending)]
                    break
            headers = parser.parsebytes(data)
            out[str(headers.get("Message-ID", "")).strip()] = data
    finally:
        box.close()
    return out


def check(work: Path, timeout: float) -> list[str]:
    """Run the whole check; answer the list of problems (empty: all good)."""
    problems: list[str] = []
    with running_demo(work, timeout) as settings:
        expected = bridge_view(settings)
        port = free_port()
        profile = work / "profile"
        write_profile(profile, settings, port)
        with running_thunderbird(profile, port, timeout) as tb:
            raw = tb.call(
                "WebDriver:ExecuteAsyncScript",
                {"script": SYNC_SCRIPT, "args": [settings["accounts"][0]["password"]]},
            )["value"]
            if "error" in raw:
                raise SystemExit(f"Thunderbird could not sync: {raw['error']}")
            folders = [FolderResult(**f) for f in raw["folders"]]
    seen = {f.name for f in folders}
    for name in expected:
        if name not in seen:
            problems.append(f"Thunderbird has no folder {name!r}")
    for folder in folders:
        want = expected.get(folder.name)
        if want is None:
            problems.append(f"Thunderbird shows {folder.name!r}, which the bridge does not list")
            continue
        if sorted(folder.ids) != sorted(want):
            problems.append(f"{folder.name}: Thunderbird's index differs from the bridge")
        path = Path(folder.path)
        if want and not path.exists():
            problems.append(f"{folder.name}: no offline store file {path}")
            continue
        stored = mbox_messages(path) if path.exists() else {}
        if sorted(stored) != sorted(want):
            problems.append(
                f"{folder.name}: {len(stored)} messages in {path.name}, bridge has {len(want)}"
            )
        for mid, body in want.items():
            if mid in stored and stored[mid] != body:
                problems.append(f"{folder.name}: {mid} differs from the bridge's BODY[]")
        print(f"{folder.name:30} bridge {len(want):4}  thunderbird {len(stored):4}")
    if not any(expected.values()):
        problems.append("the demo mailbox is empty; nothing was checked")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (logs, profile)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per step (seconds)")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=False)
        problems = check(args.keep, args.timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="gmb-thunderbird-") as tmp:
            problems = check(Path(tmp), args.timeout)
    for problem in problems:
        print(f"FAIL: {problem}")
    print("OK: Thunderbird downloaded exactly what the bridge serves" if not problems else "")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
