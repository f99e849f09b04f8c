#!/usr/bin/env bash
# bench/serve.sh — the dashboard server (`codex-orchestrator serve`) under load.
#
#   bench/serve.sh            build, measure, print a markdown table
#
# Options:
#   --clients N   event-stream clients watching the run (default 50)
#   --stages N    stages in the watched run (default 1000)
#   --count N     recorded runs for the runs-list timing (default 10000)
#   --repeats N   timed requests per endpoint (default 20)
#   --no-build    use the existing release binaries (or $BENCH_BIN)
# Environment: BENCH_BIN (our binary), TMPDIR (where the temp directories go).
#
# How:
# 1. A run of N stages (the first sleeps 2 s so that every client is connected before the
#    events flow; the others run `true`, one after the other) is watched by the clients, each
#    on its own `GET /api/runs/{id}/events` stream. Each event's line carries the time it was
#    written (`timestamp`, milliseconds); each client notes when it received it. Latency is
#    received − written over every (client, event) pair written after all clients connected:
#    p50, p99, max. The server's peak RSS (VmHWM) is read from /proc when the run has ended.
# 2. bench/history.sh generates N recorded runs and indexes them; the server is started on
#    them and `GET /api/runs` (the runs page's first page), a filtered list, a page deep in
#    the history and `GET /api/pipelines` (pass rates and trends) are timed, each request on
#    a new connection, as a browser's first load makes them.
# Targets (issue 12): p99 <= 100 ms, peak RSS <= 40 MiB, runs page JSON <= 50 ms.
set -euo pipefail

CLIENTS=50
STAGES=1000
COUNT=10000
REPEATS=20
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) CLIENTS="$2"; shift 2 ;;
    --stages) STAGES="$2"; shift 2 ;;
    --count) COUNT="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "error: unknown option \`$1\`" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p codex-orchestrator --bin codex-orchestrator >&2 \
    && cargo build --release -p tests --bin serve-bench >&2)
fi
BIN="${BENCH_BIN:-$ROOT/target/release/codex-orchestrator}"
CLIENT="$ROOT/target/release/serve-bench"
[ -x "$BIN" ] || { echo "error: no binary at \`$BIN\`" >&2; exit 2; }
[ -x "$CLIENT" ] || { echo "error: no client at \`$CLIENT\` (build without --no-build)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 is needed" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/serve-bench.XXXXXX")"
SERVE_PID=""
cleanup() {
  if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_serve DIR: starts the server in DIR; sets SERVE_PID and URL.
start_serve() {
  (cd "$1" && exec "$BIN" serve --bind 127.0.0.1:0 >"$WORK/url.txt" 2>"$WORK/serve.err") &
  SERVE_PID=$!
  for _ in $(seq 100); do
    URL="$(head -n 1 "$WORK/url.txt" 2>/dev/null || true)"
    [ -n "$URL" ] && return 0
    sleep 0.05
  done
  echo "error: the server did not start" >&2; cat "$WORK/serve.err" >&2; exit 1
}

stop_serve() {
  kill -INT "$SERVE_PID"
  wait "$SERVE_PID" || true
  SERVE_PID=""
}

peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# --- 1. latency and memory ------------------------------------------------------------------
mkdir -p "$WORK/live"
python3 - "$STAGES" > "$WORK/live/codex.orchestrator.json" <<'PY'
import json, sys
n = int(sys.argv[1])
stages = [{"kind": "command", "id": "warmup", "command": "sleep 2"}]
stages += [{"kind": "command", "id": f"s{i:04d}", "command": "true"} for i in range(1, n)]
print(json.dumps({"pipelines": [{"id": "big", "stages": stages}]}))
PY
start_serve "$WORK/live"
"$CLIENT" latency "$URL" big "$CLIENTS" > "$WORK/latency.json" &
CLIENT_PID=$!
t0=${EPOCHREALTIME/./}
(cd "$WORK/live" && "$BIN" start big --format json >/dev/null 2>"$WORK/run.err") || true
t1=${EPOCHREALTIME/./}
wait "$CLIENT_PID"
LIVE_RSS=$(peak_rss_kib "$SERVE_PID")
stop_serve
RUN_MS=$(( (t1 - t0) / 1000 ))

# --- 2. the runs list over a large history -----------------------------------------------------
BENCH_BIN="$BIN" TMPDIR="$WORK" "$ROOT/bench/history.sh" --count "$COUNT" --runs 1 --no-build --keep \
  > /dev/null 2> "$WORK/history.err"
HIST="$(sed -n 's/^kept //p' "$WORK/history.err")"
[ -d "$HIST" ] || { echo "error: bench/history.sh kept no directory" >&2; cat "$WORK/history.err" >&2; exit 1; }
start_serve "$HIST"
"$CLIENT" list "$URL" "$REPEATS" > "$WORK/list.json"
LIST_RSS=$(peak_rss_kib "$SERVE_PID")
stop_serve

python3 - "$WORK/latency.json" "$WORK/list.json" "$CLIENTS" "$STAGES" "$COUNT" "$REPEATS" "$LIVE_RSS" "$LIST_RSS" "$RUN_MS" <<'PY'
import json, sys
lat = json.load(open(sys.argv[1])); lst = json.load(open(sys.argv[2]))
clients, stages, count, repeats, live_rss, list_rss, run_ms = sys.argv[3:10]
mib = lambda kib: f"{int(kib) / 1024:.1f}"
print()
print(f"`serve`: {clients} SSE clients on a {stages}-stage run (run took {run_ms} ms); "
      f"{count} recorded runs, {repeats} timed requests per endpoint.")
print()
print("| measure | value | target |")
print("|---|---|---|")
print(f"| event written -> received, p50 | {lat['p50_ms']:.1f} ms | |")
print(f"| event written -> received, p99 | {lat['p99_ms']:.1f} ms | <= 100 ms |")
print(f"| event written -> received, max | {lat['max_ms']:.1f} ms | |")
print(f"| (client, event) pairs measured | {lat['samples']} ({lat['events_per_client_min']}..{lat['events_per_client_max']} events per client) | |")
print(f"| server peak RSS, watched run | {mib(live_rss)} MiB | <= 40 MiB |")
print(f"| server peak RSS, {count} runs listed | {mib(list_rss)} MiB | <= 40 MiB |")
for key, label in [("runs", "`GET /api/runs` (runs page, first 50)"),
                   ("failed", "`GET /api/runs?status=failed`"),
                   ("page_100", "`GET /api/runs?offset=5000&limit=50`"),
                   ("pipelines", "`GET /api/pipelines` (pass rates, trends)")]:
    r = lst[key]
    target = "<= 50 ms" if key == "runs" else ""
    print(f"| {label}: median (min..max; first request) | {r['median_ms']:.1f} ms ({r['min_ms']:.1f}..{r['max_ms']:.1f}; {r['first_ms']:.1f}), {r['bytes']} bytes | {target} |")
PY
