#!/usr/bin/env python3
"""The baseline load client for mcpstorm's benchmark: what public MCP stress scripts do, the
official Python SDK's `ClientSession.call_tool` in N asyncio workers, each with its own
session (over stdio, its own server process). Prints one JSON object with its figures.

    python3 baseline_client.py --transport stdio --command "mcpstorm serve --stdio" --concurrency 10 --duration 10
    python3 baseline_client.py --transport http --url http://127.0.0.1:8931/mcp --concurrency 10 --duration 10

The load phase starts once every session is initialized and ends when the last worker's last
call has returned; CPU (getrusage of this process, not of server children), wall time and
calls are measured over it. Setup, the load phase and shutdown are each time-boxed.
"""
import argparse
import asyncio
import json
import os
import resource
import shlex
import statistics
import sys
import time

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

SHUTDOWN_TIMEOUT = 15.0


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank on an already sorted list."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


class Run:
    """What the workers share: the start signal, the deadline, and the figures."""

    def __init__(self, concurrency: int):
        self.concurrency = concurrency
        self.initialized = 0
        self.setup_failed = 0
        self.setup_errors: list[str] = []
        self.all_set = asyncio.Event()  # every worker initialized or failed to
        self.start = asyncio.Event()
        self.deadline = 0.0
        self.load_done = 0
        self.all_done = asyncio.Event()  # every started worker has left its call loop
        self.latencies: list[float] = []
        self.ok = 0
        self.failed = 0
        self.errors: dict[str, int] = {}

    def settle(self, ok: bool, error: str = "") -> None:
        if ok:
            self.initialized += 1
        else:
            self.setup_failed += 1
            if len(self.setup_errors) < 3:
                self.setup_errors.append(error)
        if self.initialized + self.setup_failed == self.concurrency:
            self.all_set.set()

    def finish_loop(self) -> None:
        self.load_done += 1
        if self.load_done == self.initialized:
            self.all_done.set()


async def worker(args, run: Run, tool_args: dict) -> None:
    if args.transport == "stdio":
        cmd = shlex.split(args.command)
        # The SDK passes the server only a few safe variables (PATH, HOME, ...); pass ours
        # whole, as mcpstorm does, so env-configured servers behave the same under both.
        transport = stdio_client(StdioServerParameters(command=cmd[0], args=cmd[1:], env=dict(os.environ)))
    else:
        transport = streamable_http_client(args.url)
    settled = False
    try:
        async with transport as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                run.settle(True)
                settled = True
                try:
                    await run.start.wait()
                    while time.perf_counter() < run.deadline:
                        t0 = time.perf_counter()
                        try:
                            result = await session.call_tool(args.tool, tool_args, read_timeout_seconds=args.timeout)
                            ok = not result.is_error
                            err = "is_error"
                        except Exception as e:  # noqa: BLE001 - a failed call is counted, whatever it was
                            ok, err = False, describe(e)
                        run.latencies.append(time.perf_counter() - t0)
                        if ok:
                            run.ok += 1
                        else:
                            run.failed += 1
                            run.errors[err] = run.errors.get(err, 0) + 1
                            if "Connection closed" in err:  # the server is gone: this worker is done
                                break
                finally:
                    run.finish_loop()
                await run.all_done.wait()  # close sessions only after the load phase
    except Exception as e:  # noqa: BLE001
        if not settled:
            run.settle(False, describe(e))


def describe(e: BaseException) -> str:
    """The innermost error of an exception group, with its JSON-RPC code when it has one."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    code = getattr(getattr(e, "error", None), "code", None)
    return f"{type(e).__name__}{'' if code is None else f' {code}'}: {e if code is None else e.error.message}"


async def main(args) -> int:
    tool_args = json.loads(args.arguments)
    run = Run(args.concurrency)
    tasks = [asyncio.create_task(worker(args, run, tool_args)) for _ in range(args.concurrency)]
    try:
        await asyncio.wait_for(run.all_set.wait(), args.setup_timeout)
    except TimeoutError:
        pass
    if run.initialized < args.concurrency:
        print(f"baseline: only {run.initialized}/{args.concurrency} sessions initialized "
              f"(setup time-box {args.setup_timeout:.0f} s); errors: {run.setup_errors}", file=sys.stderr)
        for t in tasks:
            t.cancel()
        return await close(tasks, 2)

    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    run.deadline = wall0 + args.duration
    run.start.set()
    try:  # the calls in flight at the deadline end within their own timeout
        await asyncio.wait_for(run.all_done.wait(), args.duration + args.timeout + 5)
    except TimeoutError:
        print("baseline: workers did not stop in time", file=sys.stderr)
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds() - cpu0
    run.all_done.set()

    calls = run.ok + run.failed
    lat = sorted(run.latencies)
    print(json.dumps({
        "client": "python-sdk",
        "transport": args.transport,
        "concurrency": args.concurrency,
        "calls": calls,
        "ok": run.ok,
        "failed": run.failed,
        "errors": run.errors,
        "duration_s": round(wall, 3),
        "rps": round(calls / wall, 1) if wall else 0.0,
        "p50_ms": round(percentile(lat, 0.50) * 1000, 3),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(lat) * 1000, 3) if lat else 0.0,
        "cpu_s": round(cpu, 3),
        "cpu_us_per_call": round(cpu * 1e6 / calls, 1) if calls else 0.0,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }), flush=True)

    return await close(tasks, 0)


async def close(tasks, code: int) -> int:
    """Waits for the sessions to close (their server processes to end), time-boxed."""
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT)
    if pending:
        print(f"baseline: {len(pending)} sessions did not close within {SHUTDOWN_TIMEOUT:.0f} s", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # do not hang on a stuck shutdown
    return code


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transport", choices=["stdio", "http"], required=True)
    p.add_argument("--command", help='stdio: the server command line, e.g. "python3 server.py stdio"')
    p.add_argument("--url", help="http: the Streamable HTTP endpoint, e.g. http://127.0.0.1:8931/mcp")
    p.add_argument("--concurrency", type=int, default=10, help="workers, each with its own session")
    p.add_argument("--duration", type=float, default=10.0, help="load phase, seconds")
    p.add_argument("--tool", default="echo")
    p.add_argument("--arguments", default='{"message": "hi"}', help="tool arguments, JSON")
    p.add_argument("--timeout", type=float, default=10.0, help="per-call timeout, seconds")
    p.add_argument("--setup-timeout", type=float, default=60.0, help="for all sessions to initialize, seconds")
    args = p.parse_args()
    if args.transport == "stdio" and not args.command:
        p.error("--transport stdio needs --command")
    if args.transport == "http" and not args.url:
        p.error("--transport http needs --url")
    if args.concurrency < 1:
        p.error("--concurrency must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
