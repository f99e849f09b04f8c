#!/usr/bin/env bash
# bench/secrets.sh — the cost of secrets redaction on the 200 MiB stage of scenario 3: the
# same stage with no secrets and with 3 secrets configured (whose values the output never
# holds, so every byte is scanned and none is masked; the target is within 1.2x), and with
# the 200 MiB made of the secret itself (every 20 bytes masked: the worst case for writing).
#
#   bench/secrets.sh              build, run, print a markdown table
#
# Options:
#   --runs N      counted runs per case after one warm-up (default 5); cases alternate
#   --no-build    use the existing target/release/codex-orchestrator (or $BENCH_BIN)
#   --keep        keep the temp directory (printed at the end)
# Environment: BENCH_BIN (our binary), TMPDIR (where the temp directory goes).
# Wall time per run is measured in this shell with $EPOCHREALTIME; the ratio is taken pair by
# pair (run i with secrets / run i without).
set -euo pipefail

RUNS=5
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "error: unknown option \`$1\`" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$BUILD" = 1 ] && [ -z "${BENCH_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p codex-orchestrator --bin codex-orchestrator >&2)
fi
BIN="${BENCH_BIN:-$ROOT/target/release/codex-orchestrator}"
BASE="$(mktemp -d "${TMPDIR:-/tmp}/co-bench-secrets.XXXXXX")"
[ "$KEEP" = 1 ] || trap 'rm -rf "$BASE"' EXIT

BIG_BYTES=209715200  # 200 MiB
A_CMD="head -c $BIG_BYTES /dev/zero | tr '\\\\0' a"
# 200 MiB of the 20-byte secret (10 485 760 masks).
S_CMD="yes \$API_TOKEN | tr -d '\\\\n' | head -c $BIG_BYTES"
mk() {  # dir secrets-json command
  mkdir -p "$1"
  printf '{%s"pipelines":[{"id":"big","stages":[{"kind":"command","id":"big","command":"%s"}]}]}\n' \
    "$2" "$3" > "$1/codex.orchestrator.json"
}
mk "$BASE/plain" "" "$A_CMD"
mk "$BASE/secrets" '"secrets":["API_TOKEN","*_KEY","DB_PASSWORD"],' "$A_CMD"
mk "$BASE/masked" '"secrets":["API_TOKEN","*_KEY","DB_PASSWORD"],' "$S_CMD"
export API_TOKEN="tok-Se3cret-Value-42x" DEPLOY_KEY="key-9Hidden-XYZ" DB_PASSWORD="correct-horse-battery"

one() {  # dir -> seconds on stdout
  local t0 t1
  rm -rf "$1/.runs"
  t0=$EPOCHREALTIME
  (cd "$1" && "$BIN" start big --format json >/dev/null 2>&1) || { echo "error: run in $1 failed" >&2; exit 1; }
  t1=$EPOCHREALTIME
  python3 -c "print(f'{$t1-$t0:.3f}')"
}

declare -a P S M
for c in plain secrets masked; do one "$BASE/$c" >/dev/null; done   # warm-up
for ((i = 0; i < RUNS; i++)); do
  P+=("$(one "$BASE/plain")"); S+=("$(one "$BASE/secrets")"); M+=("$(one "$BASE/masked")")
done
masks=$(python3 - "$BASE/masked" <<'EOF'
import json, sys, pathlib
m = next(pathlib.Path(sys.argv[1], ".runs").rglob("manifest.ext.json"))
print(json.loads(m.read_text())["commands"][0]["redactions"])
EOF
)

python3 - "$masks" "${P[*]}" "${S[*]}" "${M[*]}" <<'EOF'
import statistics, sys
masks = sys.argv[1]
p, s, m = ([float(x) for x in a.split()] for a in sys.argv[2:5])
f = lambda xs: f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}"
r = lambda xs: f(([a / b for a, b in zip(xs, p)]))
print(f"| case | runs | wall s: min / median / max | / no secrets, pair by pair: min / median / max |")
print(f"|---|---|---|---|")
print(f"| 200 MiB of `a`, no secrets | {len(p)} | {f(p)} | — |")
print(f"| 200 MiB of `a`, 3 secrets configured (none in the output) | {len(s)} | {f(s)} | {r(s)} |")
print(f"| 200 MiB of the secret itself, 3 secrets ({masks} masks) | {len(m)} | {f(m)} | {r(m)} |")
EOF
[ "$KEEP" = 1 ] && echo "kept: $BASE" >&2 || true
