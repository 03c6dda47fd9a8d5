"""Benchmark (issue 8): many accounts, many concurrent IDLE connections.

Three processes: the Graph simulator with ``--accounts`` mailboxes, the bridge
(``run_daemon``, default sync settings, connection limits raised above ``--connections``)
with one account per mailbox, and this script, which opens ``--connections`` IMAP
connections spread round-robin over the accounts, each LOGIN + SELECT INBOX + IDLE, then
holds them for ``--window`` seconds and reports

- the bridge process's resident memory (VmRSS / VmHWM from its ``/proc/<pid>/status``)
  with every account synced and no client, and again with every connection idling;
- event-loop lag inside the bridge process: a probe task sleeps 10 ms again and again
  and records the overshoot; p50/p99/max over the window;
- Graph requests per idle account per hour: the simulator's per-mailbox counters over
  the window, averaged over the accounts and extrapolated x(3600 / window).

    python bench/scale.py            # 200 accounts, 1,000 IDLE connections, 120 s window
    python bench/scale.py --small    # 20 accounts, 100 connections, 30 s window
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    PASSWORD,
    BenchError,
    ImapClient,
    SimAndBridge,
    expected_idle_per_hour,
    imap_folder_count,
    print_header,
    print_table,
    run,
)

GRAPH_PER_MAILBOX_HOUR = 60_000
GRAPH_PER_APP_HOUR = 2_000 * 3600


async def open_idle(port: int, login: str) -> ImapClient:
    client = await ImapClient.connect("127.0.0.1", port, timeout=120)
    await client.login(login, PASSWORD)
    await client.ok("SELECT INBOX", timeout=300)
    await client.start_idle()
    return client


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="20 accounts, 100 connections")
    parser.add_argument("--accounts", type=int)
    parser.add_argument("--connections", type=int)
    parser.add_argument("--window", type=float, help="measurement window, s (120; small 30)")
    parser.add_argument("--ramp", type=int, default=20, help="connections opened at a time")
    args = parser.parse_args()
    accounts = args.accounts or (20 if args.small else 200)
    connections = args.connections or (100 if args.small else 1_000)
    window = args.window or (30.0 if args.small else 120.0)
    print_header(
        "scale: accounts x concurrent IDLE connections (issue 8)",
        {"accounts": accounts, "connections": connections, "window": f"{window:g} s"},
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = connections * 2 + 1000
    if soft < need:
        if hard < need:
            raise BenchError(f"open-file limit {hard} is below the {need} this run needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))  # inherited by the children
    limit = connections + 500
    clients: list[ImapClient] = []
    async with SimAndBridge(
        users=accounts,
        limits={"max_connections": limit, "max_connections_per_address": limit},
    ) as pair:
        assert pair.bridge is not None and pair.control is not None
        started = time.perf_counter()
        synced = await pair.bridge.ask("sync", timeout=1800)
        print(
            f"{accounts} accounts synced in {time.perf_counter() - started:.1f} s "
            f"(sync pass {synced['seconds']:.1f} s)",
            flush=True,
        )
        rss_before = await pair.bridge.ask("rss")
        logins = [u["upn"].split("@")[0] for u in pair.users]
        port = pair.bridge.info["imap_port"]
        started = time.perf_counter()
        try:
            for first in range(0, connections, args.ramp):
                batch = range(first, min(connections, first + args.ramp))
                clients += await asyncio.gather(
                    *(open_idle(port, logins[i % len(logins)]) for i in batch)
                )
            ramp = time.perf_counter() - started
            print(f"{connections} IDLE connections open in {ramp:.1f} s", flush=True)
            await asyncio.sleep(2.0)
            await pair.control.reset_counters()
            await pair.bridge.ask("lag-reset")
            await asyncio.sleep(window)
            lag = await pair.bridge.ask("lag")
            rss_after = await pair.bridge.ask("rss")
            per_user = [int((await pair.control.counters(u["id"]))["requests"]) for u in pair.users]
            folders = await imap_folder_count(port, logins[0])
            alive = 0
            for client in clients:
                # Each connection must still be in IDLE: DONE gets the tagged OK.
                await client.stop_idle()
                alive += 1
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

    total = sum(per_user)
    per_hour = total / accounts * 3600 / window
    print_table(
        ["measure", "value"],
        [
            ["bridge RSS, accounts synced, no clients", f"{rss_before['VmRSS'] / 1024:.1f} MiB"],
            [f"bridge RSS, {connections} IDLE connections", f"{rss_after['VmRSS'] / 1024:.1f} MiB"],
            ["bridge peak RSS (VmHWM)", f"{rss_after['VmHWM'] / 1024:.1f} MiB"],
            [
                "memory per IDLE connection",
                f"{(rss_after['VmRSS'] - rss_before['VmRSS']) / connections:.1f} KiB",
            ],
            ["connections still in IDLE at the end", f"{alive} / {connections}"],
            ["time to open all connections", f"{ramp:.1f} s"],
            [f"event-loop lag p50 ({lag['samples']} samples)", f"{lag['p50_ms']:.2f} ms"],
            ["event-loop lag p99", f"{lag['p99_ms']:.2f} ms"],
            ["event-loop lag max", f"{lag['max_ms']:.2f} ms"],
            [f"Graph requests in {window:g} s (all accounts)", total],
            ["Graph requests per idle account per hour (extrapolated)", f"{per_hour:.1f}"],
            ["  same, from the poll intervals", f"{expected_idle_per_hour(folders):.1f}"],
        ],
    )
    print(
        f"per hour extrapolated from a {window:g} s window: requests x 3600 / {window:g} / "
        f"{accounts} accounts."
    )
    worst = max(per_hour, expected_idle_per_hour(folders))
    print(
        f"1,000 such accounts at the higher figure: {worst * 1000:,.0f} requests/hour vs Graph's "
        f"per-app limit {GRAPH_PER_APP_HOUR:,}/hour; per mailbox {worst:,.1f} vs "
        f"{GRAPH_PER_MAILBOX_HOUR:,}."
    )
    print("lag probe: 10 ms sleeps inside the bridge's event loop; lag = wake-up overshoot.")
    return 0


if __name__ == "__main__":
    run(main)
