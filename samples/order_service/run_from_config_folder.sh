#!/usr/bin/env bash
# Runs the sample from a scratch folder holding only config/pyfly.yaml and config/pyfly-embedded.yaml,
# with no --config: it must read both (in that order, said in its log) and finish on the embedded Kafka.
#   run_from_config_folder.sh SERVICE SAMPLE_DIR
set -euo pipefail
service=$1 sample=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/config"
cp "$sample/pyfly.yaml" "$sample/pyfly-embedded.yaml" "$work/config/"
cd "$work"
status=0
output=$(PYFLY_PROFILES_ACTIVE=embedded timeout 150 "$service" 2>&1) || status=$?
printf '%s\n' "$output"
fail() { echo "FAILED: $*"; exit 1; }
[ "$status" -eq 0 ] || fail "exit status $status"
grep -q "config: read config/pyfly.yaml, config/pyfly-embedded.yaml" <<<"$output" || fail "the files read are not logged in order"
grep -q "messaging provider: kafka" <<<"$output" || fail "the profile in config/ was not applied"
grep -Eq "summary: 5 reserved, 5 invoiced, 3 paid, 2 dead-lettered" <<<"$output" || fail "no summary line"
echo "PASSED"
