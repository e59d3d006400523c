#!/usr/bin/env bash
# CPU per message of two Warren builds in one run: a single node on a fresh data directory,
# warren-bench's scenario (1) (1 publisher, 1 consumer, 1 KB, confirms, window 100,
# prefetch 200), DURATION_S seconds, base and new alternating ROUNDS times. The node's CPU
# (user + system, from /proc/PID/stat) over the run, divided by the messages confirmed:
# steadier on a shared machine than msg/s. Prints each run and the ratio new/base.
#
# Usage: docs/scripts/cpu-per-msg-ab.sh BASE_WARREN NEW_WARREN BENCH
# Environment: ROUNDS=3  DURATION_S=20  PORT=25950
set -euo pipefail
BASE=$1 NEW=$2 BENCH=$3
ROUNDS=${ROUNDS:-3}
DURATION_S=${DURATION_S:-20}
PORT=${PORT:-25950}
TICKS=$(getconf CLK_TCK)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run_one() {  # BIN: prints "confirmed cpu_s"
  local bin=$1 dir pid before after out
  dir=$(mktemp -d /tmp/cpu-ab.XXXXXX)
  printf 'amqp_listen = "127.0.0.1:%s"\ndata_dir = "%s/data"\n' "$PORT" "$dir" >"$dir/warren.toml"
  "$bin" server --config "$dir/warren.toml" >"$dir/warren.log" 2>&1 &
  pid=$!
  for _ in $(seq 400); do port_open "$PORT" && break; sleep 0.025; done
  port_open "$PORT" || { echo "warren did not listen" >&2; exit 1; }
  before=$(cpu_ticks "$pid")
  "$BENCH" --uri "amqp://guest:guest@127.0.0.1:$PORT/%2f" -z "$DURATION_S" \
    --json "$dir/bench.json" -x 1 -y 1 -s 1000 -c 100 -q 200 >/dev/null
  after=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" || true
  out=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['confirmed'])" "$dir/bench.json")
  echo "$out $(awk -v t=$((after - before)) -v hz="$TICKS" 'BEGIN { printf "%.2f", t / hz }')"
  rm -rf "$dir"
}

declare -a ratios
for round in $(seq "$ROUNDS"); do
  read -r nb cb < <(run_one "$BASE")
  read -r nn cn < <(run_one "$NEW")
  ub=$(awk -v c="$cb" -v n="$nb" 'BEGIN { printf "%.1f", 1e6 * c / n }')
  un=$(awk -v c="$cn" -v n="$nn" 'BEGIN { printf "%.1f", 1e6 * c / n }')
  echo "round $round: base $nb msgs, $cb s CPU, $ub us/msg; new $nn msgs, $cn s CPU, $un us/msg"
  ratios+=("$(awk -v a="$un" -v b="$ub" 'BEGIN { printf "%.3f", a / b }')")
done
echo "CPU per message, new/base per round: ${ratios[*]}"
