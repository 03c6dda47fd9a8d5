"""Benchmark (issue 6): SMTP submission throughput and the latency the bridge adds.

Three processes: the Graph simulator (``--latency`` per Graph request, 4 concurrent
requests per mailbox, as Graph), the bridge (``run_daemon``), and this script, which

1. calls Graph's MIME ``sendMail`` directly with httpx (its own token from the simulator's
   token endpoint) — sequentially for the per-call latency, then with ``--clients``
   concurrent callers for the throughput Graph itself allows one mailbox;
2. submits the same messages through the bridge with ``smtplib`` (AUTH PLAIN on loopback,
   one persistent connection per client) — sequentially, then with ``--clients`` clients.

"Added latency" is the median SMTP submission time (MAIL FROM … 250 after DATA) minus
the median direct sendMail time, both sequential, so Graph's latency cancels out.

    python bench/smtp_throughput.py              # 200 concurrent submissions, 8 clients
    python bench/smtp_throughput.py --small      # 40 submissions, 4 clients
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import smtplib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    PASSWORD,
    BenchError,
    SimAndBridge,
    median,
    percentile,
    print_header,
    print_table,
    run,
)

BODY_LINE = "The quarterly report is attached to the shared folder as discussed. " * 1


def make_message(sender: str, recipient: str, n: int, tag: str) -> bytes:
    text = "\r\n".join(f"{BODY_LINE}line {i}" for i in range(30))
    return (
        f"From: Bench Sender <{sender}>\r\nTo: <{recipient}>\r\n"
        f"Subject: throughput {tag} {n}\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <bench-{tag}-{n}-{time.time_ns()}@bench.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n"
    ).encode()


async def graph_token(client: Any, settings: dict[str, Any]) -> str:
    response = await client.post(
        f"{settings['login_url']}/{settings['tenant_id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": settings["client_id"],
            "client_secret": settings["client_secret"],
            "scope": f"{settings['graph_url']}/.default",
        },
    )
    if response.status_code != 200:
        raise BenchError(f"simulator token endpoint: {response.status_code} {response.text[:200]}")
    return str(response.json()["access_token"])


async def direct_send(client: Any, settings: dict[str, Any], token: str, mime: bytes) -> float:
    started = time.perf_counter()
    response = await client.post(
        f"{settings['graph_url']}/v1.0/users/{settings['users'][2]['id']}/sendMail",
        content=base64.b64encode(mime),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    )
    seconds = time.perf_counter() - started
    if response.status_code != 202:
        raise BenchError(f"direct sendMail: {response.status_code} {response.text[:200]}")
    return seconds


def smtp_worker(
    port: int, login: str, messages: list[bytes], sender: str, rcpt: str
) -> list[float]:
    """One client: connect, AUTH, send every message on the one connection."""
    times = []
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            client.login(login, PASSWORD)
            for mime in messages:
                started = time.perf_counter()
                client.sendmail(sender, [rcpt], mime)
                times.append(time.perf_counter() - started)
    except (smtplib.SMTPException, OSError) as exc:
        raise BenchError(f"SMTP submission failed: {exc}") from exc
    return times


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="40 submissions, 4 clients")
    parser.add_argument("--messages", type=int, help="concurrent-phase submissions (200)")
    parser.add_argument("--clients", type=int, help="concurrent SMTP clients / Graph callers (8)")
    parser.add_argument("--sequential", type=int, default=20, help="sequential samples")
    parser.add_argument("--latency", type=float, default=0.05, help="Graph latency, s")
    args = parser.parse_args()
    total = args.messages or (40 if args.small else 200)
    clients = args.clients or (4 if args.small else 8)
    print_header(
        "SMTP submission through the bridge (issue 6)",
        {
            "submissions": total,
            "clients": clients,
            "sequential_samples": args.sequential,
            "graph_latency": f"{args.latency * 1000:.0f} ms",
        },
    )
    import httpx

    # user3 has no bridge account, so the bridge's own sync never takes one of its Graph
    # slots: the direct sendMail calls run from user3, the SMTP submissions from user1.
    async with SimAndBridge(users=3, accounts=2, latency=args.latency) as pair:
        assert pair.bridge is not None and pair.control is not None
        settings = pair.settings
        sender, rcpt = settings["users"][0], settings["users"][1]
        port = pair.bridge.info["smtp_port"]
        if not port:
            raise BenchError("the bridge started no SMTP listener")
        async with httpx.AsyncClient(verify=settings["ca_file"], timeout=120) as http:
            token = await graph_token(http, settings)
            direct_from = settings["users"][2]["mail"]
            await direct_send(
                http, settings, token, make_message(direct_from, rcpt["mail"], 0, "w")
            )
            direct_seq = [
                await direct_send(
                    http, settings, token, make_message(direct_from, rcpt["mail"], n, "d")
                )
                for n in range(args.sequential)
            ]
            queue = [make_message(direct_from, rcpt["mail"], n, "dc") for n in range(total)]

            async def caller() -> list[float]:
                out = []
                while queue:
                    out.append(await direct_send(http, settings, token, queue.pop()))
                return out

            started = time.perf_counter()
            # Graph refuses a fifth concurrent request per mailbox (429), so at most 4.
            callers = min(clients, 4)
            direct_par = [
                t for ts in await asyncio.gather(*(caller() for _ in range(callers))) for t in ts
            ]
            direct_wall = time.perf_counter() - started

        login = sender["upn"].split("@")[0]
        # Warm-up: the bridge's first submission opens the account and gets a token.
        await asyncio.to_thread(
            smtp_worker,
            port,
            login,
            [make_message(sender["mail"], rcpt["mail"], 0, "sw")],
            sender["mail"],
            rcpt["mail"],
        )
        await pair.control.reset_counters()
        smtp_seq = await asyncio.to_thread(
            smtp_worker,
            port,
            login,
            [make_message(sender["mail"], rcpt["mail"], n, "s") for n in range(args.sequential)],
            sender["mail"],
            rcpt["mail"],
        )
        seq_counters = await pair.control.counters(sender["id"])
        seq_requests = int(seq_counters["requests"])
        await pair.control.reset_counters()
        batches = [
            [
                make_message(sender["mail"], rcpt["mail"], n, f"sc{c}")
                for n in range(c, total, clients)
            ]
            for c in range(clients)
        ]
        started = time.perf_counter()
        smtp_par_lists = await asyncio.gather(
            *(
                asyncio.to_thread(smtp_worker, port, login, b, sender["mail"], rcpt["mail"])
                for b in batches
            )
        )
        smtp_wall = time.perf_counter() - started
        smtp_par = [t for ts in smtp_par_lists for t in ts]
        counters = await pair.control.counters(sender["id"])

    d50, s50 = median(direct_seq), median(smtp_seq)
    print_table(
        ["path", "mode", "submissions", "per second", "p50 latency", "p95 latency"],
        [
            [
                "direct Graph sendMail",
                "sequential",
                len(direct_seq),
                f"{len(direct_seq) / sum(direct_seq):.1f}",
                f"{d50 * 1000:.1f} ms",
                f"{percentile(direct_seq, 95) * 1000:.1f} ms",
            ],
            [
                "bridge SMTP",
                "sequential",
                len(smtp_seq),
                f"{len(smtp_seq) / sum(smtp_seq):.1f}",
                f"{s50 * 1000:.1f} ms",
                f"{percentile(smtp_seq, 95) * 1000:.1f} ms",
            ],
            [
                "direct Graph sendMail",
                f"{min(clients, 4)} concurrent",
                len(direct_par),
                f"{len(direct_par) / direct_wall:.1f}",
                f"{median(direct_par) * 1000:.1f} ms",
                f"{percentile(direct_par, 95) * 1000:.1f} ms",
            ],
            [
                "bridge SMTP",
                f"{clients} concurrent",
                len(smtp_par),
                f"{len(smtp_par) / smtp_wall:.1f}",
                f"{median(smtp_par) * 1000:.1f} ms",
                f"{percentile(smtp_par, 95) * 1000:.1f} ms",
            ],
        ],
    )
    print(
        f"added latency per message (bridge SMTP p50 - direct sendMail p50, sequential): "
        f"{(s50 - d50) * 1000:.1f} ms"
    )
    print(
        f"Graph requests per SMTP submission: sequential {seq_requests / len(smtp_seq):.2f}, "
        f"concurrent {int(counters['requests']) / len(smtp_par):.2f}; "
        f"max concurrent at Graph {counters['max_concurrency']}, 429s {counters['throttled']}"
    )
    print(
        f"ceiling for one mailbox: 4 concurrent / {args.latency * 1000:.0f} ms = "
        f"{4 / args.latency:.0f} sendMail per second (Graph's per-mailbox concurrency limit)"
    )
    print("Graph requests by kind during the sequential SMTP phase (includes the bridge's own")
    print("background sync of the sender's mailbox while it ran):")
    for kind, n in sorted(seq_counters.get("by_kind", {}).items(), key=lambda kv: -int(kv[1])):
        print(f"  {n:5}  {kind}")
    return 0


if __name__ == "__main__":
    run(main)
