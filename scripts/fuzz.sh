#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of outside bytes (issue 19): runs each cargo-fuzz
# target in fuzz/ for SECONDS_PER_TARGET (default 60) and reports what each did.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# The properties are in src/fuzzing.rs (one function per target; a crash is a violated
# property, not only a panic). Needs the nightly toolchain (libFuzzer's instrumentation);
# cargo-fuzz is installed once, from crates.io, into ${ZW_CACHE:-~/.cache/zarr-wavfs}/
# cargo-fuzz, outside the clone. Each target starts from its committed seeds
# (fuzz/corpus/TARGET/) and regressions (fuzz/regressions/TARGET/) and adds what it finds
# to fuzz/target/corpus/TARGET/, which later runs reuse (git ignores fuzz/target/); the
# committed corpus is never written. libFuzzer stops a target at its first crash and
# writes the input to fuzz/artifacts/TARGET/; `cargo +nightly fuzz run TARGET FILE`
# replays it, and once fixed it belongs in fuzz/regressions/TARGET/.
#
# Prints a table (target, seconds, executions, exec/s, corpus, coverage, crashes), also
# written to /tmp/fuzz-report.md, with each log in fuzz/target/logs/; exits 1 if any
# target crashed (the artifacts are listed), 2 on a usage or setup error.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-60}
shift $(($# > 0 ? 1 : 0))
case $SECS in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
REPORT=/tmp/fuzz-report.md
LOGS=$ROOT/fuzz/target/logs
WORK=$ROOT/fuzz/target/corpus
log() { printf '[fuzz] %s\n' "$*" >&2; }

# --- toolchain and cargo-fuzz ------------------------------------------------------------
NIGHTLY=$(rustup toolchain list | awk '/^nightly/ {print $1; exit}')
if [ -z "$NIGHTLY" ]; then
    log "no nightly toolchain (rustup toolchain install nightly)"
    exit 2
fi
CACHE=${ZW_CACHE:-$HOME/.cache/zarr-wavfs}
FUZZ_ROOT=$CACHE/cargo-fuzz
if [ ! -x "$FUZZ_ROOT/bin/cargo-fuzz" ]; then
    log "installing cargo-fuzz into $FUZZ_ROOT (once)"
    cargo install --locked --root "$FUZZ_ROOT" cargo-fuzz
fi
export PATH="$FUZZ_ROOT/bin:$PATH"
cd "$ROOT"

# --- build ---------------------------------------------------------------------------------
# Release with debug assertions and overflow checks, AddressSanitizer (cargo-fuzz's
# default). All targets are built once, from the tree as it is now, and their binaries run
# directly: `cargo fuzz run` would rebuild the crate whenever a source file changed.
log "building the targets with $NIGHTLY ($(cargo-fuzz --version))"
cargo "+$NIGHTLY" fuzz build
HOST=$(rustc "+$NIGHTLY" -vV | sed -n 's/^host: //p')
BIN=$ROOT/fuzz/target/$HOST/release
if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo "+$NIGHTLY" fuzz list)
fi
mkdir -p "$LOGS" "$WORK"

# --- run -----------------------------------------------------------------------------------
ROWS=()
CRASHED=()
for t in "${TARGETS[@]}"; do
    [ -d "fuzz/corpus/$t" ] || { log "$t: no fuzz/corpus/$t/"; exit 2; }
    dirs=("$WORK/$t" "fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    mkdir -p "$WORK/$t" "fuzz/artifacts/$t"
    log "$t: ${SECS}s"
    start=$(date +%s)
    status=0
    # -timeout: one input running this long is a hang (reported like a crash).
    "$BIN/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$SECS" \
        -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 "${dirs[@]}" \
        >"$LOGS/$t.log" 2>&1 || status=$?
    secs=$(($(date +%s) - start))
    # The last status line: "#N  DONE  cov: C ft: F corp: U/SIZE ... exec/s: E rss: R".
    last=$(grep -E '^#[0-9]+' "$LOGS/$t.log" | tail -n 1 || true)
    field() { sed -nE "s/.* $1: ([^ ]+).*/\1/p" <<<"$last"; }
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$LOGS/$t.log" | tail -n 1)
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$LOGS/$t.log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    [ -n "$rate" ] || rate=$(field 'exec/s')
    corp=$(field corp)
    cov=$(field cov)
    artifacts=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$LOGS/$t.log")
    crashes=0
    if [ -n "$artifacts" ]; then
        crashes=$(wc -l <<<"$artifacts")
    elif [ "$status" -ne 0 ]; then
        crashes=1 # no artifact: the harness itself failed (see the log)
        artifacts="(none; see $LOGS/$t.log)"
    fi
    if [ "$crashes" -gt 0 ]; then
        while IFS= read -r a; do CRASHED+=("$t: $a"); done <<<"$artifacts"
    fi
    ROWS+=("| $t | $secs | ${execs:-?} | ${rate:-?} | ${corp:-?} | ${cov:-?} | $crashes |")
    log "$t: ${execs:-?} executions, cov ${cov:-?}, $crashes crash(es)"
done

# --- report --------------------------------------------------------------------------------
{
    echo "# Fuzzing report"
    echo
    echo "\`scripts/fuzz.sh $SECS\` on $(date -u +%Y-%m-%dT%H:%M:%SZ), $NIGHTLY," \
        "$(nproc) cores; corpus is libFuzzer's units/bytes, cov its coverage points."
    echo
    echo "| target | seconds | executions | exec/s | corpus | cov | crashes |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    if [ ${#CRASHED[@]} -gt 0 ]; then
        echo
        echo "Crashes (replay: \`cargo +nightly fuzz run TARGET ARTIFACT\`):"
        echo
        printf -- '- %s\n' "${CRASHED[@]}"
    fi
} | tee "$REPORT"
log "report written to $REPORT; logs in $LOGS"
[ ${#CRASHED[@]} -eq 0 ]
