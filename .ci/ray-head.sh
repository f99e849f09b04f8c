#!/usr/bin/env bash
# A single-node Ray head for the Ray tests, bound to 127.0.0.1 on fixed non-default ports.
#
#   .ci/ray-head.sh start   start it (idempotent) and wait until its Jobs API answers
#   .ci/ray-head.sh stop    stop it, and only it
#
# Env: RAY_VENV (required: a virtual env with `ray[default]`), RAY_TMP (its temp dir, default
# /tmp/co-ray), RAY_PORT_BASE (default 27400: GCS at the base, dashboard at base+8, workers at
# base+100..199), RAY_NUM_CPUS (default 2), RAY_READY_TIMEOUT_S (default 180).
# Prints the dashboard address on stdout (`start`).
#
# `ray stop` has no per-cluster selector: it kills every Ray process of the user on the
# machine (a developer's own cluster, or the shared head of other tests). `stop` here ends
# exactly this head's processes (found by its temp dir, which every one of them names on its
# command line): SIGTERM, then SIGKILL after 10 s, as `ray stop` does.
set -euo pipefail
VENV="${RAY_VENV:?RAY_VENV must name a virtual env with ray[default] installed}"
TMP="${RAY_TMP:-/tmp/co-ray}"   # short: unix socket paths are limited to 107 bytes
BASE="${RAY_PORT_BASE:-27400}"
NUM_CPUS="${RAY_NUM_CPUS:-2}"
TIMEOUT="${RAY_READY_TIMEOUT_S:-180}"
DASH_PORT=$((BASE + 8))
API="http://127.0.0.1:$DASH_PORT"

# No usage reporting, no `uv run` rewriting of entrypoints.
export RAY_USAGE_STATS_ENABLED=0 RAY_ENABLE_UV_RUN_RUNTIME_ENV=0
# Despite its name this is read on Linux too: without it Ray rewrites 127.0.0.1 to the primary
# interface's address and several servers listen on all interfaces. With it every listener is
# on loopback (and multi-node is off: this head is for tests only).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0

answers() {
  python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5).read()
except Exception:
    sys.exit(1)
EOF
}

# Pids of this head's processes: those whose command line names its temp dir or its GCS
# address, and all their descendants (dashboard modules, agents, workers).
pids() {
  python3 - "$TMP/" "127.0.0.1:$BASE" "$$" <<'EOF'
import os, sys
marks, me = sys.argv[1:3], sys.argv[3]
parent, hit = {}, []
for p in os.listdir("/proc"):
    if not p.isdigit() or p == me:
        continue
    try:
        cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode("utf-8", "replace")
        stat = open(f"/proc/{p}/stat").read()
    except OSError:
        continue
    parent[p] = stat[stat.rindex(")") + 2:].split()[1]
    if any(m in cmd for m in marks) and not cmd.startswith("python3 - "):
        hit.append(p)
found, todo = set(hit), list(hit)
while todo:
    q = todo.pop()
    for c, pp in parent.items():
        if pp == q and c not in found:
            found.add(c)
            todo.append(c)
print(" ".join(sorted(found, key=int)))
EOF
}

case "${1:-}" in
start)
  if answers "$API/api/version"; then
    echo "$API"
    exit 0
  fi
  mkdir -p "$TMP"
  t0=$(date +%s)
  "$VENV/bin/ray" start --head \
    --node-ip-address=127.0.0.1 \
    --port="$BASE" \
    --ray-client-server-port=$((BASE + 1)) \
    --node-manager-port=$((BASE + 2)) \
    --object-manager-port=$((BASE + 3)) \
    --runtime-env-agent-port=$((BASE + 4)) \
    --dashboard-agent-grpc-port=$((BASE + 5)) \
    --dashboard-agent-listen-port=$((BASE + 6)) \
    --metrics-export-port=$((BASE + 7)) \
    --min-worker-port=$((BASE + 100)) --max-worker-port=$((BASE + 199)) \
    --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASH_PORT" \
    --num-cpus="$NUM_CPUS" --num-gpus=0 \
    --object-store-memory=$((256 * 1024 * 1024)) \
    --temp-dir="$TMP" --disable-usage-stats \
    --log-style=record --log-color=false >&2
  # `ray start` returns once GCS and the raylet are up; the Jobs API lags by a few seconds.
  deadline=$(($(date +%s) + TIMEOUT))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if answers "$API/api/version" && answers "$API/api/jobs/"; then
      echo "ray head ready after $(($(date +%s) - t0)) s: $API" >&2
      echo "$API"
      exit 0
    fi
    sleep 0.5
  done
  echo "ray head did not become ready in ${TIMEOUT}s (logs: $TMP/session_latest/logs/)" >&2
  exit 1
  ;;
stop)
  list=$(pids)
  [ -z "$list" ] && exit 0
  # shellcheck disable=SC2086
  kill -TERM $list 2>/dev/null || true
  deadline=$(($(date +%s) + 10))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 0.2
    list=$(pids)
    [ -z "$list" ] && exit 0
  done
  # shellcheck disable=SC2086
  kill -KILL $list 2>/dev/null || true
  sleep 0.5
  exit 0
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
