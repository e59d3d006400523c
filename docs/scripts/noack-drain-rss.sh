#!/usr/bin/env bash
# Peak resident memory of one disk node while a no_ack consumer drains a backlog: start a
# release `warren server` on a fresh data directory, publish N persistent messages of S bytes
# with confirms into one queue with no consumer (warren-bench), kill -9 the node and start it
# again on the same directory (so the drain's peak is not hidden under the publish's), then
# drain the queue with one no_ack consumer and read VmRSS/VmHWM from /proc.
#
#   cargo build --release -p warren -p chaos
#   docs/scripts/noack-drain-rss.sh [N=1000000] [S=1000] [PORT=15698]
#
# WARREN=path and BENCH=path choose the builds (e.g. a base build to compare against).
# Prints one line per phase: phase, VmRSS MiB, VmHWM MiB, seconds; `drained`'s hwm_mib is
# the figure in docs/benchmarks.md ("No-ack drain memory").
set -euo pipefail
N=${1:-1000000}
S=${2:-1000}
PORT=${3:-15698}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WARREN=${WARREN:-$ROOT/target/release/warren}
BENCH=${BENCH:-$ROOT/target/release/warren-bench}
DIR=$(mktemp -d /tmp/warren-drain-rss.XXXXXX)
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
cat >"$DIR/warren.toml" <<TOML
node_name = "drain-rss@localhost"
amqp_listen = "127.0.0.1:$PORT"
data_dir = "$DIR/data"
memory_high_watermark = 0
TOML
URI="amqp://guest:guest@127.0.0.1:$PORT/%2f"
mib() { awk -v k="$1:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$PID/status"; }
start() {
    "$WARREN" server --config "$DIR/warren.toml" >>"$DIR/warren.log" 2>&1 &
    PID=$!
    local t0=$SECONDS
    until (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do
        sleep 0.1
        [ $((SECONDS - t0)) -lt 300 ] || { echo "no listener"; tail "$DIR/warren.log"; exit 1; }
    done
}
report() { echo "$1 rss_mib=$(mib VmRSS) hwm_mib=$(mib VmHWM) s=$2"; }

start
t0=$SECONDS
"$BENCH" -x 1 -y 0 -s "$S" -c 100 -C "$N" --uri "$URI" --quiet --drain 1
report "published_${N}x${S}B" $((SECONDS - t0))
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
t0=$SECONDS
start
# Serving means a confirmed publish (into another queue): the state is loaded.
"$BENCH" -x 1 -y 0 -C 1 -c 1 -u rss-probe --uri "$URI" --quiet --drain 5 >/dev/null
report restarted_serving $((SECONDS - t0))
t0=$SECONDS
"$BENCH" -x 0 -y 1 -a -D "$N" --uri "$URI" --rss-pid "$PID" --quiet --drain 1
report drained $((SECONDS - t0))
