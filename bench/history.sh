#!/usr/bin/env bash
# bench/history.sh — times the run-history queries (`runs list`, `runs stats`) over a large
# recorded history (default 10 000 runs; the target is under 50 ms per query).
#
#   bench/history.sh                 build, generate, reindex, time, print a markdown table
#
# Options:
#   --count N     runs in the generated history (default 10000)
#   --runs M      timed runs per query, after one warm-up (default 20)
#   --no-build    use the existing target/release/codex-orchestrator (or $BENCH_BIN)
#   --keep        keep the temp directory (printed at the end)
# Environment: BENCH_BIN (our binary), TMPDIR (where the temp directory goes).
#
# How: one real run of a 5-stage pipeline gives a template manifest; python3 writes N copies
# under .runs/<task>/cli/<run-id>/manifest.json with varied pipelines (4), statuses (~85%
# succeeded, 12% failed, 3% cancelled), start times over 30 days, stage durations and retry
# counts; `runs reindex` builds .runs/index.sqlite from them (timed once). Each query is then
# run M times; wall time per process (start to exit, output to /dev/null) is measured in this
# shell with $EPOCHREALTIME and summarised as min / median / max.
set -euo pipefail

COUNT=10000
RUNS=20
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "error: unknown option \`$1\`" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$BUILD" = 1 ] && [ -z "${BENCH_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p codex-orchestrator --bin codex-orchestrator >&2)
fi
BIN="${BENCH_BIN:-$ROOT/target/release/codex-orchestrator}"
[ -x "$BIN" ] || { echo "error: no binary at \`$BIN\` (build it or set BENCH_BIN)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 is needed to generate manifests" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/history-bench.XXXXXX")"
cleanup() { if [ "$KEEP" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
cd "$WORK"
export CODEX_ORCHESTRATOR_ROOT="$WORK"

cat > codex.orchestrator.json <<'EOF'
{"pipelines":[{"id":"template","stages":[
  {"kind":"command","id":"fmt","command":"true"},
  {"kind":"command","id":"lint","command":"true"},
  {"kind":"command","id":"build","command":"echo built"},
  {"kind":"command","id":"test","command":"echo tested"},
  {"kind":"command","id":"docs","command":"true"}]}]}
EOF
"$BIN" start template --format json >/dev/null 2>&1
TEMPLATE="$(ls .runs/0101/cli/*/manifest.json | head -n 1)"
cp "$TEMPLATE" template.json
rm -rf .runs

echo "generating $COUNT manifests ..." >&2
python3 - "$COUNT" <<'PY'
import copy, json, os, random, sys
from datetime import datetime, timedelta, timezone

count = int(sys.argv[1])
rng = random.Random(42)
template = json.load(open("template.json"))
pipelines = ["ci", "docs", "nightly", "lint"]
start0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
for i in range(count):
    t = start0 + timedelta(seconds=i * (30 * 86400 / count), milliseconds=rng.randrange(1000))
    run_id = t.strftime("%Y-%m-%dT%H-%M-%S-") + f"{t.microsecond // 1000:03d}Z-{rng.getrandbits(32):08x}"
    task = f"task-{i % 3}"
    roll = rng.random()
    status = "succeeded" if roll < 0.85 else ("failed" if roll < 0.97 else "cancelled")
    failing = rng.randrange(len(template["commands"])) if status != "succeeded" else None
    m = copy.deepcopy(template)
    base = f".runs/{task}/cli/{run_id}"
    m.update(run_id=run_id, task_id=task, task_slug=task, pipeline_id=pipelines[i % 4],
             pipeline_title=pipelines[i % 4], status=status, started_at=ts(t), updated_at=ts(t),
             heartbeat_at=ts(t), artifact_root=base, compat_path=f".runs/{task}/mcp/{run_id}",
             log_path=f"{base}/runner.ndjson", run_summary_path=f"{base}/run-summary.json",
             status_detail=None if failing is None else f"stage:{template['commands'][failing]['id']}:failed")
    clock = t
    for k, c in enumerate(m["commands"]):
        d = int(rng.lognormvariate(4, 1)) + 1
        c["log_path"] = f"{base}/commands/{k + 1:02d}-{c['id']}.ndjson"
        if failing is not None and k > failing:
            c.update(status="pending", started_at=None, completed_at=None, exit_code=None,
                     summary=None, duration_ms=None, attempts=None)
            c.pop("process", None)
            continue
        c.update(started_at=ts(clock), completed_at=ts(clock + timedelta(milliseconds=d)),
                 duration_ms=d, attempts=2 if rng.random() < 0.05 else 1)
        if k == failing:
            c.update(status="failed", exit_code=1, summary="Exited with code 1",
                     error_file=f"{base}/errors/{k + 1:02d}-{c['id']}.json")
        clock += timedelta(milliseconds=d)
    m["completed_at"] = ts(clock)
    d = os.path.join(".runs", task, "cli", run_id)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")
PY

now_us() { echo "${EPOCHREALTIME/./}"; }

t0=$(now_us)
"$BIN" runs reindex >&2
t1=$(now_us)
REINDEX_MS=$(( (t1 - t0) / 1000 ))
ls -l .runs/index.sqlite >&2

# time_query LABEL ARGS...: one warm-up, then $RUNS timed runs; prints a table row.
time_query() {
  local label="$1"; shift
  "$BIN" "$@" >/dev/null
  local samples=()
  for _ in $(seq "$RUNS"); do
    local a b
    a=$(now_us)
    "$BIN" "$@" >/dev/null
    b=$(now_us)
    samples+=($(( b - a )))
  done
  local sorted
  sorted=$(printf '%s\n' "${samples[@]}" | sort -n)
  local min med max
  min=$(echo "$sorted" | head -n 1)
  med=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
  max=$(echo "$sorted" | tail -n 1)
  printf '| `%s` | %d.%d | %d.%d | %d.%d |\n' "$label" \
    $((min / 1000)) $((min % 1000 / 100)) $((med / 1000)) $((med % 1000 / 100)) \
    $((max / 1000)) $((max % 1000 / 100))
}

echo
echo "History of $COUNT runs (index $(du -h .runs/index.sqlite | cut -f1)); \`runs reindex\`: ${REINDEX_MS} ms; $RUNS timed runs each:"
echo
echo "| query | min ms | median ms | max ms |"
echo "|---|---|---|---|"
time_query "runs list" runs list
time_query "runs list --pipeline ci --status failed" runs list --pipeline ci --status failed
time_query "runs list --since 2026-10-24 --format json" runs list --since 2026-10-24 --format json
time_query "runs stats" runs stats
time_query "runs stats --format json" runs stats --format json
time_query "runs stats --pipeline nightly" runs stats --pipeline nightly
time_query "runs show <id>" runs show "$(ls .runs/task-0/cli | tail -n 1)"
