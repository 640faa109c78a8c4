#!/usr/bin/env python3
"""The baseline load client for mcpstorm's benchmark: what public MCP stress scripts do, the
official Python SDK's `ClientSession.call_tool` in N asyncio workers, each with its own
session (its own server process over stdio). Prints one JSON object with its figures.

    python3 baseline_client.py --transport stdio --command "mcpstorm serve --stdio" --concurrency 10 --duration 10
    python3 baseline_client.py --transport http --url http://127.0.0.1:8931/mcp --concurrency 10 --duration 10
"""
import argparse
import asyncio
import json
import resource
import shlex
import statistics
import sys
import time

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


async def worker(args, ready, start, latencies, counts):
    if args.transport == "stdio":
        cmd = shlex.split(args.command)
        transport = stdio_client(StdioServerParameters(command=cmd[0], args=cmd[1:]))
    else:
        transport = streamable_http_client(args.url)
    tool_args = json.loads(args.arguments)
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()
            ready.release()
            await start.wait()
            deadline = start.deadline
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    result = await session.call_tool(args.tool, tool_args, read_timeout_seconds=10)
                    ok = not getattr(result, "is_error", getattr(result, "isError", False))
                except Exception:  # noqa: BLE001 - a failed call is counted, whatever it was
                    ok = False
                latencies.append(time.perf_counter() - t0)
                counts["ok" if ok else "failed"] += 1


class Start(asyncio.Event):
    deadline = 0.0


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transport", choices=["stdio", "http"], required=True)
    p.add_argument("--command", help="stdio server command")
    p.add_argument("--url", help="Streamable HTTP endpoint")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--tool", default="echo")
    p.add_argument("--arguments", default='{"message": "hi"}')
    args = p.parse_args()
    if (args.transport == "stdio") != bool(args.command) or (args.transport == "http") != bool(args.url):
        p.error("--transport stdio needs --command; --transport http needs --url")

    ready = asyncio.Semaphore(0)
    start = Start()
    latencies: list[float] = []
    counts = {"ok": 0, "failed": 0}
    tasks = [asyncio.create_task(worker(args, ready, start, latencies, counts)) for _ in range(args.concurrency)]
    try:
        async with asyncio.timeout(60):
            for _ in range(args.concurrency):
                await ready.acquire()
    except TimeoutError:
        sys.exit("baseline: sessions did not initialize within 60 s")
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    start.deadline = wall0 + args.duration
    start.set()
    try:
        async with asyncio.timeout(args.duration + 30):
            await asyncio.gather(*tasks, return_exceptions=True)
    except TimeoutError:
        for t in tasks:
            t.cancel()
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds() - cpu0
    calls = counts["ok"] + counts["failed"]
    lat = sorted(latencies)
    print(json.dumps({
        "client": "python-sdk",
        "transport": args.transport,
        "concurrency": args.concurrency,
        "calls": calls,
        "ok": counts["ok"],
        "failed": counts["failed"],
        "duration_s": round(wall, 3),
        "rps": round(calls / wall, 1) if wall else 0.0,
        "p50_ms": round(percentile(lat, 0.50) * 1000, 3),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(lat) * 1000, 3) if lat else 0.0,
        "cpu_s": round(cpu, 3),
        "cpu_us_per_call": round(cpu * 1e6 / calls, 1) if calls else 0.0,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    asyncio.run(main())
