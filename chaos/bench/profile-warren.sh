#!/usr/bin/env bash
# Where Warren's time goes under compare.sh's scenario (1) or (3): starts a three-node Warren
# cluster (release build, same layout as compare.sh), runs the scenario's warren-bench
# command, records every node with `perf record -g` meanwhile, and writes each node's top
# symbols (self time) and the busiest threads to OUT. Needs perf (Debian: linux-perf).
#   chaos/bench/profile-warren.sh [--scenario 1|3] [--seconds S] [--out DIR]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCENARIO=1
RUN_S=20
OUT="$ROOT/chaos/bench/out/profile-$(date -u +%Y%m%dT%H%M%SZ)"
WARREN_PORT=${WARREN_PORT:-5872}
while [ $# -gt 0 ]; do
  case $1 in
    --scenario) SCENARIO=$2; shift ;;
    --seconds) RUN_S=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

source "$HERE/lib/common.sh"
source "$HERE/lib/warren.sh"
command -v perf >/dev/null || die "no perf: apt-get install linux-perf"
WARREN="$ROOT/target/release/warren"
BENCH="$ROOT/target/release/warren-bench"
WORK=$(mktemp -d /tmp/warren-profile.XXXXXX)
trap 'warren_stop_cluster; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

warren_start_cluster
leader=$(warren_leader x)
log "leader: node $leader"
uris=""
for n in 1 2 3; do uris+="--uri $(warren_uri "$n") "; done
case $SCENARIO in
  1) load="-x 1 -y 1 -s 1000 -c 100 -q 200" ;;
  3) load="-x 4 -y 4 --queues 4 -s 1000 -c 100 -q 200" ;;
  *) die "--scenario 1 or 3" ;;
esac
"$BENCH" $load -z "$RUN_S" -u "profile-s$SCENARIO" $uris --json "$OUT/bench.json" \
  >"$OUT/bench.log" 2>&1 &
bench_pid=$!
sleep 2  # past connection setup
perf_pids=()
for n in 1 2 3; do
  perf record -F 499 -g -o "$OUT/node$n.perf.data" -p "$(warren_pid "$n")" \
    -- sleep $((RUN_S - 4)) >/dev/null 2>&1 &
  perf_pids+=($!)
done
wait "$bench_pid" || true
# Only perf's pids: a bare `wait` would also wait for the nodes.
wait "${perf_pids[@]}" || true
report() {  # N SORT LINES: node N's flat profile (no call graph), sorted by SORT
  perf report -i "$OUT/node$1.perf.data" --no-children -g none -n --sort "$2" --stdio \
    2>/dev/null | grep -E '^ +[0-9]' | head -"$3" || true
}
for n in 1 2 3; do
  role=follower; [ "$n" = "$leader" ] && role=leader
  {
    # cpu-clock samples at 499 Hz: samples / 499 is the CPU time the node used.
    echo "# node $n ($role): $(report "$n" comm 20 | awk '{ s += $2 } END { print s + 0 }') samples"
    echo "# threads"; report "$n" comm 10
    echo "# where (kernel, warren, libc)"; report "$n" dso 6
    echo "# top symbols by self time"; report "$n" symbol 25
  } >"$OUT/node$n.top.txt"
done
sed -n '/^summary/,$p' "$OUT/bench.log"
log "profiles in $OUT (node*.top.txt; perf report -i node*.perf.data for more)"
