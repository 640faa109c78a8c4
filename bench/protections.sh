#!/usr/bin/env bash
# What the reference server's protections cost: for each server configuration, the server's
# CPU time per call at a fixed 3,000 calls/s of the quickstart mix for 10 s (read from
# /proc, so a busy machine blurs it less than throughput), then the quickstart's calls/s
# for 20 s. Configurations: no flags, and --hardened with a token and its rate limits raised
# above the load (so the limiters run but do not throttle); with BEFORE=/path/to/mcpstorm,
# also an older binary's server with no flags. Run after `cargo build --release`:
#   bash bench/protections.sh            REPS="1 2 3" DURATION=20s to change the repetitions
set -euo pipefail
cd "$(dirname "$0")/.."
NEW=target/release/mcpstorm
BEFORE=${BEFORE:-}
REPS=${REPS:-1 2 3}
DURATION=${DURATION:-20s}
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
export BENCH_JWT_SECRET=$(openssl rand -hex 32)
TOKEN=$(python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
header = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b(json.dumps({"sub": "bench", "aud": "mcpstorm", "exp": int(time.time()) + 7200}).encode())
key = os.environ["BENCH_JWT_SECRET"].encode()
print(f"{header}.{claims}.{b(hmac.new(key, f'{header}.{claims}'.encode(), hashlib.sha256).digest())}")
PY
)
OUT=$(mktemp -d)
RATE=$OUT/rate.toml
sed -e 's/^duration = .*/duration = "10s"/' \
    -e 's/^executor = "constant-vus"/executor = "constant-arrival-rate"\nrate = 3000\nmax_in_flight = 64\npreallocate = 20/' \
    -e '/^vus = 20/d' presets/quickstart.toml > "$RATE"

measure() { # label server-binary bearer-header [serve flags...]
  local label=$1 bin=$2 hdr=$3; shift 3
  local auth=()
  [ -n "$hdr" ] && auth=(-H "$hdr")
  "$bin" serve --port "$PORT" "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  local t0 t1
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  "$NEW" run "$RATE" --no-tui --no-progress --target "http://127.0.0.1:$PORT/mcp" "${auth[@]}" --out "$OUT/$label-cpu" >/dev/null 2>&1 || true
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  "$NEW" run --no-tui --no-progress --duration "$DURATION" --target "http://127.0.0.1:$PORT/mcp" "${auth[@]}" --out "$OUT/$label-qs" >/dev/null 2>&1 || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$OUT" "$label" "$((t1 - t0))" <<'PY'
import json, sys
out, label, ticks = sys.argv[1], sys.argv[2], int(sys.argv[3])
cpu = json.load(open(f"{out}/{label}-cpu/report.json"))["totals"]
qs = json.load(open(f"{out}/{label}-qs/report.json"))["totals"]
print(f"{label:<22} server CPU {ticks * 1e4 / max(cpu['calls'], 1):6.1f} us/call   "
      f"quickstart {qs['rps']:7.0f} calls/s  success {qs['success_rate']:.4f}")
PY
}
HIGH=(--rate-global 1000000 --rate-per-ip 1000000 --rate-per-principal 1000000)
for rep in $REPS; do
  [ -n "$BEFORE" ] && measure "before-$rep" "$BEFORE" ""
  measure "no-flags-$rep" "$NEW" ""
  measure "hardened-$rep" "$NEW" "Authorization: Bearer $TOKEN" \
    --hardened --auth-hs256-secret-env BENCH_JWT_SECRET "${HIGH[@]}"
done
rm -rf "$OUT"
