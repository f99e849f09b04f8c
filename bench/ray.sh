#!/usr/bin/env bash
# bench/ray.sh — Ray stages: 20 trivial stages (`true`) on a local Ray head at concurrency 4,
# run by our runner (one pipeline, 20 independent Ray stages, `concurrency: 4`) next to Ray's own
# CLI submitting the same 20 jobs four at a time (`ray job submit -- true`, which also waits
# for each job and streams its log).
#
#   bench/ray.sh                 start a head (.ci/ray-head.sh), build, measure, stop the head
#   bench/ray.sh --write         ... and put the table into BENCHMARKS.md (between its markers)
#
# Options: --runs N (counted runs of each, default 3, after one warm-up each), --stages N
#   (default 20), --concurrency N (default 4), --no-build, --keep.
# Environment: RAY_VENV (a virtual env with ray[default]; default: the one .ci/run caches),
#   RAY_ADDRESS (use this running head instead of starting one), BENCH_BIN (our binary).
#
# Reported per command: wall time for the 20 jobs (min / median / max), wall per job, and the
# CPU time of the submitting side (user+sys of the runner, or of the 20 `ray` CLI processes;
# GNU time), per job. Runs alternate (ours, CLI, ours, CLI, ...). Ray's own cost (a fresh
# Python worker per job for its supervisor) is in both walls; the difference is the runner's.
set -uo pipefail

RUNS=3
STAGES=20
CONC=4
WRITE=0
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --write) WRITE=1 ;;
    --runs) RUNS="$2"; shift ;;
    --stages) STAGES="$2"; shift ;;
    --concurrency) CONC="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$RUNS$STAGES$CONC" in *[!0-9]*) echo "bench: --runs/--stages/--concurrency take a number" >&2; exit 2 ;; esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '%s\n' "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

RAY_VENV="${RAY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/codex-orchestrator-ray/2.60.0/venv}"
RAY_CLI="$RAY_VENV/bin/ray"
[ -x "$RAY_CLI" ] || die "no Ray at $RAY_VENV (run .ci/run once, or set RAY_VENV)"
RAY_VERSION="$("$RAY_VENV/bin/python" -c 'import ray; print(ray.__version__)' 2>/dev/null)"

OURS="${BENCH_BIN:-$ROOT/target/release/codex-orchestrator}"
if [ "$BUILD" = 1 ] && [ -z "${BENCH_BIN:-}" ]; then
  say "building the release binary"
  (cd "$ROOT" && cargo build --release --bin codex-orchestrator) >&2 || die "cargo build --release failed"
fi
[ -x "$OURS" ] || die "no binary at $OURS"
[ -x /usr/bin/time ] && /usr/bin/time -f %e true 2>/dev/null || die "GNU /usr/bin/time is needed for the CPU figures"

BASE="$(mktemp -d "${TMPDIR:-/tmp}/codex-bench-ray.XXXXXX")" || die "no temp dir"
STARTED_HEAD=0
cleanup() {
  if [ "$STARTED_HEAD" = 1 ]; then
    RAY_VENV="$RAY_VENV" RAY_TMP="$BASE/ray" RAY_PORT_BASE=27800 "$ROOT/.ci/ray-head.sh" stop
  fi
  if [ "$KEEP" = 1 ]; then say "kept $BASE"; else rm -rf "$BASE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ADDR="${RAY_ADDRESS:-}"
if [ -z "$ADDR" ]; then
  say "starting a Ray head ($RAY_VERSION) on 127.0.0.1:27808"
  mkdir -p "$BASE/ray"
  ADDR="$(RAY_VENV="$RAY_VENV" RAY_TMP="$BASE/ray" RAY_PORT_BASE=27800 RAY_NUM_CPUS=4 "$ROOT/.ci/ray-head.sh" start)" \
    || die "the Ray head did not start"
  STARTED_HEAD=1
fi
say "head: $ADDR"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# Our pipeline: STAGES independent Ray stages.
mkdir -p "$BASE/repo"
python3 - "$BASE/repo/codex.orchestrator.json" "$ADDR" "$STAGES" "$CONC" <<'EOF'
import json, sys
path, addr, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stages = [{"kind": "command", "id": f"s{i:02d}", "dependsOn": [], "command": "true"} for i in range(n)]
cfg = {"pipelines": [{"id": "ray", "concurrency": conc,
                      "executor": {"kind": "ray", "address": addr}, "stages": stages}]}
open(path, "w").write(json.dumps(cfg))
EOF

now_us() { local t=${EPOCHREALTIME//[.,]/}; T=$((10#$t)); }
# run_ours / run_cli: one run each; sets W (wall µs) and C (CPU ms of the submitting side).
run_ours() {
  rm -rf "$BASE/repo/.runs"
  now_us; local t0=$T
  (cd "$BASE/repo" && /usr/bin/time -f '%U %S' -o "$BASE/time.txt" "$OURS" start ray --format json >"$BASE/ours.json" 2>"$BASE/ours.err") \
    || die "our run failed: $(tail -3 "$BASE/ours.err")"
  now_us; W=$((T - t0))
  C=$(awk '{printf "%d", ($1 + $2) * 1000}' "$BASE/time.txt")
}
run_cli() {
  now_us; local t0=$T
  seq "$STAGES" | /usr/bin/time -f '%U %S' -o "$BASE/time.txt" \
    xargs -P "$CONC" -I{} "$RAY_CLI" job submit --address "$ADDR" --log-style=record -- true >"$BASE/cli.out" 2>&1 \
    || die "ray job submit failed: $(tail -3 "$BASE/cli.out")"
  now_us; W=$((T - t0))
  C=$(awk '{printf "%d", ($1 + $2) * 1000}' "$BASE/time.txt")
}

say "warm-up"
run_ours; run_cli
OURS_W=(); OURS_C=(); CLI_W=(); CLI_C=()
for i in $(seq 1 "$RUNS"); do
  say "run $i/$RUNS"
  run_ours; OURS_W+=("$W"); OURS_C+=("$C")
  run_cli; CLI_W+=("$W"); CLI_C+=("$C")
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%d %d %d", a[1], a[int((NR+1)/2)], a[NR]}'; }
read -r ow_min ow_med ow_max <<<"$(stats "${OURS_W[@]}")"
read -r cw_min cw_med cw_max <<<"$(stats "${CLI_W[@]}")"
read -r _ oc_med _ <<<"$(stats "${OURS_C[@]}")"
read -r _ cc_med _ <<<"$(stats "${CLI_C[@]}")"
s() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1e6}'; }
per() { awk -v u="$1" -v n="$STAGES" 'BEGIN {printf "%.2f", u / 1e6 / n}'; }
perms() { awk -v m="$1" -v n="$STAGES" 'BEGIN {printf "%.0f", m / n}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

TABLE="$(cat <<EOF
Measured $(date -u +%Y-%m-%d) at commit \`$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)\` by \`bench/ray.sh\` (Ray $RAY_VERSION, single-node head on loopback, $(nproc) cores).
Load average before / after: $LOAD0 / $LOAD1 (the machine may be shared). $RUNS counted runs each after one warm-up, alternating.

| $STAGES trivial jobs, $CONC at a time | wall min / median / max | wall per job (median) | CPU of the submitting side per job (median) |
|---|---|---|---|
| ours: one pipeline of $STAGES Ray stages, \`concurrency: $CONC\` | $(s "$ow_min") / $(s "$ow_med") / $(s "$ow_max") s | $(per "$ow_med") s | $(perms "$oc_med") ms |
| \`ray job submit -- true\` × $STAGES via \`xargs -P$CONC\` | $(s "$cw_min") / $(s "$cw_med") / $(s "$cw_max") s | $(per "$cw_med") s | $(perms "$cc_med") ms |
| ours / CLI (medians) | $(ratio "$ow_med" "$cw_med") | | $(ratio "$oc_med" "$cc_med") |
EOF
)"
printf '%s\n' "$TABLE"
if [ "$WRITE" = 1 ]; then
  python3 - "$ROOT/BENCHMARKS.md" "$TABLE" <<'EOF'
import sys
path, table = sys.argv[1], sys.argv[2]
text = open(path).read()
begin, end = "<!-- bench-ray:begin (generated by bench/ray.sh --write) -->", "<!-- bench-ray:end -->"
if begin not in text:
    sys.exit("BENCHMARKS.md has no bench-ray markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + begin + "\n" + table + "\n" + end + tail)
EOF
  say "BENCHMARKS.md updated"
fi
