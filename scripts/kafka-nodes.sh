# shellcheck shell=bash
# Sourced by scripts/kafka: resuming a stopped broker on its data, kill -9, and a KRaft cluster of
# several nodes on one machine (for fault tests). Uses scripts/kafka's variables and functions.

# Pid recorded in file $1 if that process is alive and runs kafka.Kafka, else empty.
pid_in_file() {
  [ -f "$1" ] || return 0
  local pid cmdline
  pid=$(cat "$1" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  [[ "$cmdline" == *kafka.Kafka* ]] || return 0
  printf '%s\n' "$pid"
}

# launch_java <dir> <server.properties> <log4j.properties> <out file> <pid file> <max heap>
# Starts a broker process in the background from <dir>; records its pid.
launch_java() {
  local dir=$1 config=$2 log4j=$3 out=$4 pid_file=$5 heap=$6 java
  java=$(java_bin)
  (
    cd "$dir"
    exec nohup "$java" -Xms128m -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j.configuration="file:$log4j" -cp "$LIBS/*" kafka.Kafka "$config" </dev/null >>"$out" 2>&1
  ) &
  echo $! >"$pid_file"
}

# wait_ready <bootstrap> <deadline (SECONDS)> <pid...>: until every "broker N at host:port" of the
# bootstrap list is in the metadata and a record goes round trip through cppfly-ready. Fails when
# any pid exits or the deadline passes.
wait_ready() {
  local bootstrap=$1 deadline=$2
  shift 2
  local pids=("$@") first=${bootstrap%%,*} p md ok got=""
  alive() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { cppfly_log "kafka: broker process $p exited"; return 1; }; done; }
  until port_in_use "${first##*:}"; do
    alive || return 1
    [ "$SECONDS" -lt "$deadline" ] || { cppfly_log "kafka: $first not listening in time"; return 1; }
    sleep 0.2
  done
  local expected
  expected=$(tr ',' '\n' <<<"$bootstrap" | wc -l)
  until [ "${ok:-0}" -ge "$expected" ]; do
    alive || return 1
    [ "$SECONDS" -lt "$deadline" ] || { cppfly_log "kafka: metadata of $bootstrap incomplete in time"; return 1; }
    md=$(timeout 7 kcat -b "$bootstrap" -L -m 5 2>/dev/null || true)
    ok=0
    for p in ${bootstrap//,/ }; do [[ "$md" == *" at $p"* ]] && ok=$((ok + 1)); done
    [ "$ok" -ge "$expected" ] || sleep 0.5
  done
  until [ -n "$got" ]; do
    alive || return 1
    [ "$SECONDS" -lt "$deadline" ] || { cppfly_log "kafka: round trip through $bootstrap failed in time"; return 1; }
    if echo "ready $(date +%s)" | timeout 20 kcat -P -b "$bootstrap" -t cppfly-ready -X message.timeout.ms=10000 \
        -m 10 2>/dev/null; then
      got=$(timeout 20 kcat -C -b "$bootstrap" -t cppfly-ready -o beginning -c 1 -e -m 10 2>/dev/null || true)
    fi
    [ -n "$got" ] || sleep 0.5
  done
}

# ---- single node: resume and kill -9 ----

single_resume() {
  local t0=$SECONDS pid
  need_kcat
  [ -f "$RUN_DIR/server.properties" ] && [ -d "$RUN_DIR/data" ] ||
    cppfly_die "kafka: nothing to resume in $RUN_DIR (run: scripts/kafka start)"
  pid=$(broker_pid)
  if [ -z "$pid" ]; then
    launch_java "$RUN_DIR" "$RUN_DIR/server.properties" "$RUN_DIR/log4j.properties" "$BROKER_OUT" "$PID_FILE" 768m
    pid=$(cat "$PID_FILE")
  fi
  if ! wait_ready "$BOOTSTRAP" $((t0 + START_TIMEOUT)) "$pid"; then
    print_logs
    cppfly_die "kafka: broker did not come back within $START_TIMEOUT s"
  fi
  # The TLS and SASL listeners come back with it (the certificates stay in the run dir).
  until security_metadata_ok 5; do
    kill -0 "$pid" 2>/dev/null || cppfly_die "kafka: broker process $pid exited during resume"
    [ "$SECONDS" -lt $((t0 + START_TIMEOUT)) ] || cppfly_die "kafka: TLS/SASL listeners not back within $START_TIMEOUT s"
    sleep 0.5
  done
  write_addresses
  echo "kafka resumed at $BOOTSTRAP (pid $pid, $((SECONDS - t0)) s, run dir $RUN_DIR)"
}

# kill -9, as a crash: the data stays for resume.
kill_pid_file() {
  local pid
  pid=$(pid_in_file "$1")
  if [ -z "$pid" ]; then
    echo "kafka: not running ($1)"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  wait_exit "$pid" 10 || cppfly_die "kafka: broker $pid survived SIGKILL"
  rm -f "$1"
  echo "kafka: killed (pid $pid)"
}

single_kill() {
  remove_addresses
  kill_pid_file "$PID_FILE"
}

# ---- a cluster of $NODES nodes under $RUN_DIR/cluster ----

CLUSTER_DIR="$RUN_DIR/cluster"
node_port() { echo $((PORT + 10 * $1)); }
node_controller_port() { echo $((CONTROLLER_PORT + 10 * $1)); }
node_dir() { echo "$CLUSTER_DIR/node$1"; }

cluster_bootstrap() {
  local i list=""
  for ((i = 1; i <= NODES; i++)); do list+="${list:+,}$HOST:$(node_port "$i")"; done
  echo "$list"
}

write_node_config() {
  local i=$1 dir voters="" j min_isr=$((NODES > 1 ? NODES - 1 : 1))
  dir=$(node_dir "$i")
  for ((j = 1; j <= NODES; j++)); do voters+="${voters:+,}$j@$HOST:$(node_controller_port "$j")"; done
  cat >"$dir/server.properties" <<CONF
# Written by scripts/kafka --nodes $NODES start.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://$HOST:$(node_port "$i"),CONTROLLER://$HOST:$(node_controller_port "$i")
advertised.listeners=PLAINTEXT://$HOST:$(node_port "$i")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$NODES
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$NODES
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$NODES
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=1
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.network.threads=2
num.io.threads=2
CONF
  cat >"$dir/log4j.properties" <<CONF
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/server.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
log4j.logger.kafka.server.ControllerServer=INFO
CONF
}

cluster_pids() {
  local i pid
  for ((i = 1; i <= NODES; i++)); do
    pid=$(pid_in_file "$(node_dir "$i")/kafka.pid")
    [ -z "$pid" ] || echo "$pid"
  done
}

cluster_start() {
  local t0=$SECONDS i p cluster_id java
  need_kcat
  installed || cmd_install >&2
  java=$(java_bin)
  if [ -n "$(cluster_pids)" ]; then cluster_stop >&2; fi
  for ((i = 1; i <= NODES; i++)); do
    for p in "$(node_port "$i")" "$(node_controller_port "$i")"; do
      port_in_use "$p" && cppfly_die "kafka: port $HOST:$p is already in use by another process"
    done
  done
  rm -rf "$CLUSTER_DIR"
  cluster_id=$(random_cluster_id)
  for ((i = 1; i <= NODES; i++)); do
    mkdir -p "$(node_dir "$i")/data"
    write_node_config "$i"
    if ! timeout 60 "$java" -Xmx128m -Dlog4j.configuration="file:$(node_dir "$i")/log4j.properties" \
        -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$(node_dir "$i")/server.properties" >"$(node_dir "$i")/format.out" 2>&1; then
      cat "$(node_dir "$i")/format.out" >&2
      cppfly_die "kafka: storage format of node $i failed"
    fi
  done
  cluster_resume all "$t0"
}

# cluster_resume all|I [t0]: starts the node(s) not running on their data, waits for the whole cluster.
cluster_resume() {
  local which=$1 t0=${2:-$SECONDS} i dir pid pids=()
  need_kcat
  for ((i = 1; i <= NODES; i++)); do
    dir=$(node_dir "$i")
    [ -f "$dir/server.properties" ] || cppfly_die "kafka: no cluster in $CLUSTER_DIR (run: scripts/kafka --nodes $NODES start)"
    pid=$(pid_in_file "$dir/kafka.pid")
    if [ -z "$pid" ] && { [ "$which" = all ] || [ "$which" = "$i" ]; }; then
      launch_java "$dir" "$dir/server.properties" "$dir/log4j.properties" "$dir/kafka.out" "$dir/kafka.pid" 384m
      pid=$(cat "$dir/kafka.pid")
    fi
    [ -z "$pid" ] || pids+=("$pid")
  done
  [ "${#pids[@]}" -eq "$NODES" ] || cppfly_die "kafka: only ${#pids[@]} of $NODES nodes are running"
  if ! wait_ready "$(cluster_bootstrap)" $((t0 + START_TIMEOUT)) "${pids[@]}"; then
    for ((i = 1; i <= NODES; i++)); do
      cppfly_log "---- node $i: last 20 lines of server.log ----"
      tail -n 20 "$(node_dir "$i")/server.log" >&2 2>/dev/null || true
    done
    cppfly_die "kafka: cluster not ready within $START_TIMEOUT s"
  fi
  cluster_bootstrap >"$CLUSTER_DIR/bootstrap"
  echo "kafka cluster of $NODES ready at $(cluster_bootstrap) ($((SECONDS - t0)) s, run dir $CLUSTER_DIR)"
}

cluster_kill() {
  local i
  for ((i = 1; i <= NODES; i++)); do
    if [ "$1" = all ] || [ "$1" = "$i" ]; then kill_pid_file "$(node_dir "$i")/kafka.pid"; fi
  done
}

cluster_stop() {
  local i pid
  rm -f "$CLUSTER_DIR/bootstrap"
  for pid in $(cluster_pids); do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 1; i <= NODES; i++)); do
    pid=$(pid_in_file "$(node_dir "$i")/kafka.pid")
    [ -n "$pid" ] || continue
    if ! wait_exit "$pid" 15; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_exit "$pid" 10 || cppfly_die "kafka: node $i (pid $pid) survived SIGKILL"
    fi
    rm -f "$(node_dir "$i")/kafka.pid"
  done
  echo "kafka: cluster of $NODES stopped"
}

# Every node in the metadata; a node that rejoined a moment ago may be missing briefly: up to 10 s.
cluster_status() {
  local md p missing end=$((SECONDS + 10))
  while :; do
    md=$(timeout 7 kcat -b "$(cluster_bootstrap)" -L -m 5 2>/dev/null || true)
    missing=""
    for p in $(cluster_bootstrap | tr ',' ' '); do [[ "$md" == *" at $p"* ]] || missing+=" $p"; done
    [ -n "$missing" ] || break
    [ "$SECONDS" -lt "$end" ] || { cppfly_log "kafka: not in the cluster's metadata:$missing"; return 1; }
    sleep 0.5
  done
  cluster_bootstrap
}
