#!/usr/bin/env bash
# A/B benchmark of the Raft proposer: the old one (one command per entry, serialized;
# commit cc65f7a) against this checkout (batched, pipelined), with warren-bench from this
# checkout as the client for both.
#
# Runs issue 5's scenario (1) (-x 1 -y 1 -s 1000 -c 100 -q 200) and (3) (-x 4 -y 4
# --queues 4 -c 100 -q 200), DURATION_S seconds each, old and new alternating ROUNDS times,
# each run against a single node started on a fresh data directory and a free loopback port.
# Prints every run and the ratios new/old (mean of the per-round ratios) for throughput and
# confirm latency p50/p99. Figures are ratios from one run on one machine; absolute numbers
# are for orientation only.
#
# Usage: chaos/bench/proposer-ab.sh            (from anywhere inside the repository)
# Environment (all optional):
#   OLD_REV=cc65f7a    commit of the old proposer, built in a temporary git worktree
#   OLD_BIN=, NEW_BIN= use these warren binaries instead of building
#   ROUNDS=2  DURATION_S=15  OUT=/tmp/proposer-ab.<time>  PROFILE=dev|release
set -euo pipefail

REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
OLD_REV=${OLD_REV:-cc65f7a}
ROUNDS=${ROUNDS:-2}
DURATION_S=${DURATION_S:-15}
PROFILE=${PROFILE:-dev}
OUT=${OUT:-/tmp/proposer-ab.$(date +%Y%m%d-%H%M%S)}
PORT_BASE=${PORT_BASE:-25700}
mkdir -p "$OUT"
profile_dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")

echo "--- build warren (new: $(git -C "$REPO" rev-parse --short HEAD)) and warren-bench"
(cd "$REPO" && cargo build --profile "$PROFILE" --bin warren && cargo build --profile "$PROFILE" -p chaos --bin warren-bench)
NEW_BIN=${NEW_BIN:-$REPO/target/$profile_dir/warren}
BENCH=$REPO/target/$profile_dir/warren-bench

if [ -z "${OLD_BIN:-}" ]; then
  echo "--- build warren at $OLD_REV (old) in a temporary worktree"
  old_tree=$OUT/old-src
  git -C "$REPO" worktree add --detach "$old_tree" "$OLD_REV" >/dev/null
  trap 'git -C "$REPO" worktree remove --force "$old_tree" || true' EXIT
  (cd "$old_tree" && CARGO_TARGET_DIR=$REPO/target-old \
    cargo build --profile "$PROFILE" --bin warren)
  OLD_BIN=$REPO/target-old/$profile_dir/warren
fi
test -x "$OLD_BIN" && test -x "$NEW_BIN" && test -x "$BENCH"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# run_one VARIANT SCENARIO ROUND ARGS...: one node, one warren-bench run, one JSON file.
next_port=$PORT_BASE
run_one() {
  local variant=$1 scenario=$2 round=$3; shift 3
  local bin; bin=$([ "$variant" = old ] && echo "$OLD_BIN" || echo "$NEW_BIN")
  while port_open "$next_port"; do next_port=$((next_port + 1)); done
  local port=$next_port; next_port=$((next_port + 1))
  local dir; dir=$(mktemp -d /tmp/proposer-ab-node.XXXXXX)
  printf 'amqp_listen = "127.0.0.1:%s"\ndata_dir = "%s/data"\n' "$port" "$dir" >"$dir/warren.toml"
  local name=s$scenario-r$round-$variant
  "$bin" server --config "$dir/warren.toml" >"$OUT/$name.warren.log" 2>&1 &
  local pid=$!
  for _ in $(seq 400); do port_open "$port" && break; sleep 0.025; done
  port_open "$port" || { echo "warren ($variant) did not listen on $port" >&2; exit 1; }
  echo "--- scenario $scenario, round $round, $variant ($bin, port $port)"
  "$BENCH" --uri "amqp://guest:guest@127.0.0.1:$port/%2f" -z "$DURATION_S" \
    --json "$OUT/$name.json" "$@" | tee "$OUT/$name.bench.log" | tail -4
  kill "$pid"; wait "$pid" || true
  rm -rf "$dir"
}

SCENARIO_1=(-x 1 -y 1 -s 1000 -c 100 -q 200)
SCENARIO_3=(-x 4 -y 4 --queues 4 -s 1000 -c 100 -q 200)
for round in $(seq "$ROUNDS"); do
  for variant in old new; do
    run_one "$variant" 1 "$round" "${SCENARIO_1[@]}"
    run_one "$variant" 3 "$round" "${SCENARIO_3[@]}"
  done
done

echo "--- results (each run; ratio = new/old, mean over rounds)"
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys, pathlib
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
figures = [("confirmed/s", lambda s: s["confirmed_per_s"]),
           ("received/s", lambda s: s["received_per_s"]),
           ("confirm p50 ms", lambda s: s["confirm_latency_ms"]["p50"]),
           ("confirm p99 ms", lambda s: s["confirm_latency_ms"]["p99"]),
           ("e2e p50 ms", lambda s: s["e2e_latency_ms"]["p50"]),
           ("e2e p99 ms", lambda s: s["e2e_latency_ms"]["p99"]),
           ("errors", lambda s: s["errors"] + s["nacks"])]
print(f"{'scenario':8} {'figure':15} " + " ".join(f"{'old r%d' % r:>9} {'new r%d' % r:>9}" for r in range(1, rounds + 1)) + f" {'new/old':>8}")
for scenario in (1, 3):
    runs = {(v, r): json.loads((out / f"s{scenario}-r{r}-{v}.json").read_text())
            for v in ("old", "new") for r in range(1, rounds + 1)}
    for name, get in figures:
        cells, ratios = [], []
        for r in range(1, rounds + 1):
            old, new = get(runs["old", r]), get(runs["new", r])
            cells.append(f"{old:9.1f} {new:9.1f}")
            if old:
                ratios.append(new / old)
        ratio = f"{sum(ratios) / len(ratios):8.2f}" if ratios else f"{'-':>8}"
        print(f"{scenario:<8} {name:15} " + " ".join(cells) + f" {ratio}")
PY
echo "--- warnings and errors logged by the nodes"
grep -c -E 'WARN|ERROR' "$OUT"/*.warren.log || true
echo "results in $OUT"
