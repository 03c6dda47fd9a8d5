"""SMTP clients for the submission tests: smtplib (in a thread), swaks and msmtp.

The server runs in the test's event loop, so blocking clients run in a worker thread
(smtplib) or as subprocesses (swaks, msmtp) awaited with asyncio.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the client saw at the end of the transaction."""

    code: int
    text: str


def _smtplib_send(
    port: int,
    login: tuple[str, str] | None,
    mail_from: str,
    rcpts: Sequence[str],
    data: bytes,
    *,
    mail_options: Sequence[str] = (),
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
) -> Outcome:
    client: smtplib.SMTP
    if implicit_tls is not None:
        client = smtplib.SMTP_SSL("127.0.0.1", port, timeout=60, context=implicit_tls)
    else:
        client = smtplib.SMTP("127.0.0.1", port, timeout=60)
    try:
        client.ehlo("client.example")
        if starttls is not None:
            client.starttls(context=starttls)
            client.ehlo("client.example")
        if login is not None:
            try:
                client.login(*login)
            except smtplib.SMTPAuthenticationError as error:
                return Outcome(error.smtp_code, error.smtp_error.decode())
        code, text = client.mail(mail_from, list(mail_options))
        if code != 250:
            return Outcome(code, text.decode())
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code not in (250, 251):
                return Outcome(code, text.decode())
        code, text = client.data(data)
        return Outcome(code, text.decode())
    finally:
        try:
            client.quit()
        except smtplib.SMTPException:
            client.close()


async def smtplib_send(
    port: int,
    login: tuple[str, str] | None,
    mail_from: str,
    rcpts: Sequence[str],
    data: bytes,
    *,
    mail_options: Sequence[str] = (),
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
) -> Outcome:
    def send() -> Outcome:
        return _smtplib_send(
            port,
            login,
            mail_from,
            rcpts,
            data,
            mail_options=mail_options,
            starttls=starttls,
            implicit_tls=implicit_tls,
        )

    return await asyncio.to_thread(send)


@dataclass(frozen=True, slots=True)
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str


async def run(
    argv: Sequence[str], stdin: bytes | None = None, timeout: float = 90
) -> ProcessResult:
    process = await asyncio.create_subprocess_exec(
        *argv,
        # With no input, stdin must be closed: communicate(None) leaves a pipe open.
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout=timeout)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(
            f"{argv[0]} timed out:\n{out.decode(errors='replace')}\n{err.decode(errors='replace')}"
        ) from None
    assert process.returncode is not None
    return ProcessResult(
        process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


async def swaks(
    port: int,
    login: str,
    password: str,
    mail_from: str,
    rcpts: Sequence[str],
    data_file: Path,
    *extra: str,
) -> ProcessResult:
    return await run(
        [
            "swaks",
            "--server",
            f"127.0.0.1:{port}",
            "--ehlo",
            "swaks.example",
            "--auth",
            "PLAIN",
            "--au",
            login,
            "--ap",
            password,
            "--from",
            mail_from,
            "--to",
            ",".join(rcpts),
            "--data",
            f"@{data_file}",
            "--timeout",
            "20",
            *extra,
        ],
        timeout=30,
    )


async def msmtp(
    tmp: Path,
    port: int,
    login: str,
    password: str,
    mail_from: str,
    rcpts: Sequence[str],
    data: bytes,
    *,
    auth: str = "plain",
    tls: str = "off",
    ca_file: Path | None = None,
) -> ProcessResult:
    config = tmp / "msmtprc"
    lines = [
        "defaults",
        "logfile -",
        "account bridge",
        "host 127.0.0.1",
        f"port {port}",
        "domain msmtp.example",
        f"auth {auth}",
        f"user {login}",
        f"password {password}",
        f"from {mail_from}",
        f"tls {tls}",
        "timeout 60",
    ]
    if ca_file is not None:
        lines.append(f"tls_trust_file {ca_file}")
    if tls == "on":
        lines.append("tls_starttls on")
    lines.append("account default : bridge")
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    return await run(["msmtp", "-C", str(config), "--", *rcpts], stdin=data)


class RawSMTP:
    """A line-level SMTP client for dialogues smtplib will not produce (pipelining,
    non-ASCII commands, AUTH initial responses)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawSMTP:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        greeting = await client.reply()
        assert greeting.startswith("220"), greeting
        return client

    async def reply(self) -> str:
        """One complete (possibly multi-line) reply, lines joined by newlines."""
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout=60)
            assert raw, "connection closed"
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    async def send(self, *lines: bytes | str) -> None:
        for line in lines:
            data = line.encode("utf-8") if isinstance(line, str) else line
            self.writer.write(data + b"\r\n")
        await self.writer.drain()

    async def command(self, line: bytes | str) -> str:
        await self.send(line)
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
