#!/usr/bin/env bash
# Warren against RabbitMQ quorum queues, side by side on this machine (issue 5).
#
# Starts a three-node RabbitMQ cluster (Debian's rabbitmq-server, installed with apt-get if
# missing), runs the scenarios, tears it down, then does the same with a three-node Warren
# cluster (release build), with the same client (warren-bench) and the same arguments. It
# also measures the disk (disk-probe: 1 KiB records, fdatasync per 64). One table of
# figures and the ratio Warren/RabbitMQ goes to stdout and to OUT/table.{md,json}.
#
# Run as root (apt-get, and it kills the nodes it started). Usage:
#   chaos/bench/compare.sh [--quick] [--backlog N] [--seconds S] [--out DIR]
#                          [--scenarios "1 2 3 4 6 7"] [--only rabbitmq|warren] [--skip-build]
#                          [--keep]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMAND="chaos/bench/compare.sh $*"

RUN_S=30            # scenarios (1)-(3), seconds of publishing each
BACKLOG=1000000     # scenario (4), messages of 1 KB
FAILOVER_S=20       # scenario (6), seconds of load; the kill comes halfway
PROBE_TIMEOUT_S=300 # scenario (5), longest wait for a restarted node
DISK_S=10
SCENARIOS="1 2 3 4 6 7"
BROKERS="rabbitmq warren"
OUT="$ROOT/chaos/bench/out/$(date -u +%Y%m%dT%H%M%SZ)"
BUILD=1
KEEP=0              # --keep: leave the nodes' data and logs (the temp dir) for a post-mortem
RMQ_PORT=${RMQ_PORT:-5772}        # AMQP 5772-5774, distribution 25772-25774
WARREN_PORT=${WARREN_PORT:-5872}  # AMQP 5872-5874, cluster 25872-25874

while [ $# -gt 0 ]; do
  case $1 in
    --quick) RUN_S=3 BACKLOG=20000 FAILOVER_S=16 PROBE_TIMEOUT_S=60 DISK_S=2 ;;
    --backlog) BACKLOG=$2; shift ;;
    --seconds) RUN_S=$2; shift ;;
    --out) OUT=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --only) BROKERS=$2; shift ;;
    --skip-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

source "$HERE/lib/common.sh"
source "$HERE/lib/report.sh"
source "$HERE/lib/scenarios.sh"
source "$HERE/lib/rabbitmq.sh"
source "$HERE/lib/warren.sh"

[ "$(id -u)" = 0 ] || die "run as root (apt-get, and the brokers' processes)"
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
if [ "$BUILD" = 1 ]; then
  log "building warren, warren-bench and disk-probe (release)"
  (cd "$ROOT" && cargo build --release -q -p warren -p chaos --bins)
fi
WARREN="${WARREN:-$ROOT/target/release/warren}"  # WARREN=path: another build (A/B)
BENCH="$ROOT/target/release/warren-bench"
PROBE="$ROOT/target/release/disk-probe"

WORK=$(mktemp -d /tmp/warren-compare.XXXXXX)
B=
teardown() {
  rabbitmq_stop_cluster || true
  warren_stop_cluster || true
  # Any backgrounded warren-bench of an interrupted scenario.
  local job
  for job in $(jobs -p); do kill "$job" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap teardown EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT/raw"
: >"$OUT/figures.tsv"
log "output in $OUT; machine: $(machine_line)"
log "disk-probe: ${DISK_S} s of 1 KiB records, fdatasync per 64, in $WORK"
"$PROBE" --dir "$WORK" --seconds "$DISK_S" --json "$OUT/raw/disk-probe.json" | tee -a "$OUT/raw/disk-probe.log"

for B in $BROKERS; do
  log "== $B: starting a three-node cluster"
  "${B}_install"
  "${B}_start_cluster"
  run_scenarios
  "${B}_stop_cluster"
  sleep 2
  if [[ " $SCENARIOS " == *" 7 "* ]]; then scenario_7; sleep 2; fi
done
disk_rows
report
