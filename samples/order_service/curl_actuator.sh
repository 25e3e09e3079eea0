#!/usr/bin/env bash
# Runs the sample with order-service.keep-running on a free management port and curls each actuator
# endpoint the README shows; then stops it with SIGTERM (exit code 0 expected).
#   curl_actuator.sh SERVICE CONFIG
set -euo pipefail
service=$1 config=$2
log=$(mktemp)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
fail() { echo "FAILED: $*"; cat "$log"; exit 1; }
ORDER_SERVICE_KEEP_RUNNING=true PYFLY_MANAGEMENT_SERVER_PORT=0 "$service" --config "$config" >"$log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 300); do  # at most 30 s
  port=$(sed -n 's|.*management server: http://127.0.0.1:\([0-9]*\)/actuator.*|\1|p' "$log" | head -n 1)
  grep -q "keeps running" "$log" && [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || fail "the sample exited"
  sleep 0.1
done
grep -q "keeps running" "$log" || fail "the sample did not finish its orders within 30 s"
base=http://127.0.0.1:$port/actuator
health=$(curl -sf "$base/health") || fail "curl $base/health"
grep -q '"status":"UP"' <<<"$health" || fail "health: $health"
curl -sf "$base/health/liveness" | grep -q '"status":"UP"' || fail "liveness"
curl -sf "$base/health/readiness" | grep -q '"status":"UP"' || fail "readiness"
curl -sf "$base/info" | grep -q '"name":"handle_order"\|"listeners"' || fail "info"
metrics=$(curl -sf "$base/prometheus") || fail "curl $base/prometheus"
grep -q '^cppfly_records_handled_total{.*outcome="success"} [1-9]' <<<"$metrics" || fail "prometheus: $metrics"
grep -q '^cppfly_records_handled_total{.*outcome="dead_lettered"} [1-9]' <<<"$metrics" || fail "no dead letters counted"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || fail "exit code $status after SIGTERM"
echo "PASSED: health, liveness, readiness, info and prometheus answered on port $port"
