#!/usr/bin/env bash
# The fault-store properties of tests/faults.rs (issue 19, item 2) over more seeded
# schedules than `cargo test` runs: every read through the file-system core is exact or
# an error within a bound, and exact again once the faults stop; plus the real-mount
# property. Prints the totals line (schedules, reads, exact, errors, faults injected).
#
#   scripts/faults.sh [CASES]      # default 500
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-500}
log=$(mktemp /tmp/faults.XXXXXX.log)
start=$(date +%s)
status=0
FAULT_CASES=$cases cargo test --release --test faults -- --nocapture --test-threads 1 \
    > "$log" 2>&1 || status=$?
grep -E "^test |test result|panicked" "$log" || true
echo "$(grep 'fault totals' "$log" | tail -1 | sed 's/^fault totals: //') in $(( $(date +%s) - start )) s (log: $log)"
exit "$status"
