# RabbitMQ driver for compare.sh: a three-node cluster of Debian's rabbitmq-server on this
# machine. Every node has its own name, ports and directories under $WORK/rabbitmq; all share
# one Erlang cookie through HOME=$WORK/rabbitmq/home (the system's cookie is not touched).
# The driver interface (same names in warren.sh): <b>_install, <b>_start_cluster,
# <b>_start_node N, <b>_pid N, <b>_uri N, <b>_leader QUEUE, <b>_stop_cluster, <b>_queue_args.

RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_DIR=

rabbitmq_install() {
  if [ ! -x "$RMQ_BIN/rabbitmq-server" ]; then
    log "installing rabbitmq-server with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  # The package starts a system node where policy allows; it would hold epmd names and
  # memory during the benchmark.
  if command -v systemctl >/dev/null && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
    systemctl stop rabbitmq-server
  fi
  "$RMQ_BIN/rabbitmqctl" version 2>/dev/null | sed 's/^/rabbitmq version: /' || true
}

rabbitmq_node_env() {  # N: the environment one node runs with
  local n=$1 d="$RMQ_DIR/rabbit$1"
  echo HOME="$RMQ_DIR/home" \
    RABBITMQ_NODENAME="rabbit$n@localhost" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$((RMQ_PORT + n - 1)) \
    RABBITMQ_DIST_PORT=$((RMQ_PORT + 20000 + n - 1)) \
    RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/pid" RABBITMQ_CONFIG_FILE="$d/rabbitmq" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
}

rabbitmqctl_n() {  # N ARGS...: rabbitmqctl against node N
  local n=$1; shift
  HOME="$RMQ_DIR/home" "$RMQ_BIN/rabbitmqctl" -n "rabbit$n@localhost" "$@"
}

rabbitmq_start_node() {  # N: starts node N in the background, returns once it runs
  local n=$1 d="$RMQ_DIR/rabbit$1"
  mkdir -p "$d/mnesia" "$d/log"
  [ -f "$d/enabled_plugins" ] || echo "[]." >"$d/enabled_plugins"
  # Same limits as Warren's defaults matter less than not tripping alarms mid-run: the
  # disk alarm would block publishers on a full-ish shared disk.
  [ -f "$d/rabbitmq.conf" ] || printf 'disk_free_limit.absolute = 100MB\nloopback_users = none\n' >"$d/rabbitmq.conf"
  [ -f "$d/advanced.config" ] || echo "[]." >"$d/advanced.config"
  rm -f "$d/pid"
  env $(rabbitmq_node_env "$n") setsid "$RMQ_BIN/rabbitmq-server" >>"$d/console.log" 2>&1 &
  rabbitmqctl_n "$n" wait "$d/pid" --timeout 120 >/dev/null
}

rabbitmq_start_cluster() {
  RMQ_DIR="$WORK/rabbitmq"
  mkdir -p "$RMQ_DIR/home"
  head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$RMQ_DIR/home/.erlang.cookie"
  chmod 400 "$RMQ_DIR/home/.erlang.cookie"
  for n in 1 2 3; do rabbitmq_start_node "$n"; done
  for n in 2 3; do
    rabbitmqctl_n "$n" stop_app >/dev/null
    rabbitmqctl_n "$n" join_cluster rabbit1@localhost >/dev/null
    rabbitmqctl_n "$n" start_app >/dev/null
  done
  rabbitmqctl_n 1 cluster_status | grep -A4 -i "running nodes" | sed 's/^/  /'
}

rabbitmq_start_single() {  # node 1 alone (scenario 7); stopped by rabbitmq_stop_cluster
  RMQ_DIR="$WORK/rabbitmq-single"
  mkdir -p "$RMQ_DIR/home"
  head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$RMQ_DIR/home/.erlang.cookie"
  chmod 400 "$RMQ_DIR/home/.erlang.cookie"
  rabbitmq_start_node 1
}

rabbitmq_pid() { cat "$RMQ_DIR/rabbit$1/pid"; }

rabbitmq_uri() { echo "amqp://guest:guest@127.0.0.1:$((RMQ_PORT + $1 - 1))/%2f"; }

rabbitmq_queue_args() { echo "--queue-type quorum"; }

rabbitmq_leader() {  # QUEUE: the node number leading that quorum queue
  local n
  for n in 1 2 3; do
    rabbitmqctl_n "$n" list_queues name leader --quiet --no-table-headers 2>/dev/null \
      | awk -v q="$1" '$1 == q { sub(/^rabbit/, "", $2); sub(/@.*/, "", $2); print $2; exit }' \
      | grep . && return 0
  done
  return 1
}

rabbitmq_stop_cluster() {
  [ -n "$RMQ_DIR" ] || return 0
  local n pid
  for n in 1 2 3; do
    pid=$(cat "$RMQ_DIR/rabbit$n/pid" 2>/dev/null) || continue
    [ -n "$pid" ] || continue
    kill -CONT "$pid" 2>/dev/null || true
    kill -9 "$pid" 2>/dev/null || true
  done
  RMQ_DIR=
}
