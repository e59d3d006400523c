#!/usr/bin/env bash
# Plain-TCP throughput of one node, two builds alternating ROUNDS times, the same
# warren-bench for both (issue 14: did making the connection generic over its stream cost
# the plain path anything?). Builds are the test profile, as the tests run them.
#
# Usage: docs/scripts/plain-tcp-ab.sh BASE_WARREN NEW_WARREN WARREN_BENCH
#   (e.g. a base worktree built into this target dir, its binary copied out first)
# Environment: ROUNDS=3  SECONDS_EACH=15  OUT=/tmp/plain-tcp-ab.<time>
set -euo pipefail
BASE=$1 NEW=$2 BENCH=$3
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-15}
OUT=${OUT:-/tmp/plain-tcp-ab.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
for round in $(seq "$ROUNDS"); do
  for variant in base new; do
    bin=$([ "$variant" = base ] && echo "$BASE" || echo "$NEW")
    dir=$(mktemp -d "$OUT/node.XXXX")
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'amqp_listen = "127.0.0.1:%s"\ndata_dir = "%s/data"\n' "$port" "$dir" >"$dir/w.toml"
    "$bin" server --config "$dir/w.toml" >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    "$BENCH" -x 1 -y 1 -s 1000 -c 100 -q 200 -z "$SECONDS_EACH" -u ab --quiet \
      --uri "amqp://guest:guest@127.0.0.1:$port/%2f" --json "$OUT/r$round-$variant.json" >/dev/null
    kill "$pid"; wait "$pid" || true
    python3 -c "import json; d=json.load(open('$OUT/r$round-$variant.json')); \
print('round $round $variant: confirmed/s', round(d['confirmed_per_s']), \
'p50 ms', d['confirm_latency_ms']['p50'], 'p99 ms', d['confirm_latency_ms']['p99'])"
  done
done
