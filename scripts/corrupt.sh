#!/usr/bin/env bash
# Corruption differential (issue 19, item 3): VARIANTS (default 500) damaged copies of
# FLAC, PCM and Opus archives, each read by ls, info, extract, verify and a mount and
# classified against the oracle; see scripts/corrupt.py. Exit 1 on any DIFFERENT or
# crash/hang.
#
#   scripts/corrupt.sh [VARIANTS] [SEED] [more options of corrupt.py]
#
# Builds the release binary unless --bin (or $ZW_BIN) names one.
set -euo pipefail
cd "$(dirname "$0")/.."
variants=500
seed=1
if [[ ${1:-} =~ ^[0-9]+$ ]]; then variants=$1; shift; fi
if [[ ${1:-} =~ ^[0-9]+$ ]]; then seed=$1; shift; fi
if [[ " $* " != *" --bin "* && -z "${ZW_BIN:-}" ]]; then
    cargo build --release --quiet
fi
exec python3 scripts/corrupt.py --variants "$variants" --seed "$seed" "$@"
