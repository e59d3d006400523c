#!/usr/bin/env bash
# A/B benchmark of the follower's forward path: a publisher on a follower against one on the
# leader, for two warren builds (A, the baseline, and B), on a three-node cluster on loopback.
#
# For each build and round: start a fresh three-node cluster (chaos/bench/lib/warren.sh),
# find the leader, run issue 5's scenario (1) (-x 1 -y 1 -s 1000 -c 100 -q 200) for
# DURATION_S seconds against the leader, then against a follower. A and B alternate, so drift
# of the shared machine hits both. Prints every run and, per build, the follower/leader ratio
# (mean over rounds) of confirmed msg/s and confirm p50; then B/A for the follower runs.
#
# Usage: chaos/bench/forward-ab.sh A_WARREN_BIN B_WARREN_BIN
# Environment (optional): ROUNDS=3 DURATION_S=12 OUT=/tmp/forward-ab.<time>
#   BENCH=target/release/warren-bench
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
. "$ROOT/chaos/bench/lib/common.sh"
. "$ROOT/chaos/bench/lib/warren.sh"
[ $# -eq 2 ] || die "usage: $0 A_WARREN_BIN B_WARREN_BIN"
declare -A BINS=([A]=$1 [B]=$2)
ROUNDS=${ROUNDS:-3}
DURATION_S=${DURATION_S:-12}
OUT=${OUT:-/tmp/forward-ab.$(date +%Y%m%d-%H%M%S)}
BENCH=${BENCH:-$ROOT/target/release/warren-bench}
WARREN_PORT=${WARREN_PORT:-5972}  # AMQP 5972-5974, cluster 25972-25974
command -v jq >/dev/null || die "needs jq"
test -x "$BENCH" || die "no $BENCH: cargo build --release -p chaos --bin warren-bench"
mkdir -p "$OUT"
trap 'warren_stop_cluster' EXIT

# run_build VARIANT ROUND: one cluster, the leader run then a follower run.
run_build() {
  local variant=$1 round=$2 leader follower where node
  WARREN=${BINS[$variant]} WORK=$(mktemp -d /tmp/forward-ab-node.XXXXXX)
  warren_start_cluster >/dev/null
  leader=$(warren_leader x) || die "no leader ($variant)"
  follower=$(( leader % 3 + 1 ))
  for where in leader follower; do
    node=$([ $where = leader ] && echo "$leader" || echo "$follower")
    log "round $round, $variant, clients on the $where (node $node)"
    "$BENCH" --uri "$(warren_uri "$node")" -z "$DURATION_S" --json "$OUT/r$round-$variant-$where.json" \
      -x 1 -y 1 -s 1000 -c 100 -q 200 >"$OUT/r$round-$variant-$where.log" 2>&1
  done
  cp "$WORK"/warren/node*.log "$OUT/" 2>/dev/null || true
  warren_stop_cluster
  rm -rf "$WORK"
}

for round in $(seq "$ROUNDS"); do
  for variant in A B; do run_build "$variant" "$round"; done
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys, pathlib
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
run = lambda r, v, w: json.loads((out / f"r{r}-{v}-{w}.json").read_text())
mean = lambda xs: sum(xs) / len(xs)
print(f"{'round':5} {'build':5} {'leader msg/s':>12} {'follower msg/s':>14} {'leader p50':>10} {'follower p50':>12}")
for r in range(1, rounds + 1):
    for v in "AB":
        l, f = run(r, v, "leader"), run(r, v, "follower")
        print(f"{r:5} {v:5} {l['confirmed_per_s']:12.0f} {f['confirmed_per_s']:14.0f} "
              f"{l['confirm_latency_ms']['p50']:10.1f} {f['confirm_latency_ms']['p50']:12.1f}")
for v in "AB":
    ratio = mean([run(r, v, "follower")["confirmed_per_s"] / run(r, v, "leader")["confirmed_per_s"]
                  for r in range(1, rounds + 1)])
    print(f"build {v}: follower/leader confirmed msg/s = {ratio:.2f}")
ba = mean([run(r, "B", "follower")["confirmed_per_s"] / run(r, "A", "follower")["confirmed_per_s"]
           for r in range(1, rounds + 1)])
print(f"follower runs: B/A confirmed msg/s = {ba:.2f}")
errors = sum(run(r, v, w)["errors"] + run(r, v, w)["nacks"]
             for r in range(1, rounds + 1) for v in "AB" for w in ("leader", "follower"))
print(f"errors and nacks in all runs: {errors}")
PY
echo "results in $OUT"
