#!/usr/bin/env bash
# Soak test of a mount (issue 19, item 4): 16 pread threads, mmap readers and
# sequential cats on a mixed archive for MINUTES (default 60), every byte compared with
# the oracle, the daemon's RSS, fds and threads sampled; see scripts/soak.py.
#
#   scripts/soak.sh [MINUTES] [--bin PATH] [--report FILE] [--log FILE] [--seed S]
#                   [--work DIR]
#
# Builds the release binary unless --bin (or $ZW_BIN) names one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --bin "* && -z "${ZW_BIN:-}" ]]; then
    cargo build --release --quiet
fi
exec python3 scripts/soak.py "$@"
