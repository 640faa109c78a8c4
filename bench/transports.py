#!/usr/bin/env python3
"""mcpstorm over each wire: calls/s and latency of the `echo` tool through every transport and
protocol era, each row run several times (rows interleaved, so a burst of load elsewhere on
the machine does not land on one row only), medians printed as a Markdown table with the
load average seen while the rows ran.

    python3 bench/transports.py                    # needs target/release/mcpstorm (cargo build --release)
    python3 bench/transports.py --duration 5 --repeats 1 --rows http,ws

Rows: `stdio` (reference server, one process per session), `http` and `http-stateless`
(reference server, Streamable HTTP, 2025-11-25 and 2026-07-28), `ws` and `ws-stateless`
(reference server, WebSocket /ws), `sse-everything` (server-everything, legacy HTTP+SSE) and
`http-everything` (server-everything, Streamable HTTP, the fair comparison for the SSE row:
same server code, other wire). Everything runs on 127.0.0.1; every process started here is
ended by pid.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from run import HttpServer  # noqa: E402  (bench/run.py: the reference server on a free port)

EVERYTHING = REPO / "tests/fixtures/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
ROWS = ["stdio", "http", "http-stateless", "ws", "ws-stateless", "sse-everything", "http-everything"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeServer(HttpServer):
    """server-everything in one of its HTTP modes (`sse`, `streamableHttp`) on a free port."""

    def __init__(self, mode: str):
        self.port = free_port()
        env = dict(os.environ, PORT=str(self.port), GZIP_ALLOWED_DOMAINS="127.0.0.1")
        self.proc = subprocess.Popen(["node", str(EVERYTHING), mode], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"bench: server-everything {mode} exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        sys.exit(f"bench: server-everything {mode} did not listen on {self.port} within 30 s")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_row(exe: str, target_toml: str, vus: int, duration: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "bench.toml"
        scenario.write_text(
            f'name = "bench"\nduration = "{duration}s"\n[target]\n{target_toml}'
            f'[workload]\nexecutor = "constant-vus"\nvus = {vus}\ntimeout = "10s"\n'
            '[[mix]]\nop = "tools/call"\ntool = "echo"\narguments = { message = "hi" }\n'
        )
        out = Path(tmp) / "out"
        p = subprocess.run([exe, "run", str(scenario), "--out", str(out), "--no-progress"],
                           capture_output=True, text=True, timeout=duration + 120)
        if p.returncode not in (0, 1):
            sys.exit(f"bench: mcpstorm exited {p.returncode}:\n{p.stderr}")
        r = json.loads((out / "report.json").read_text())
    return {
        "calls": r["totals"]["calls"],
        "failed": r["totals"]["failed"],
        "rps": r["totals"]["rps"],
        "p50_ms": r["latency_ms"]["overall"]["p50"],
        "p99_ms": r["latency_ms"]["overall"]["p99"],
        "client_cpu_us": r["client"]["cpu_us_per_call"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mcpstorm", default=str(REPO / "target/release/mcpstorm"))
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    ap.add_argument("--vus", type=int, default=10, help="virtual users (default 10)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each row; the table shows medians (default 3)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    ap.add_argument("--json", help="also write every run's figures to this file")
    args = ap.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        sys.exit(f"bench: --rows {','.join(unknown)}: not known; use {', '.join(ROWS)}")
    if not Path(args.mcpstorm).exists():
        sys.exit(f"bench: {args.mcpstorm} does not exist; build it with `cargo build --release` or pass --mcpstorm")
    if any(r.endswith("-everything") for r in rows) and not EVERYTHING.exists():
        sys.exit("bench: server-everything is not installed: run `npm ci --prefix tests/fixtures/node`")

    servers: dict[str, HttpServer] = {}
    try:
        targets = {}
        for row in rows:
            if row == "stdio":
                targets[row] = (f'transport = "stdio"\ncommand = {json.dumps(args.mcpstorm)}\n'
                                'args = ["serve", "--stdio"]\n', None)
                continue
            if row.endswith("-everything"):
                mode = "sse" if row.startswith("sse") else "streamableHttp"
                server = servers.setdefault(row, NodeServer(mode))
                path = "sse" if mode == "sse" else "mcp"
                transport = "sse" if mode == "sse" else "http"
                targets[row] = (f'transport = "{transport}"\nurl = "http://127.0.0.1:{server.port}/{path}"\n', server)
                continue
            server = servers.setdefault("reference", HttpServer([args.mcpstorm, "serve", "--port", "0"]))
            version = "2026-07-28" if row.endswith("-stateless") else "2025-11-25"
            if row.startswith("ws"):
                url = server.url.replace("http://", "ws://").removesuffix("/mcp") + "/ws"
                transport = "websocket"
            else:
                url, transport = server.url, "http"
            targets[row] = (f'transport = "{transport}"\nurl = "{url}"\nprotocol_version = "{version}"\n', server)

        runs: dict[str, list[dict]] = {row: [] for row in rows}
        for i in range(args.repeats):
            # Rotate the order each round: every row gets an early and a late slot.
            order = rows[i % len(rows):] + rows[:i % len(rows)]
            for row in order:
                toml, server = targets[row]
                load_before = loadavg()
                cpu0 = server.cpu() if server else None
                t0 = time.perf_counter()
                res = run_row(args.mcpstorm, toml, args.vus, args.duration)
                wall = time.perf_counter() - t0
                res["server_cpu_pct"] = (server.cpu() - cpu0) / wall * 100 if server else None
                res["load"] = max(load_before, loadavg())
                runs[row].append(res)
                print(f"bench: {row} run {i + 1}: {res['rps']:.0f} calls/s, p50 {res['p50_ms']:.2f} ms, "
                      f"p99 {res['p99_ms']:.2f} ms, load {res['load']:.2f}", file=sys.stderr)
    finally:
        for s in servers.values():
            s.stop()

    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    loads = [r["load"] for rs in runs.values() for r in rs]
    print(f"\n{args.vus} VUs, {args.duration:.0f} s per run, echo tool, medians of {args.repeats} runs per row, "
          f"{os.cpu_count()} cores shared by client and server, load average {min(loads):.2f}-{max(loads):.2f}\n")
    print("| row | server | wire | protocol | calls/s | (min-max) | p50 ms | p99 ms | client CPU µs/call | server CPU % | failed |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    describe = {
        "stdio": ("reference", "stdio", "2025-11-25"),
        "http": ("reference", "Streamable HTTP", "2025-11-25"),
        "http-stateless": ("reference", "Streamable HTTP", "2026-07-28"),
        "ws": ("reference", "WebSocket /ws", "2025-11-25"),
        "ws-stateless": ("reference", "WebSocket /ws", "2026-07-28"),
        "sse-everything": ("server-everything", "legacy HTTP+SSE", "2025-11-25"),
        "http-everything": ("server-everything", "Streamable HTTP", "2025-11-25"),
    }
    for row in rows:
        rs = runs[row]
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        cpu = [r["server_cpu_pct"] for r in rs if r["server_cpu_pct"] is not None]
        server, wire, protocol = describe[row]
        server_cpu = f"{statistics.median(cpu):.0f}" if cpu else "n/a"
        print(f"| {row} | {server} | {wire} | {protocol} | {med('rps'):.0f} | "
              f"{min(r['rps'] for r in rs):.0f}-{max(r['rps'] for r in rs):.0f} | {med('p50_ms'):.2f} | "
              f"{med('p99_ms'):.2f} | {med('client_cpu_us'):.1f} | {server_cpu} | "
              f"{sum(r['failed'] for r in rs)} |")


if __name__ == "__main__":
    main()
