# Warren driver for compare.sh: three `warren server` processes this script starts itself
# (not dev-cluster), so it holds every node's pid for kill -9, SIGSTOP and RSS sampling.
# Same interface as rabbitmq.sh.

WARREN_DIR=
declare -A WARREN_PIDS=()

warren_install() {
  [ -x "$WARREN" ] || die "no $WARREN: build it with cargo build --release (or drop --skip-build)"
  "$WARREN" --version | sed 's/^/warren version: /'
}

warren_config() {  # N: node N's configuration (the layout dev-cluster writes)
  local n=$1 p
  echo "node_name = \"warren$n@localhost\""
  echo "node_id = $n"
  echo "amqp_listen = \"127.0.0.1:$((WARREN_PORT + n - 1))\""
  echo "cluster_listen = \"127.0.0.1:$((WARREN_PORT + 20000 + n - 1))\""
  echo "data_dir = \"$WARREN_DIR/node$n\""
  echo "cookie_file = \"$WARREN_DIR/cookie\""
  for p in 1 2 3; do
    printf '\n[[peers]]\nid = %s\ncluster = "127.0.0.1:%s"\namqp = "127.0.0.1:%s"\n' \
      "$p" $((WARREN_PORT + 20000 + p - 1)) $((WARREN_PORT + p - 1))
  done
}

warren_start_node() {  # N: starts node N, returns once its AMQP port accepts
  local n=$1
  setsid "$WARREN" server --config "$WARREN_DIR/node$n.toml" >>"$WARREN_DIR/node$n.log" 2>&1 &
  WARREN_PIDS[$n]=$!
  wait_port $((WARREN_PORT + n - 1)) 60
}

warren_start_cluster() {
  WARREN_DIR="$WORK/warren"
  mkdir -p "$WARREN_DIR"
  "$WARREN" cookie "$WARREN_DIR/cookie" >/dev/null
  for n in 1 2 3; do warren_config "$n" >"$WARREN_DIR/node$n.toml"; done
  for n in 1 2 3; do warren_start_node "$n"; done
  local i
  for i in $(seq 1 100); do warren_leader x >/dev/null && break; sleep 0.3; done
  "$WARREN" cluster-status --config "$WARREN_DIR/node1.toml" | sed 's/^/  /'
}

warren_start_single() {  # one node with no peers (scenario 7); stopped by warren_stop_cluster
  WARREN_DIR="$WORK/warren-single"
  mkdir -p "$WARREN_DIR"
  warren_config 1 | sed '/^\[\[peers\]\]/,$d' >"$WARREN_DIR/node1.toml"
  warren_start_node 1
}

warren_pid() { echo "${WARREN_PIDS[$1]}"; }

warren_uri() { echo "amqp://guest:guest@127.0.0.1:$((WARREN_PORT + $1 - 1))/%2f"; }

warren_queue_args() { echo "--queue-type quorum"; }

warren_leader() {  # QUEUE (unused: one Raft group holds every queue): the leader's node id
  local n leader
  for n in 1 2 3; do
    leader=$("$WARREN" cluster-status --config "$WARREN_DIR/node$n.toml" --json 2>/dev/null \
      | jq -r '.leader // empty') || continue
    [ -n "$leader" ] && { echo "$leader"; return 0; }
  done
  return 1
}

warren_stop_cluster() {
  [ -n "$WARREN_DIR" ] || return 0
  local n
  for n in "${!WARREN_PIDS[@]}"; do
    kill -CONT "${WARREN_PIDS[$n]}" 2>/dev/null || true
    kill -9 "${WARREN_PIDS[$n]}" 2>/dev/null || true
  done
  WARREN_PIDS=()
  WARREN_DIR=
}
