#!/usr/bin/env bash
# bench/run.sh — benchmarks our codex-orchestrator against the Node peer
# (npm @kbediako/codex-orchestrator 0.2.1) on the scenarios behind the targets in docs/ARCHITECTURE.md ("Performance targets").
#
#   bench/run.sh            build, run every scenario, print a markdown table
#   bench/run.sh --write    ... and put the table into BENCHMARKS.md (between its markers)
#
# Options:
#   --runs N        counted runs for scenarios 1 and 2 (default 10, at least 5; scenario 5 uses 5)
#   --big-runs N    counted runs of ours for the 200 MiB scenario 3 (default 3)
#   --big-peer-runs N  counted runs of the peer for scenario 3 (default 1: it takes ~5 min each)
#   --no-peer       skip the peer (our figures and the floors only)
#   --no-build      use the existing target/release/codex-orchestrator (or $BENCH_BIN)
#   --keep          keep the temp directory (printed at the end)
# Environment: BENCH_BIN (our binary), PEER_BIN (the peer's CLI; default: installed with npm into ~/.cache),
#   TMPDIR (where the temp directories go).
#
# Every timed run gets a fresh `.runs` (removed before the run, outside the timing). Runs of
# the compared commands alternate (A B A B ...) after one warm-up each, and ratios are taken
# pair by pair (run i of ours over run i of the other), then summarised as min / median / max.
# Wall time is measured in this shell with $EPOCHREALTIME (no fork per measurement); hyperfine
# is not used because it cannot interleave two commands run by run. Peak RSS comes from GNU
# `/usr/bin/time -v` ("Maximum resident set size"), manifest writes and fsyncs from `strace -f`.
set -uo pipefail

# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------
RUNS=10
BIG_RUNS=3
BIG_PEER_RUNS=1
WRITE=0
PEER=1
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --write) WRITE=1 ;;
    --runs) RUNS="$2"; shift ;;
    --big-runs) BIG_RUNS="$2"; shift ;;
    --big-peer-runs) BIG_PEER_RUNS="$2"; shift ;;
    --no-peer) PEER=0 ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$RUNS$BIG_RUNS$BIG_PEER_RUNS" in *[!0-9]*) echo "bench: --runs/--big-runs take a number" >&2; exit 2 ;; esac
[ "$RUNS" -ge 5 ] || { echo "bench: --runs must be at least 5" >&2; exit 2; }
[ "$BIG_RUNS" -ge 1 ] || { echo "bench: --big-runs must be at least 1" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '%s\n' "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The runs must not inherit a task id, root or runs dir from the caller.
unset MCP_RUNNER_TASK_ID CODEX_ORCHESTRATOR_TASK_ID TASK CODEX_ORCHESTRATOR_ROOT \
  CODEX_ORCHESTRATOR_RUNS_DIR CODEX_ORCHESTRATOR_OUT_DIR CODEX_ORCHESTRATOR_REPO_CONFIG_PATH \
  CODEX_ORCHESTRATOR_RUNTIME_MODE CODEX_ORCHESTRATOR_LOG

# ---------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------
is_root() { [ "$(id -u)" = 0 ]; }
APT_UPDATED=0
apt_install() { # pkg: installs a Debian package if we are root and apt-get exists
  is_root && command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null 2>&1
}

# Clock: bash >= 5 has $EPOCHREALTIME (no fork); otherwise date +%s%N (one fork per reading,
# the same for every command compared).
if [ -n "${EPOCHREALTIME:-}" ]; then
  now_us() { local t=${EPOCHREALTIME//[.,]/}; T=$((10#$t)); }
  CLOCK='bash $EPOCHREALTIME'
else
  now_us() { T=$(( $(date +%s%N) / 1000 )); }
  CLOCK='date +%s%N'
fi

HAVE_TIME=1
if [ ! -x /usr/bin/time ] || ! /usr/bin/time -v true >/dev/null 2>&1; then
  say "GNU time missing; installing package 'time'"
  apt_install time || true
  if [ ! -x /usr/bin/time ] || ! /usr/bin/time -v true >/dev/null 2>&1; then
    HAVE_TIME=0; say "skipping peak RSS: GNU /usr/bin/time -v unavailable (not root or no apt-get)"
  fi
fi
HAVE_STRACE=1
if ! command -v strace >/dev/null 2>&1; then
  say "strace missing; installing package 'strace'"
  apt_install strace || true
  command -v strace >/dev/null 2>&1 || { HAVE_STRACE=0; say "skipping scenario 4: strace unavailable (not root or no apt-get)"; }
fi
if [ "$HAVE_STRACE" = 1 ] && ! strace -f -qq -o /dev/null true >/dev/null 2>&1; then
  HAVE_STRACE=0; say "skipping scenario 4: strace cannot trace here (ptrace not permitted)"
fi
STRACE_OPTS=(-f -qq)
if [ "$HAVE_STRACE" = 1 ] && strace -f -qq --seccomp-bpf -e trace=fsync -o /dev/null true >/dev/null 2>&1; then
  STRACE_OPTS+=(--seccomp-bpf)  # untraced syscalls run at full speed
fi
HAVE_PY=1; command -v python3 >/dev/null 2>&1 || { HAVE_PY=0; say "skipping the byte-exact log check: python3 missing"; }

# ---------------------------------------------------------------------------------------------
# binaries
# ---------------------------------------------------------------------------------------------
OURS="${BENCH_BIN:-$ROOT/target/release/codex-orchestrator}"
if [ "$BUILD" = 1 ] && [ -z "${BENCH_BIN:-}" ]; then
  say "building the release binary (cargo build --release)"
  (cd "$ROOT" && cargo build --release --bin codex-orchestrator) >&2 || die "cargo build --release failed"
fi
[ -x "$OURS" ] || die "no binary at $OURS (drop --no-build or set BENCH_BIN)"

PEER_CLI=""
if [ "$PEER" = 1 ]; then
  if [ -n "${PEER_BIN:-}" ]; then
    PEER_CLI="$PEER_BIN"
  elif ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "skipping the peer: node/npm not found"; PEER=0
  else
    # The peer is installed here, with npm, into the cache .ci/run uses too: the repository
    # needs nothing outside itself.
    peer_cache="${XDG_CACHE_HOME:-$HOME/.cache}/codex-orchestrator-peer/0.2.1"
    PEER_CLI="$peer_cache/node_modules/.bin/codex-orchestrator"
    if [ ! -x "$PEER_CLI" ]; then
      say "installing the peer (npm @kbediako/codex-orchestrator@0.2.1 into $peer_cache)"
      mkdir -p "$peer_cache"
      (cd "$peer_cache" && { [ -f package.json ] || npm init -y >/dev/null 2>&1; } \
        && npm i --no-audit --no-fund "@kbediako/codex-orchestrator@0.2.1" >&2) \
        || { say "skipping the peer: npm install failed"; PEER=0; }
    fi
  fi
  if [ "$PEER" = 1 ] && [ ! -x "$PEER_CLI" ]; then say "skipping the peer: $PEER_CLI is not executable"; PEER=0; fi
fi

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
BASE="$(mktemp -d "${TMPDIR:-/tmp}/codex-bench.XXXXXX")" || die "cannot create a temp dir"
cleanup() { if [ "$KEEP" = 1 ]; then say "kept $BASE"; else rm -rf "$BASE"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# configs: one directory per scenario, each with its codex.orchestrator.json
# ---------------------------------------------------------------------------------------------
BIG_BYTES=209715200  # 200 MiB
BIG_CMD="head -c $BIG_BYTES /dev/zero | tr '\\\\0' a"   # JSON for: head -c N /dev/zero | tr '\0' a
mkconfig() { # dir pipeline-id stage-count command [graph]
  local dir=$1 id=$2 n=$3 cmd=$4 graph=${5:-} i sep=""
  mkdir -p "$dir"
  {
    printf '{\n  "pipelines": [\n    {\n      "id": "%s",\n      "title": "%s",\n' "$id" "$id"
    [ -n "$graph" ] && printf '      "concurrency": 2,\n'
    printf '      "stages": [\n'
    for ((i = 1; i <= n; i++)); do
      printf '%s        {"kind": "command", "id": "s%d", "title": "s%d", "command": "%s"%s}' \
        "$sep" "$i" "$i" "$cmd" "${graph:+, \"dependsOn\": []}"
      sep=$',\n'
    done
    printf '\n      ]\n    }\n  ]\n}\n'
  } >"$dir/codex.orchestrator.json"
}
mkconfig "$BASE/s1" one 1 true
mkconfig "$BASE/s2" forty 40 true
mkconfig "$BASE/s3" big 1 "$BIG_CMD"
mkconfig "$BASE/s3b" lines 1 "yes | head -c $BIG_BYTES"
SIZES=(250 1000 4000)  # scenario 5: independent stages at concurrency 2
for n in "${SIZES[@]}"; do mkconfig "$BASE/s5-$n" graph "$n" true graph; done
for s in s1 s2 s3; do cp -r "$BASE/$s" "$BASE/$s-peer"; done

# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
# cmd_ours/cmd_peer PIPELINE [extra flags] set CMD to the argv of one run.
cmd_ours() { local p=$1; shift; CMD=("$OURS" start "$p" --format json --runtime-mode cli "$@"); }
cmd_peer() { local p=$1; shift; CMD=("$PEER_CLI" start "$p" --format json --runtime-mode cli "$@"); }

# check DIR LABEL RC: a run must exit 0 and report "succeeded".
check() {
  local dir=$1 label=$2 rc=$3
  if [ "$rc" != 0 ] || ! grep -q '"status": *"succeeded"' "$dir/.out"; then
    say "$label failed (exit $rc) in $dir; stderr tail:"; tail -n 20 "$dir/.err" >&2
    KEEP=1; exit 1
  fi
}

# warm DIR LABEL: one untimed run under a time limit (catches hangs and failures early).
warm() {
  local dir=$1 label=$2 rc
  rm -rf "$dir/.runs"
  (cd "$dir" && timeout 900 "${CMD[@]}" >"$dir/.out" 2>"$dir/.err"); rc=$?
  check "$dir" "$label (warm-up)" "$rc"
}

# timed DIR LABEL: one timed run of CMD in DIR; sets T_RUN (microseconds).
timed() {
  local dir=$1 label=$2 rc t0
  rm -rf "$dir/.runs"
  sync_quiet
  cd "$dir" || die "cd $dir"
  now_us; t0=$T
  "${CMD[@]}" >"$dir/.out" 2>"$dir/.err"; rc=$?
  now_us; T_RUN=$((T - t0))
  cd "$ROOT" || die "cd $ROOT"
  check "$dir" "$label" "$rc"
}

# timed_rss DIR LABEL: like timed, under /usr/bin/time -v; also sets RSS_KB.
timed_rss() {
  local dir=$1 label=$2 rc t0
  rm -rf "$dir/.runs"
  sync_quiet
  cd "$dir" || die "cd $dir"
  now_us; t0=$T
  /usr/bin/time -v -o "$dir/.time" "${CMD[@]}" >"$dir/.out" 2>"$dir/.err"; rc=$?
  now_us; T_RUN=$((T - t0))
  cd "$ROOT" || die "cd $ROOT"
  check "$dir" "$label" "$rc"
  RSS_KB=$(awk -F': *' '/Maximum resident set size/ {print $2}' "$dir/.time")
}

# Flush dirty pages left by the previous run so it does not slow the next one (untimed).
sync_quiet() { sync 2>/dev/null || true; }

# floor loops, run in this shell (no extra shell start-up counted)
floor_loop() { local n=$1 i; for ((i = 0; i < n; i++)); do sh -c true; done; }
floor_xargs() { yes true | head -n "$1" | xargs -P2 -n1 sh -c; }
timed_fn() { local t0; now_us; t0=$T; "$@"; now_us; T_RUN=$((T - t0)); }

# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
# stats SCALE DECIMALS values... -> "min / median / max" of values/SCALE
stats() {
  local scale=$1 dec=$2; shift 2
  [ $# -gt 0 ] || { echo "—"; return; }
  printf '%s\n' "$@" | sort -g | awk -v s="$scale" -v d="$dec" '
    { v[NR] = $1 / s }
    END { if (NR == 0) { print "—"; exit }
          m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          f = "%." d "f"; printf(f " / " f " / " f "\n", v[1], m, v[NR]) }'
}
# median SCALE values... -> median of values/SCALE (full precision)
median() {
  local scale=$1; shift
  printf '%s\n' "$@" | sort -g | awk -v s="$scale" '
    { v[NR] = $1 / s }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf("%.6g\n", m) }'
}
# ratios NAME_A NAME_B -> prints a[i]/b[i] for each i (one per line)
ratios() {
  local -n ra=$1 rb=$2
  local i
  for ((i = 0; i < ${#ra[@]}; i++)); do awk -v a="${ra[$i]}" -v b="${rb[$i]}" 'BEGIN { if (b != 0) printf("%.6g\n", a / b) }'; done
}
# diffs_per NAME_A NAME_B N -> (a[i]-b[i])/N
diffs_per() {
  local -n da=$1 db=$2
  local n=$3 i
  for ((i = 0; i < ${#da[@]}; i++)); do awk -v a="${da[$i]}" -v b="${db[$i]}" -v n="$n" 'BEGIN { printf("%.6g\n", (a - b) / n) }'; done
}
calc() { awk "BEGIN { printf(\"%.6g\", $1) }"; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

ROWS=()     # markdown rows of the results table
TARGETS=()  # markdown rows of the targets table
NOTES=()    # lines printed under the tables
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
NA="—"

# ---------------------------------------------------------------------------------------------
# scenario 1: 1-stage `true` (start-up cost)
# ---------------------------------------------------------------------------------------------
say "scenario 1: 1-stage true pipeline, 1 warm-up + $RUNS counted runs each, alternating"
cmd_ours one; warm "$BASE/s1" "ours 1-stage"
if [ "$PEER" = 1 ]; then cmd_peer one; warm "$BASE/s1-peer" "peer 1-stage"; fi
S1_OURS=(); S1_PEER=()
for ((r = 0; r < RUNS; r++)); do
  cmd_ours one; timed "$BASE/s1" "ours 1-stage"; S1_OURS+=("$T_RUN")
  if [ "$PEER" = 1 ]; then cmd_peer one; timed "$BASE/s1-peer" "peer 1-stage"; S1_PEER+=("$T_RUN"); fi
done
if [ "$PEER" = 1 ]; then
  row "1. 1-stage \`true\` (start-up)" "wall ms" "$RUNS" "$(stats 1000 1 "${S1_OURS[@]}")" \
    "peer: $(stats 1000 1 "${S1_PEER[@]}")" "$(stats 1 4 $(ratios S1_OURS S1_PEER))"
else
  row "1. 1-stage \`true\` (start-up)" "wall ms" "$RUNS" "$(stats 1000 1 "${S1_OURS[@]}")" "$NA" "$NA"
fi
S1_MED_MS=$(median 1000 "${S1_OURS[@]}")

# ---------------------------------------------------------------------------------------------
# scenario 2: 40-stage `true`, against the peer and the floor (40 `sh -c true` in a loop)
# ---------------------------------------------------------------------------------------------
say "scenario 2: 40-stage true pipeline and the 40x sh -c true floor, 1 warm-up + $RUNS counted runs each"
cmd_ours forty; warm "$BASE/s2" "ours 40-stage"
if [ "$PEER" = 1 ]; then cmd_peer forty; warm "$BASE/s2-peer" "peer 40-stage"; fi
floor_loop 40
S2_OURS=(); S2_PEER=(); S2_FLOOR=()
for ((r = 0; r < RUNS; r++)); do
  cmd_ours forty; timed "$BASE/s2" "ours 40-stage"; S2_OURS+=("$T_RUN")
  if [ "$PEER" = 1 ]; then cmd_peer forty; timed "$BASE/s2-peer" "peer 40-stage"; S2_PEER+=("$T_RUN"); fi
  timed_fn floor_loop 40; S2_FLOOR+=("$T_RUN")
done
if [ "$PEER" = 1 ]; then
  row "2. 40-stage \`true\`" "wall ms" "$RUNS" "$(stats 1000 1 "${S2_OURS[@]}")" \
    "peer: $(stats 1000 1 "${S2_PEER[@]}")" "$(stats 1 4 $(ratios S2_OURS S2_PEER))"
fi
row "2. 40-stage \`true\`" "wall ms" "$RUNS" "$(stats 1000 1 "${S2_OURS[@]}")" \
  "floor, 40× \`sh -c true\` loop: $(stats 1000 1 "${S2_FLOOR[@]}")" "$(stats 1 2 $(ratios S2_OURS S2_FLOOR))"
row "2. 40-stage \`true\`" "ms per stage beyond the spawn, (ours − floor) / 40" "$RUNS" \
  "$(stats 1 3 $(diffs_per S2_OURS S2_FLOOR 40000))" "$NA" "$NA"

# ---------------------------------------------------------------------------------------------
# scenario 3: one stage printing 200 MiB
# ---------------------------------------------------------------------------------------------
# verify_log DIR BYTE-GENERATOR...: do the stdout chunks of the stage log give the printed bytes?
verify_log() {
  local dir=$1; shift
  [ "$HAVE_PY" = 1 ] || { echo "not checked"; return; }
  local expect got log
  expect=$("$@" | sha256sum | cut -d' ' -f1)
  log=$(find "$dir/.runs" -path '*/cli/*/commands/*.ndjson' | head -n 1)
  got=$(python3 - "$log" <<'PY'
import base64, hashlib, json, sys
h = hashlib.sha256(); n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        ev = json.loads(line)
        if ev.get("type") == "exec:chunk" and ev.get("stream") == "stdout":
            d = ev.get("data", "")
            b = base64.b64decode(d) if ev.get("encoding") == "base64" else d.encode("utf-8")
            h.update(b); n += len(b)
print(h.hexdigest(), n)
PY
  )
  if [ "${got%% *}" = "$expect" ]; then echo "yes"; else echo "no (log gives ${got#* } bytes, sha256 ${got%% *})"; fi
}
gen_a() { head -c "$BIG_BYTES" /dev/zero | tr '\0' a; }
gen_y() { yes | head -c "$BIG_BYTES"; }

S3_PEER_N=0; [ "$PEER" = 1 ] && S3_PEER_N=$BIG_PEER_RUNS
say "scenario 3: one stage printing 200 MiB, 1 warm-up (ours) + $BIG_RUNS counted runs (ours), $S3_PEER_N (peer)"
cmd_ours big; warm "$BASE/s3" "ours 200 MiB"
S3_OURS=(); S3_PEER=(); S3_RSS_OURS=(); S3_RSS_PEER=(); S3_DISK_OURS=(); S3_DISK_PEER=()
for ((r = 0; r < BIG_RUNS || r < S3_PEER_N; r++)); do
  if [ "$r" -lt "$BIG_RUNS" ]; then
    cmd_ours big
    if [ "$HAVE_TIME" = 1 ]; then timed_rss "$BASE/s3" "ours 200 MiB"; S3_RSS_OURS+=("$RSS_KB")
    else timed "$BASE/s3" "ours 200 MiB"; fi
    S3_OURS+=("$T_RUN")
    S3_DISK_OURS+=("$(du -sb "$BASE/s3/.runs" | cut -f1)")
  fi
  if [ "$r" -lt "$S3_PEER_N" ]; then
    say "scenario 3: peer run $((r + 1))/$S3_PEER_N (several minutes)"
    cmd_peer big
    if [ "$HAVE_TIME" = 1 ]; then timed_rss "$BASE/s3-peer" "peer 200 MiB"; S3_RSS_PEER+=("$RSS_KB")
    else timed "$BASE/s3-peer" "peer 200 MiB"; fi
    S3_PEER+=("$T_RUN")
    S3_DISK_PEER+=("$(du -sb "$BASE/s3-peer/.runs" | cut -f1)")
    rm -rf "$BASE/s3-peer/.runs"  # 600 MiB
  fi
done
BYTE_EXACT=$(verify_log "$BASE/s3" gen_a)
S3_LABEL="3. one stage printing 200 MiB of \`a\`"
S3_RUNS_TXT="$BIG_RUNS"; [ "$S3_PEER_N" != 0 ] && S3_RUNS_TXT="$BIG_RUNS ours, $S3_PEER_N peer"
S3_DISK_RATIO_OURS=(); for d in "${S3_DISK_OURS[@]}"; do S3_DISK_RATIO_OURS+=("$(calc "$d / $BIG_BYTES")"); done
if [ "$S3_PEER_N" != 0 ]; then
  S3_DISK_RATIO_PEER=(); for d in "${S3_DISK_PEER[@]}"; do S3_DISK_RATIO_PEER+=("$(calc "$d / $BIG_BYTES")"); done
  # pairs: run i of ours with run i of the peer, for the runs both have
  pairs() { local -n pa=$1 pb=$2; local n=${#pb[@]} i; P_A=(); P_B=(); for ((i = 0; i < n && i < ${#pa[@]}; i++)); do P_A+=("${pa[$i]}"); P_B+=("${pb[$i]}"); done; }
  pairs S3_OURS S3_PEER
  row "$S3_LABEL" "wall s" "$S3_RUNS_TXT" "$(stats 1000000 2 "${S3_OURS[@]}")" \
    "peer: $(stats 1000000 2 "${S3_PEER[@]}")" "$(stats 1 4 $(ratios P_A P_B))"
  if [ "$HAVE_TIME" = 1 ]; then
    pairs S3_RSS_OURS S3_RSS_PEER
    row "$S3_LABEL" "runner peak RSS MiB" "$S3_RUNS_TXT" "$(stats 1024 1 "${S3_RSS_OURS[@]}")" \
      "peer: $(stats 1024 1 "${S3_RSS_PEER[@]}")" "$(stats 1 4 $(ratios P_A P_B))"
  fi
  pairs S3_DISK_OURS S3_DISK_PEER
  row "$S3_LABEL" "bytes on disk (\`du -sb .runs\`) / bytes printed" "$S3_RUNS_TXT" "$(stats 1 3 "${S3_DISK_RATIO_OURS[@]}")" \
    "peer: $(stats 1 3 "${S3_DISK_RATIO_PEER[@]}")" "$(stats 1 4 $(ratios P_A P_B))"
else
  row "$S3_LABEL" "wall s" "$BIG_RUNS" "$(stats 1000000 2 "${S3_OURS[@]}")" "$NA" "$NA"
  [ "$HAVE_TIME" = 1 ] && row "$S3_LABEL" "runner peak RSS MiB" "$BIG_RUNS" "$(stats 1024 1 "${S3_RSS_OURS[@]}")" "$NA" "$NA"
  row "$S3_LABEL" "bytes on disk (\`du -sb .runs\`) / bytes printed" "$BIG_RUNS" "$(stats 1 3 "${S3_DISK_RATIO_OURS[@]}")" "$NA" "$NA"
fi
NOTES+=("Scenario 3 (\`head -c $BIG_BYTES /dev/zero | tr '\\0' a\`, one 200 MiB line) has fewer counted runs: $BIG_RUNS of ours after a warm-up, $S3_PEER_N of the peer without warm-up (a peer run takes minutes); the first run of ours is paired with the first of the peer, and so on. Our stage log reproduces the output byte for byte: $BYTE_EXACT.")

# 3b: the same volume as 2-byte lines (`yes`), ours only: JSON escapes every newline.
say "scenario 3b: one stage printing 200 MiB of 'y\\n' lines (ours only, 1 run)"
cmd_ours lines
if [ "$HAVE_TIME" = 1 ]; then timed_rss "$BASE/s3b" "ours 200 MiB lines"; S3B_RSS=$RSS_KB; else timed "$BASE/s3b" "ours 200 MiB lines"; fi
S3B_T=$T_RUN
S3B_DISK=$(calc "$(du -sb "$BASE/s3b/.runs" | cut -f1) / $BIG_BYTES")
BYTE_EXACT_B=$(verify_log "$BASE/s3b" gen_y)
S3B_LABEL="3b. one stage printing 200 MiB of \`y\\n\` lines (ours only)"
row "$S3B_LABEL" "wall s" 1 "$(stats 1000000 2 "$S3B_T")" "$NA" "$NA"
[ "$HAVE_TIME" = 1 ] && row "$S3B_LABEL" "runner peak RSS MiB" 1 "$(stats 1024 1 "$S3B_RSS")" "$NA" "$NA"
row "$S3B_LABEL" "bytes on disk (\`du -sb .runs\`) / bytes printed" 1 "$(printf '%.3f' "$S3B_DISK")" "$NA" "$NA"
NOTES+=("Scenario 3b (\`yes | head -c $BIG_BYTES\`): each 2-byte line \`y\\n\` is stored JSON-escaped as 3 bytes (\`y\\\\n\`) in \`exec:chunk\` data. Byte-exact: $BYTE_EXACT_B.")
rm -rf "$BASE/s3/.runs" "$BASE/s3b/.runs"

# ---------------------------------------------------------------------------------------------
# scenario 4: manifest writes and fsyncs (strace)
# ---------------------------------------------------------------------------------------------
# trace_counts FILE -> sets MAN (renames onto a run's manifest.json, not the mcp redirect stub),
#   FSY (fsync + fdatasync calls), FSY_MS (time spent inside them, from strace -T),
#   DURABLE (yes if an fsync follows the last manifest rename).
trace_counts() {
  local f=$1
  read -r MAN FSY FSY_MS DURABLE < <(awk '
    function dur() { if (match($0, /<[0-9.]+>$/)) return substr($0, RSTART + 1, RLENGTH - 2); return 0 }
    { sub(/^[0-9]+ +/, "") }                        # the pid column (strace -f pads it)
    /^<\.\.\. (fsync|fdatasync) resumed>/ { t += dur(); next }
    /resumed>/ { next }
    /^rename(at2?)?\(/ {
      n = split($0, q, "\""); tgt = ""
      for (i = 2; i <= n; i += 2) tgt = q[i]          # last quoted string: the target path
      if (tgt ~ /(^|\/)manifest\.json$/ && tgt !~ /\/mcp\//) { man++; last = NR }
      next
    }
    /^(fsync|fdatasync)\(/ { fs++; lastfs = NR; t += dur() }
    END { printf("%d %d %.1f %s\n", man, fs, t * 1000, (man > 0 && lastfs > last) ? "yes" : "no") }' "$f")
}
strace_run() { # dir label -> trace file in dir/.strace
  local dir=$1 label=$2 rc
  rm -rf "$dir/.runs"
  (cd "$dir" && strace "${STRACE_OPTS[@]}" -T -e trace=rename,renameat,renameat2,fsync,fdatasync \
    -o "$dir/.strace" "${CMD[@]}" >"$dir/.out" 2>"$dir/.err"); rc=$?
  check "$dir" "$label (strace)" "$rc"
}
S4_RUNS=3
if [ "$HAVE_STRACE" = 1 ]; then
  say "scenario 4: manifest renames and fsyncs with strace ($S4_RUNS runs of 1 and 40 stages each; 200 MiB and 1000 stages once, ours)"
  M1_OURS=(); M40_OURS=(); F40_OURS=(); FMS40_OURS=(); DUR_OURS=(); M1_PEER=(); M40_PEER=(); F40_PEER=()
  for ((r = 0; r < S4_RUNS; r++)); do
    cmd_ours one; strace_run "$BASE/s1" "ours 1-stage"; trace_counts "$BASE/s1/.strace"; M1_OURS+=("$MAN")
    cmd_ours forty; strace_run "$BASE/s2" "ours 40-stage"; trace_counts "$BASE/s2/.strace"
    M40_OURS+=("$MAN"); F40_OURS+=("$FSY"); FMS40_OURS+=("$FSY_MS"); DUR_OURS+=("$DURABLE")
    if [ "$PEER" = 1 ]; then
      cmd_peer one; strace_run "$BASE/s1-peer" "peer 1-stage"; trace_counts "$BASE/s1-peer/.strace"; M1_PEER+=("$MAN")
      cmd_peer forty; strace_run "$BASE/s2-peer" "peer 40-stage"; trace_counts "$BASE/s2-peer/.strace"
      M40_PEER+=("$MAN"); F40_PEER+=("$FSY")
    fi
  done
  cmd_ours big; strace_run "$BASE/s3" "ours 200 MiB"; trace_counts "$BASE/s3/.strace"; MBIG_OURS=$MAN
  rm -rf "$BASE/s3/.runs"
  cmd_ours graph --concurrency 2; strace_run "$BASE/s5-1000" "ours 1000-stage graph"; trace_counts "$BASE/s5-1000/.strace"
  M1000_OURS=$MAN; F1000_OURS=$FSY
  M1_MIN=$(printf '%s\n' "${M1_OURS[@]}" | sort -n | head -n 1)
  M40_MAX=$(printf '%s\n' "${M40_OURS[@]}" | sort -n | tail -n 1)
  SLOPE_OURS=$(calc "($M40_MAX - $M1_MIN) / 39")
  DURABLE_ALL=yes; for d in "${DUR_OURS[@]}"; do [ "$d" = yes ] || DURABLE_ALL=no; done
  L4="4. manifest writes (renames onto manifest.json)"
  if [ "$PEER" = 1 ]; then
    row "$L4" "1-stage run" "$S4_RUNS" "$(stats 1 0 "${M1_OURS[@]}")" "peer: $(stats 1 0 "${M1_PEER[@]}")" "$(stats 1 3 $(ratios M1_OURS M1_PEER))"
    row "$L4" "40-stage run" "$S4_RUNS" "$(stats 1 0 "${M40_OURS[@]}")" "peer: $(stats 1 0 "${M40_PEER[@]}")" "$(stats 1 3 $(ratios M40_OURS M40_PEER))"
    row "4. fsync + fdatasync calls" "40-stage run" "$S4_RUNS" "$(stats 1 0 "${F40_OURS[@]}")" "peer: $(stats 1 0 "${F40_PEER[@]}")" "$NA"
  else
    row "$L4" "1-stage run" "$S4_RUNS" "$(stats 1 0 "${M1_OURS[@]}")" "$NA" "$NA"
    row "$L4" "40-stage run" "$S4_RUNS" "$(stats 1 0 "${M40_OURS[@]}")" "$NA" "$NA"
    row "4. fsync + fdatasync calls" "40-stage run" "$S4_RUNS" "$(stats 1 0 "${F40_OURS[@]}")" "$NA" "$NA"
  fi
  row "4. fsync + fdatasync calls" "ms inside them (strace -T), 40-stage run" "$S4_RUNS" "$(stats 1 1 "${FMS40_OURS[@]}")" "$NA" "$NA"
  row "$L4" "200 MiB 1-stage run (3200 chunks of 64 KiB)" 1 "$MBIG_OURS" "$NA" "$NA"
  row "$L4" "1000-stage graph, concurrency 2" 1 "$M1000_OURS ($(calc "$M1000_OURS / 1000") per stage)" "$NA" "$NA"
  row "4. fsync + fdatasync calls" "1000-stage graph, concurrency 2" 1 "$F1000_OURS" "$NA" "$NA"
  NOTES+=("Scenario 4 counts, under \`strace -f\`, the \`rename\`/\`renameat\`/\`renameat2\` calls whose target is a run's \`manifest.json\` (the \`mcp/\` redirect stub excluded) and every \`fsync\`/\`fdatasync\` of the process tree; not timed.")
  rm -rf "$BASE/s5-1000/.runs"
fi

# ---------------------------------------------------------------------------------------------
# scenario 5: scaling: 250, 1000 and 4000 independent stages at concurrency 2 (ours only)
# against xargs -P2
# ---------------------------------------------------------------------------------------------
# record_bytes DIR -> sets WB (bytes written to manifest.json), WBX (to manifest.ext.json), NW
#   (writes of manifest.json), FINAL / FINALX (final sizes) from the persister's own trace of one
#   run that is NOT under strace (`CODEX_ORCHESTRATOR_LOG=shared_manifest=trace`: one line per
#   write with the bytes of both files, `sidecar_bytes=0` when the sidecar was unchanged and not
#   rewritten); and WB_ST / NW_ST (the same counted from `write` calls on the temp files) and
#   FSYNCS (fsync + fdatasync) from one more run under `strace -f -y -s 0`, with its wall T_ST.
#   Both untimed. Why two runs: past 1 MiB the persister writes about once a second, so the bytes
#   written follow the run's wall time, and `strace -f` makes a run of thousands of stages
#   several times slower: the traced run is a slower run, not the same one.
record_bytes() {
  local dir=$1 rc t0
  rm -rf "$dir/.runs"
  (cd "$dir" && CODEX_ORCHESTRATOR_LOG=shared_manifest=trace "${CMD[@]}" >"$dir/.out" 2>"$dir/.err"); rc=$?
  check "$dir" "bytes run (persister trace)" "$rc"
  read -r WB WBX NW < <(awk '
    / manifest written / {
      nw++
      if (match($0, / bytes=[0-9]+/)) wb += substr($0, RSTART + 7, RLENGTH - 7)
      if (match($0, / sidecar_bytes=[0-9]+/)) wbx += substr($0, RSTART + 15, RLENGTH - 15)
    }
    END { printf("%d %d %d\n", wb, wbx, nw) }' "$dir/.err")
  local run; run=$(find "$dir/.runs" -path '*/cli/*/manifest.json' | head -n 1)
  FINAL=$(stat -c %s "$run"); FINALX=$(stat -c %s "${run%/manifest.json}/manifest.ext.json" 2>/dev/null || echo 0)
  rm -rf "$dir/.runs"
  t0=$EPOCHREALTIME
  (cd "$dir" && strace -f -qq -y -s 0 -e trace=write,fsync,fdatasync,rename,renameat,renameat2 \
    -o "$dir/.strace-bytes" "${CMD[@]}" >"$dir/.out" 2>"$dir/.err"); rc=$?
  T_ST=$(calc "$EPOCHREALTIME - $t0")
  check "$dir" "bytes run (strace)" "$rc"
  read -r WB_ST NW_ST FSYNCS < <(awk '
    { sub(/^[0-9]+ +/, "") }
    /^write\(/ && /\.manifest\.json\.[0-9a-f]+\.tmp>/ { if (match($0, /= [0-9]+$/)) wb += substr($0, RSTART + 2) }
    /^rename(at2?)?\(/ && /\/cli\/[^"]*\/manifest\.json"/ { nw++ }
    /^(fsync|fdatasync)\(/ { fs++ }
    END { printf("%d %d %d\n", wb, nw, fs) }' "$dir/.strace-bytes")
  rm -f "$dir/.strace-bytes"
}
S5_RUNS=3  # each run of ours takes seconds
say "scenario 5: ${SIZES[*]} independent true stages at concurrency 2 and the xargs -P2 floor, 1 warm-up + $S5_RUNS counted runs each"
declare -A S5_MED_WALL S5_MED_OV S5_MED_RSS S5_RATIO S5_WRITES S5_FSYNCS
for n in "${SIZES[@]}"; do
  dir="$BASE/s5-$n"
  cmd_ours graph --concurrency 2; warm "$dir" "ours $n-stage graph"
  floor_xargs "$n"
  S5_OURS=(); S5_FLOOR=(); S5_RSS=()
  for ((r = 0; r < S5_RUNS; r++)); do
    cmd_ours graph --concurrency 2
    if [ "$HAVE_TIME" = 1 ]; then timed_rss "$dir" "ours $n-stage graph"; S5_RSS+=("$RSS_KB")
    else timed "$dir" "ours $n-stage graph"; fi
    S5_OURS+=("$T_RUN")
    timed_fn floor_xargs "$n"; S5_FLOOR+=("$T_RUN")
  done
  S5_LABEL="5. $n independent \`true\` stages, concurrency 2"
  row "$S5_LABEL" "wall s" "$S5_RUNS" "$(stats 1000000 2 "${S5_OURS[@]}")" \
    "floor, $n× \`sh -c true\` via \`xargs -P2\`: $(stats 1000000 2 "${S5_FLOOR[@]}")" "$(stats 1 2 $(ratios S5_OURS S5_FLOOR))"
  row "$S5_LABEL" "overhead ms per stage beyond the floor, (ours − floor) / $n" "$S5_RUNS" \
    "$(stats 1 3 $(diffs_per S5_OURS S5_FLOOR $((n * 1000))))" "$NA" "$NA"
  [ "$HAVE_TIME" = 1 ] && row "$S5_LABEL" "runner peak RSS MiB" "$S5_RUNS" "$(stats 1024 1 "${S5_RSS[@]}")" "$NA" "$NA"
  S5_MED_WALL[$n]=$(median 1000000 "${S5_OURS[@]}")
  S5_MED_OV[$n]=$(median 1 $(diffs_per S5_OURS S5_FLOOR $((n * 1000))))
  [ "$HAVE_TIME" = 1 ] && S5_MED_RSS[$n]=$(median 1024 "${S5_RSS[@]}")
  if [ "$HAVE_STRACE" = 1 ]; then
    record_bytes "$dir"
    S5_RATIO[$n]=$(calc "$WB / $FINAL"); S5_WRITES[$n]=$NW; S5_FSYNCS[$n]=$FSYNCS
    row "$S5_LABEL" "manifest.json: writes; bytes written / final size (final KB)" 1 \
      "$NW writes; $(printf '%.1f' "${S5_RATIO[$n]}")× ($(calc "$FINAL / 1000" | xargs printf '%.0f') KB); under \`strace -f\` ($(printf '%.1f' "$T_ST") s): $NW_ST writes, $(printf '%.1f' "$(calc "$WB_ST / $FINAL")")×" "$NA" "$NA"
    row "$S5_LABEL" "manifest.ext.json: bytes written / final size (final KB)" 1 \
      "$(printf '%.1f' "$(calc "$WBX / ($FINALX + ($FINALX == 0))")")× ($(calc "$FINALX / 1000" | xargs printf '%.0f') KB)" "$NA" "$NA"
    row "$S5_LABEL" "fsync + fdatasync calls" 1 "$FSYNCS ($(calc "$FSYNCS / $n" | xargs printf '%.2f') per stage)" "$NA" "$NA"
  fi
  rm -rf "$dir/.runs"
done
NOTES+=("Scenario 5 times our binary under \`/usr/bin/time -v\` (one extra fork+exec, under 1 ms, on a run of seconds); its write and byte counts come from one more run per size, not timed, from the persister's own trace (\`CODEX_ORCHESTRATOR_LOG=shared_manifest=trace\`: each write with the bytes of both files); the same counted under \`strace -f -y\` are shown beside them (that run is several times slower, and past 1 MiB the persister writes about once a second, so it writes more often per stage); fsync + fdatasync calls come from the strace run.")

# ---------------------------------------------------------------------------------------------
# targets (docs/ARCHITECTURE.md "Performance targets"), judged on medians
# ---------------------------------------------------------------------------------------------
verdict_le() { # value limit -> "met" or "missed by X% (value vs limit)"
  if le "$1" "$2"; then echo "met"; else echo "missed, $(calc "($1 / $2 - 1) * 100" | xargs printf '%.0f')% over"; fi
}
verdict_ge() {
  if le "$2" "$1"; then echo "met"; else echo "missed, $(calc "(1 - $1 / $2) * 100" | xargs printf '%.0f')% short"; fi
}
trow() { TARGETS+=("| $1 | $2 | $3 |"); }
r_floor=$(median 1 $(ratios S2_OURS S2_FLOOR))
trow "40-stage \`true\` pipeline: at most 2× the 40 \`sh -c true\` loop" "$(printf '%.2f' "$r_floor")× the loop" "$(verdict_le "$r_floor" 2)"
if [ "$PEER" = 1 ]; then
  speed=$(calc "1 / $(median 1 $(ratios S2_OURS S2_PEER))")
  trow "40-stage \`true\` pipeline: at least 10× faster than the peer" "$(printf '%.1f' "$speed")× faster" "$(verdict_ge "$speed" 10)"
fi
if [ "$HAVE_TIME" = 1 ]; then
  rss_mib=$(median 1024 "${S3_RSS_OURS[@]}")
  trow "200 MiB stage: runner peak RSS under 32 MiB" "$(printf '%.1f' "$rss_mib") MiB" "$(if le "$rss_mib" 32; then echo met; else verdict_le "$rss_mib" 32; fi)"
fi
exact_verdict() { case "$1" in yes) echo met ;; "not checked") echo "not checked" ;; *) echo missed ;; esac; }
trow "200 MiB stage: logs byte-exact" "stdout chunks of the stage log reproduce the output: \`a\` line $BYTE_EXACT, \`y\\n\` lines $BYTE_EXACT_B" \
  "$(v=$(exact_verdict "$BYTE_EXACT"); [ "$(exact_verdict "$BYTE_EXACT_B")" = met ] || v=$(exact_verdict "$BYTE_EXACT_B"); echo "$v")"
disk=$(median 1 "${S3_DISK_RATIO_OURS[@]}")
trow "200 MiB stage: disk used at most 1.3× the output" "$(printf '%.3f' "$disk")× (one 200 MiB line of \`a\`)" "$(verdict_le "$disk" 1.3)"
trow "200 MiB stage: disk used at most 1.3× the output" "$(printf '%.3f' "$S3B_DISK")× (\`yes\`: 2-byte lines, 1 run)" "$(verdict_le "$S3B_DISK" 1.3)"
if [ "$HAVE_STRACE" = 1 ]; then
  trow "Manifest writes: a constant plus at most 2 per stage" "1 stage: ${M1_OURS[*]}; 40 stages: ${M40_OURS[*]} ($S4_RUNS runs each); worst case (max@40 − min@1) / 39 = $(printf '%.2f' "$SLOPE_OURS") per stage" "$(verdict_le "$SLOPE_OURS" 2)"
  extra=$((MBIG_OURS - M1_MIN))
  trow "Manifest writes: none per output chunk" "$MBIG_OURS for the 200 MiB stage (3200 chunks) vs ${M1_OURS[*]} for \`true\`" \
    "$(if [ "$extra" -le 2 ]; then echo met; else echo "missed, $extra extra"; fi)"
  trow "Every terminal state durable before exit" "an fsync follows the last manifest rename in every traced 40-stage run: $DURABLE_ALL" \
    "$(if [ "$DURABLE_ALL" = yes ]; then echo met; else echo missed; fi)"
fi
trow "Bar: a few ms to start a 1-stage run (read as ≤ 5 ms)" "$(printf '%.1f' "$S1_MED_MS") ms" "$(verdict_le "$S1_MED_MS" 5)"
trow "Bar: ~1 ms per stage beyond the process spawn (1000 stages, concurrency 2; read as ≤ 1 ms)" "$(printf '%.3f' "${S5_MED_OV[1000]}") ms" "$(verdict_le "${S5_MED_OV[1000]}" 1)"
# issue 11: persistence that scales
trow "Scaling: overhead ≤ 0.5 ms per stage beyond \`xargs -P2\` at 1000 stages" "$(printf '%.3f' "${S5_MED_OV[1000]}") ms" "$(verdict_le "${S5_MED_OV[1000]}" 0.5)"
lin=$(calc "${S5_MED_WALL[4000]} / ${S5_MED_WALL[1000]}")
trow "Scaling: 4000 stages in at most 4.5× the 1000-stage wall time" "$(printf '%.2f' "$lin")× (${S5_MED_WALL[4000]} s / ${S5_MED_WALL[1000]} s)" "$(verdict_le "$lin" 4.5)"
if [ "$HAVE_STRACE" = 1 ]; then
  trow "Scaling: bytes written to manifest.json ≤ 20× its final size at 4000 stages" "$(printf '%.1f' "${S5_RATIO[4000]}")× (250: $(printf '%.1f' "${S5_RATIO[250]}")×, 1000: $(printf '%.1f' "${S5_RATIO[1000]}")×)" "$(verdict_le "${S5_RATIO[4000]}" 20)"
fi
if [ "$HAVE_TIME" = 1 ]; then
  trow "Scaling: peak RSS ≤ 32 MiB at 4000 stages" "$(printf '%.1f' "${S5_MED_RSS[4000]}") MiB (250: $(printf '%.1f' "${S5_MED_RSS[250]}"), 1000: $(printf '%.1f' "${S5_MED_RSS[1000]}"))" "$(verdict_le "${S5_MED_RSS[4000]}" 32)"
fi
trow "Scaling: 40-stage pipeline ≤ 2× the shell loop (stretch 1.5×)" "$(printf '%.2f' "$r_floor")×" "$(verdict_le "$r_floor" 2)$(le "$r_floor" 1.5 && echo ', stretch met')"
if [ "$PEER" = 1 ]; then
  r_peer=$(median 1 $(ratios S2_OURS S2_PEER))
  trow "Scaling: 40-stage pipeline ≤ 0.07× the peer" "$(printf '%.3f' "$r_peer")×" "$(verdict_le "$r_peer" 0.07)"
fi
trow "Scaling: 1-stage run ≤ 10 ms" "$(printf '%.1f' "$S1_MED_MS") ms" "$(verdict_le "$S1_MED_MS" 10)"

# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=""; [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- orchestrator exec shared-manifest Cargo.toml Cargo.lock 2>/dev/null)" ] && DIRTY=" (with uncommitted changes to the sources)"
CPU=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null)
MEM=$(awk '/^MemTotal/ {printf("%.1f GiB", $2 / 1048576)}' /proc/meminfo 2>/dev/null)
TMPFS=$(df -PT "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 {print $2 " on " $1}')
DEV=$(df -P "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 {print $1}'); DEV=${DEV#/dev/}
ROTA=$(cat "/sys/class/block/${DEV}/queue/rotational" 2>/dev/null || echo "?")
case "$DEV" in vd*) DISK="virtio block device (rotational flag $ROTA)" ;; nvme*) DISK="NVMe" ;; *) DISK="rotational flag $ROTA" ;; esac
PEER_VER="not run"; [ "$PEER" = 1 ] && PEER_VER="@kbediako/codex-orchestrator 0.2.1 on node $(node --version 2>/dev/null)"

report() {
  echo "Measured $(date -u +%Y-%m-%d) at commit \`$COMMIT\`$DIRTY by \`bench/run.sh\`."
  echo
  echo "- Machine: $(nproc) cores ($CPU), $MEM memory, kernel $(uname -r)"
  echo "- Load average before / after the runs: $LOAD0 / $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (the machine may be shared)"
  echo "- Temp dir \`${TMPDIR:-/tmp}\`: $TMPFS, $DISK"
  echo "- Peer: $PEER_VER, \`--runtime-mode cli\`; ours: \`target/release/codex-orchestrator\`"
  echo "- Timing: $CLOCK around each run; $RUNS counted runs after one warm-up unless the table says otherwise;"
  echo "  commands alternate run by run; ratios are taken pair by pair (ours run i / other run i)."
  echo
  echo "| scenario | metric | runs | ours: min / median / max | reference: min / median / max | ours / reference, pair by pair: min / median / max |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  for n in "${NOTES[@]}"; do echo "- $n"; done
  echo
  echo "| target (docs/ARCHITECTURE.md) | measured (median) | verdict |"
  echo "|---|---|---|"
  printf '%s\n' "${TARGETS[@]}"
}
OUT="$BASE/report.md"
report >"$OUT"
echo
cat "$OUT"

if [ "$WRITE" = 1 ]; then
  BM="$ROOT/BENCHMARKS.md"
  BEGIN='<!-- bench:begin (generated by bench/run.sh --write; edit outside these markers) -->'
  END='<!-- bench:end -->'
  if [ ! -f "$BM" ] || ! grep -qF "$BEGIN" "$BM"; then
    { echo "# Benchmarks"; echo; echo "$BEGIN"; echo "$END"; [ -f "$BM" ] && { echo; cat "$BM"; }; } >"$BM.tmp"
    mv "$BM.tmp" "$BM"
  fi
  awk -v b="$BEGIN" -v e="$END" -v f="$OUT" '
    $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$BM" >"$BM.tmp" && mv "$BM.tmp" "$BM"
  say "wrote the figures into $BM"
fi
