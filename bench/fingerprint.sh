#!/usr/bin/env bash
# bench/fingerprint.sh — what fail-closed resume costs on this repository: a copy of its
# files (tracked and untracked-not-ignored, as `git ls-files` lists them) committed into a
# fresh git repository, and a 1-stage `true` pipeline run in it, against the same copy
# without `.git` (no repository state is taken there). The difference is the snapshot taken
# when the run stops (temporary index, `git add -A`, `write-tree`); stage fingerprints are
# digests of a few strings. Also times `resume` of a finished run (it compares the tree).
#
#   bench/fingerprint.sh           build, run, print a markdown table
#
# Options:
#   --runs N      counted runs per case after one warm-up (default 10); cases alternate
#   --no-build    use the existing target/release/codex-orchestrator (or $BENCH_BIN)
# Environment: BENCH_BIN (our binary), TMPDIR (where the temp directory goes).
set -euo pipefail

RUNS=10
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "error: unknown option \`$1\`" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$BUILD" = 1 ] && [ -z "${BENCH_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p codex-orchestrator --bin codex-orchestrator >&2)
fi
BIN="${BENCH_BIN:-$ROOT/target/release/codex-orchestrator}"
BASE="$(mktemp -d "${TMPDIR:-/tmp}/co-bench-fingerprint.XXXXXX")"
trap 'rm -rf "$BASE"' EXIT

mkdir -p "$BASE/git" "$BASE/plain"
(cd "$ROOT" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$BASE/git"
(cd "$ROOT" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$BASE/plain"
CONFIG='{"pipelines":[{"id":"one","stages":[{"kind":"command","id":"t","command":"true"}]}]}'
for d in git plain; do printf '%s\n' "$CONFIG" > "$BASE/$d/codex.orchestrator.json"; done
FILES=$(cd "$BASE/git" && find . -type f | wc -l)
BYTES=$(du -sb "$BASE/git" | cut -f1)
(cd "$BASE/git" && git init -q -b main && git add -A && \
  git -c user.name=b -c user.email=b@example.com commit -q -m copy)

one() {  # dir verb... -> seconds
  local t0 t1 dir="$1"; shift
  t0=$EPOCHREALTIME
  (cd "$dir" && "$BIN" "$@" >/dev/null 2>&1) || { echo "error: $* in $dir failed" >&2; exit 1; }
  t1=$EPOCHREALTIME
  python3 -c "print(f'{($t1-$t0)*1000:.1f}')"
}

declare -a G P R
one "$BASE/git" start one >/dev/null; one "$BASE/plain" start one >/dev/null
for ((i = 0; i < RUNS; i++)); do
  G+=("$(one "$BASE/git" start one)"); P+=("$(one "$BASE/plain" start one)")
  R+=("$(one "$BASE/git" resume --last)")
done

python3 - "$FILES" "$BYTES" "${G[*]}" "${P[*]}" "${R[*]}" <<'EOF'
import statistics, sys
files, size = sys.argv[1], int(sys.argv[2])
g, p, r = ([float(x) for x in a.split()] for a in sys.argv[3:6])
f = lambda xs: f"{min(xs):.1f} / {statistics.median(xs):.1f} / {max(xs):.1f}"
d = [a - b for a, b in zip(g, p)]
print(f"This repository's files: {files} files, {size / 2**20:.1f} MiB.\n")
print("| case | runs | wall ms: min / median / max |")
print("|---|---|---|")
print(f"| 1-stage `true`, in a git work tree (stop snapshot taken) | {len(g)} | {f(g)} |")
print(f"| the same outside git (no snapshot) | {len(p)} | {f(p)} |")
print(f"| difference, pair by pair | {len(d)} | {f(d)} |")
print(f"| `resume --last` of the finished run (fingerprints and tree compared) | {len(r)} | {f(r)} |")
EOF
