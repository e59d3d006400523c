# The issue's scenarios (1)-(7), run against one broker through its driver ($B is
# "rabbitmq" or "warren"). Each records its figures with `record FIGURE VALUE`; the raw
# warren-bench summaries and logs are kept under $OUT/raw.

drv() { local f=$1; shift; "${B}_$f" "$@"; }

all_uris() { local n; for n in 1 2 3; do printf -- '--uri %s ' "$(drv uri "$n")"; done; }

all_pid_args() { local n; for n in 1 2 3; do printf -- '--rss-pid %s ' "$(drv pid "$n")"; done; }

bench() {  # NAME ARGS...: one warren-bench run, summary in $OUT/raw/$B-NAME.json
  local name=$1; shift
  log "$B: $name: warren-bench $*"
  "$BENCH" --quiet --json "$OUT/raw/$B-$name.json" $(drv queue_args) "$@" \
    >"$OUT/raw/$B-$name.log" 2>&1 || { log "$B: $name failed (see $OUT/raw/$B-$name.log)"; return 1; }
  sed -n '/^summary/,$p' "$OUT/raw/$B-$name.log" | head -4 | sed 's/^/    /'
}

field() { jq -r "$2" "$OUT/raw/$B-$1.json"; }  # NAME JQ-EXPR

scenario_1() {
  bench s1 -x 1 -y 1 -s 1000 -c 100 -q 200 -z "$RUN_S" -u bench-s1 $(all_uris) || return 0
  record "(1) 1p1c window 100: confirmed msg/s" "$(field s1 .confirmed_per_s)"
  record "(1) confirm p50 ms" "$(field s1 .confirm_latency_ms.p50)"
  record "(1) confirm p99 ms" "$(field s1 .confirm_latency_ms.p99)"
  record "(1) end-to-end p99 ms" "$(field s1 .e2e_latency_ms.p99)"
  keeping_up 1 s1
}

# Do consumers keep up (issue 15)? The share of confirmed messages received over the run,
# and end-to-end p50 over confirm p50 (the target: at least 99 %, at most 2x).
keeping_up() {  # N NAME
  record "($1) received % of confirmed" \
    "$(field "$2" '(.received * 1000 / ([.confirmed, 1] | max) | floor) / 10')"
  record "($1) end-to-end p50 / confirm p50" \
    "$(field "$2" '(.e2e_latency_ms.p50 * 100 / ([.confirm_latency_ms.p50, 0.001] | max) | floor) / 100')"
}

# (7): scenario (1) against one node of each broker (a quorum queue of one member on
# RabbitMQ), started by the driver's <b>_start_single.
scenario_7() {
  log "== $B: one node"
  drv start_single
  bench s7 -x 1 -y 1 -s 1000 -c 100 -q 200 -z "$RUN_S" -u bench-s7 --uri "$(drv uri 1)" \
    || { drv stop_cluster; return 0; }
  record "(7) one node, 1p1c window 100: confirmed msg/s" "$(field s7 .confirmed_per_s)"
  record "(7) confirm p50 ms" "$(field s7 .confirm_latency_ms.p50)"
  record "(7) end-to-end p50 ms" "$(field s7 .e2e_latency_ms.p50)"
  record "(7) end-to-end p99 ms" "$(field s7 .e2e_latency_ms.p99)"
  keeping_up 7 s7
  drv stop_cluster
}

scenario_2() {
  bench s2 -x 1 -y 1 -s 1000 -c 1 -q 200 -z "$RUN_S" -u bench-s2 $(all_uris) || return 0
  record "(2) window 1: confirmed msg/s" "$(field s2 .confirmed_per_s)"
  record "(2) confirm p50 ms" "$(field s2 .confirm_latency_ms.p50)"
  record "(2) confirm p99 ms" "$(field s2 .confirm_latency_ms.p99)"
}

scenario_3() {
  bench s3 -x 4 -y 4 --queues 4 -s 1000 -c 100 -q 200 -z "$RUN_S" -u bench-s3 $(all_uris) \
    || return 0
  record "(3) 4p4c 4 queues: confirmed msg/s" "$(field s3 .confirmed_per_s)"
  record "(3) received msg/s" "$(field s3 .received_per_s)"
  record "(3) confirm p99 ms" "$(field s3 .confirm_latency_ms.p99)"
}

peak_rss_max() {  # NAME...: the largest per-node peak over these runs, MiB
  local name
  for name in "$@"; do field "$name" '.peak_rss[].peak_mib'; done | sort -g | tail -1
}

# (4) and (5): publish the backlog, restart the leader of its queue while it holds it, then
# drain it (which also checks the restart lost nothing).
scenario_4_5() {
  local per_producer=$((BACKLOG / 4)) n_total
  n_total=$((per_producer * 4))
  bench s4-publish -x 4 -y 0 -s 1000 -c 100 -C "$per_producer" -u bench-backlog \
    $(all_pid_args) $(all_uris) || return 0
  record "(4) backlog $n_total: publish msg/s" "$(field s4-publish .confirmed_per_s)"
  scenario_5_restart
  bench s4-drain -x 0 -y 1 -q 200 -D "$n_total" -z $((n_total / 200 + 120)) -u bench-backlog \
    $(all_pid_args) $(all_uris) || return 0
  record "(4) drain msg/s" "$(field s4-drain .received_per_s)"
  record "(4) drained (of $n_total)" "$(field s4-drain .received)"
  record "(4) peak RSS, largest node, MiB" "$(peak_rss_max s4-publish s4-drain)"
}

scenario_5_restart() {
  local leader start_ms
  leader=$(drv leader bench-backlog) || { log "$B: no leader for bench-backlog"; return 0; }
  log "$B: (5) kill -9 and restart node $leader, which leads the backlog's queue"
  kill -9 "$(drv pid "$leader")"
  wait_gone "$(drv pid "$leader")"
  start_ms=$(now_ms)
  drv start_node "$leader"
  wait_serving "$leader" "$PROBE_TIMEOUT_S" || { log "$B: node $leader never served"; return 0; }
  record "(5) restart with backlog: s until it serves" "$(ms_to_s $(($(now_ms) - start_ms)))"
  warm_up
}

# After a restart, one publish through every node before the next scenario: Warren's
# followers fail their first forward to a restarted leader ("outcome unknown", a connection
# closed with INTERNAL_ERROR), which would otherwise fail the next run's setup.
warm_up() {
  local n
  for n in 1 2 3; do wait_serving "$n" 60 || log "$B: node $n does not serve"; done
}

wait_serving() {  # N TIMEOUT_S: until one publish through node N is confirmed
  local n=$1 deadline=$(($(now_ms) + $2 * 1000))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    if timeout 10 "$BENCH" --quiet -x 1 -y 0 -C 1 -c 1 -u bench-probe --drain 5 \
      --json "$WORK/probe.json" $(drv queue_args) --uri "$(drv uri "$n")" >/dev/null 2>&1 \
      && [ "$(jq -r .confirmed "$WORK/probe.json")" = 1 ]; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# (6): kill -9 (or SIGSTOP) the leader under load; producers and consumers are on the
# other two nodes, so the figure is the cluster's outage, not a client's reconnect.
scenario_6() {  # SIGNAL LABEL
  local signal=$1 label=$2 leader uris="" n kill_ms bench_pid gap_end
  leader=$(drv leader bench-failover) || { log "$B: no leader"; return 0; }
  for n in 1 2 3; do [ "$n" = "$leader" ] || uris+="--uri $(drv uri "$n") "; done
  bench "s6-$label" -x 2 -y 2 -s 1000 -c 100 -q 200 -z "$FAILOVER_S" --reconnect --drain 10 \
    -u bench-failover $uris &
  bench_pid=$!
  sleep $((FAILOVER_S / 2))
  log "$B: (6) kill -$signal node $leader (the leader)"
  kill_ms=$(now_ms)
  kill "-$signal" "$(drv pid "$leader")"
  wait "$bench_pid" || true
  [ "$signal" = STOP ] && kill -CONT "$(drv pid "$leader")"
  if [ -f "$OUT/raw/$B-s6-$label.json" ]; then
    record "(6) $label leader: s to next confirm" "$(outage_s "s6-$label" "$kill_ms")"
    record "(6) $label: confirmed msg/s over the run" "$(field "s6-$label" .confirmed_per_s)"
  fi
  if [ "$signal" = KILL ]; then
    wait_gone "$(drv pid "$leader")"  # its ports are free only once it is gone
    drv start_node "$leader"
    wait_serving "$leader" "$PROBE_TIMEOUT_S" || log "$B: node $leader did not come back"
  fi
  warm_up
}

# (6) follower: a follower killed under a client that reaches the cluster through HAProxy,
# with config/haproxy.cfg's defaults and health checks. `balance first` puts the client on
# the follower to be killed, and sends its reconnect there first too (HAProxy has not
# marked it down yet): the worst case for the checks, which must send it on at once.
scenario_6_follower() {
  command -v haproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }
  local leader victim n port=$((WARREN_PORT + 100)) cfg="$WORK/haproxy.cfg" kill_ms bench_pid hap_pid
  leader=$(drv leader bench-failover) || { log "$B: no leader"; return 0; }
  for n in 1 2 3; do [ "$n" = "$leader" ] || { victim=$n; break; }; done
  { printf 'global\n    log stderr format raw local0 info\n'
    sed -n '/^defaults/,/^listen/p' "$ROOT/config/haproxy.cfg" | sed '$d'
    printf 'listen amqp\n    bind 127.0.0.1:%s\n    balance first\n' "$port"
    grep '^ *default-server' "$ROOT/config/haproxy.cfg"
    for n in $victim $(seq 1 3 | grep -v "^$victim\$"); do
      printf '    server n%s %s\n' "$n" "$(drv uri "$n" | sed -E 's|.*@([^/]*)/.*|\1|')"
    done; } >"$cfg"
  haproxy -db -f "$cfg" >"$OUT/raw/$B-haproxy.log" 2>&1 &
  hap_pid=$!
  wait_port "$port" 10 || { log "$B: haproxy did not start"; kill "$hap_pid"; return 0; }
  bench s6-follower -x 1 -y 1 -s 1000 -c 100 -q 200 -z "$FAILOVER_S" --reconnect --drain 10 \
    -u bench-failover --uri "amqp://guest:guest@127.0.0.1:$port/%2f" &
  bench_pid=$!
  sleep $((FAILOVER_S / 2))
  log "$B: (6) kill -9 node $victim (a follower, the client's node through HAProxy)"
  kill_ms=$(now_ms)
  kill -9 "$(drv pid "$victim")"
  wait "$bench_pid" || true
  kill "$hap_pid" 2>/dev/null || true
  if [ -f "$OUT/raw/$B-s6-follower.json" ]; then
    record "(6) kill-9 follower via HAProxy: s to next confirm" "$(outage_s s6-follower "$kill_ms")"
  fi
  wait_gone "$(drv pid "$victim")"
  drv start_node "$victim"
  wait_serving "$victim" "$PROBE_TIMEOUT_S" || log "$B: node $victim did not come back"
  warm_up
}

# The outage is the longest pause in confirms that ends after the signal and starts within
# 2 s of it (confirms already on their way still arrive just after a kill -9, so the pause
# usually starts a little after the signal); it lasts until that pause's end.
outage_s() {  # NAME KILL_MS: from the signal to the first confirm after the outage, seconds
  local end last
  end=$(field "$1" "[.confirm_gaps_unix_ms[] | select(.[1] > $2 and .[0] < $2 + 2000)]
    | max_by(.[1] - .[0]) // empty | .[1]")
  last=$(field "$1" .last_confirm_unix_ms)
  if [ -n "$end" ]; then
    ms_to_s $((end - $2))
  elif [ "$last" -lt "$2" ]; then
    echo "none in the run"  # no confirm came after the signal
  else
    echo "<0.010"           # confirms never paused 10 ms after the signal
  fi
}

declare_queue() {  # QUEUE: declared from node 1 before any run (RabbitMQ leads it there)
  "$BENCH" --quiet -x 1 -y 0 -C 1 -c 1 -u "$1" $(drv queue_args) --uri "$(drv uri 1)" \
    >/dev/null 2>&1 || true
}

run_scenarios() {
  local s
  for q in bench-probe bench-failover; do declare_queue "$q"; done
  for s in $SCENARIOS; do
    case $s in
      1) scenario_1 ;;
      2) scenario_2 ;;
      3) scenario_3 ;;
      4) scenario_4_5 ;;
      6) scenario_6 KILL kill-9; sleep 3; scenario_6 STOP sigstop; sleep 3; scenario_6_follower ;;
      7) ;;  # after the cluster is stopped (compare.sh)
    esac
  done
}
