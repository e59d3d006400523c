#!/usr/bin/env bash
# A follower catching up by snapshot on a large backlog: three release `warren server`
# processes on this machine; node 3 is killed (-9), N persistent messages of S bytes are
# published with confirms through node 1 into a queue with no consumer (the leader snapshots
# and purges its log meanwhile), then node 3 starts again on its directory and must catch
# up by installing the leader's snapshot. Prints how long until node 3 has applied the
# leader's last index (or that it did not within LIMIT seconds) and node 3's VmRSS/VmHWM.
#
#   cargo build --release -p warren -p chaos
#   docs/scripts/catchup-rss.sh [N=300000] [S=1000] [BASE_PORT=16000] [LIMIT=180]
#
# docs/benchmarks.md ("A follower catching up by snapshot") has the figures.
set -euo pipefail
N=${1:-300000}
S=${2:-1000}
BASE=${3:-16000}
LIMIT=${4:-180}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WARREN=${WARREN:-$ROOT/target/release/warren}
BENCH=${BENCH:-$ROOT/target/release/warren-bench}
DIR=$(mktemp -d /tmp/warren-catchup.XXXXXX)
declare -A PIDS
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
"$WARREN" cookie "$DIR/cookie" >/dev/null
for id in 1 2 3; do
    {
        echo "node_name = \"catchup$id@localhost\""
        echo "node_id = $id"
        echo "amqp_listen = \"127.0.0.1:$((BASE + id))\""
        echo "cluster_listen = \"127.0.0.1:$((BASE + 100 + id))\""
        echo "data_dir = \"$DIR/node$id\""
        echo "cookie_file = \"$DIR/cookie\""
        echo "memory_high_watermark = 0"
        for p in 1 2 3; do
            printf '[[peers]]\nid = %d\ncluster = "127.0.0.1:%d"\namqp = "127.0.0.1:%d"\n' \
                "$p" $((BASE + 100 + p)) $((BASE + p))
        done
    } >"$DIR/node$id.toml"
done
start() {
    "$WARREN" server --config "$DIR/node$1.toml" >>"$DIR/node$1.log" 2>&1 &
    PIDS[$1]=$!
}
mib() { awk -v k="$2:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/${PIDS[$1]}/status"; }
applied() { # node $1's applied index, as node 1 reports it
    "$WARREN" cluster-status --config "$DIR/node1.toml" --json 2>/dev/null |
        jq -r --argjson id "$1" '.nodes[] | select(.id == $id) | .status.applied_index // 0' |
        head -n 1
}
for id in 1 2 3; do start $id; done
URI="amqp://guest:guest@127.0.0.1:$((BASE + 1))/%2f"
# A confirmed publish means a leader is elected and node 1 forwards to it.
"$BENCH" -x 1 -y 0 -C 1 -c 1 -u warm-up --uri "$URI" --quiet --drain 5 >/dev/null
kill -9 "${PIDS[3]}"
wait "${PIDS[3]}" 2>/dev/null || true
unset 'PIDS[3]'
"$BENCH" -x 1 -y 0 -s "$S" -c 100 -C "$N" --uri "$URI" --quiet --drain 1
goal=$(applied 1)
echo "published ${N}x${S}B; leader applied index $goal; snapshot files:" \
    "$(du -sh "$DIR"/node1/state/snapshot.bin "$DIR"/node2/state/snapshot.bin | awk '{print $1}' | tr '\n' ' ')"
t0=$SECONDS
start 3
until [ "$(applied 3)" -ge "$goal" ] 2>/dev/null; do
    if [ $((SECONDS - t0)) -ge "$LIMIT" ]; then
        echo "node 3 NOT caught up within ${LIMIT} s: applied $(applied 3) of $goal;" \
            "rss_mib=$(mib 3 VmRSS) hwm_mib=$(mib 3 VmHWM)"
        grep -h -m 2 -iE "exceeds|snapshot.*(error|refused|fail)" \
            "$DIR/node1.log" "$DIR/node2.log" "$DIR/node3.log" | cut -c1-300 || true
        exit 0
    fi
    sleep 0.5
done
echo "node 3 caught up in $((SECONDS - t0)) s: rss_mib=$(mib 3 VmRSS) hwm_mib=$(mib 3 VmHWM)" \
    "state $(du -sh "$DIR/node3/state" | awk '{print $1}')"
grep -m 1 "snapshot received" "$DIR/node3.log" || echo "node 3 caught up without a snapshot"
