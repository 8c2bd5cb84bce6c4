# Helpers of scripts/bench.sh, scripts/bench/ab.sh and scripts/bench/remote.sh, sourced
# by each after it has set LOG_TAG (the prefix of its log lines). Results and metadata
# go to $RESULTS and $META; cold_cache reads DROP; the mount helpers need fusermount3.
# shellcheck shell=bash disable=SC2034 # the variables set here are the caller's

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
NOTES=()
note() { log "note: $*"; NOTES+=("$*"); }

# common_option ARGS...: takes an option every bench script has (--quick, --out FILE,
# --work DIR, --keep, --drop-caches, --no-drop-caches, --help) off the front of ARGS,
# OPT_SHIFT words; 1 when the first word is not one of them.
common_option() {
    OPT_SHIFT=1
    case $1 in
        --quick) QUICK=1 ;;
        --out) OUT=${2:?--out needs a file}; OPT_SHIFT=2 ;;
        --out=*) OUT=${1#*=} ;;
        --work) WORK=${2:?--work needs a directory}; OPT_SHIFT=2 ;;
        --work=*) WORK=${1#*=} ;;
        --keep) KEEP=1 ;;
        --drop-caches) DROP=1 ;;
        --no-drop-caches) DROP=0 ;;
        -h | --help) usage; exit 0 ;;
        *) return 1 ;;
    esac
}

# The real interpreter, not a pyenv shim (a shim costs ~50 ms per call); probe.py needs
# only the standard library, and -S skips site-packages (60 ms less per call).
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)
PROBE=("$PY" -S "$(dirname "${BASH_SOURCE[0]}")/probe.py")

# work_dir NAME DEFAULT: WORK as given, else a temp directory (--quick, removed at the
# end: TEMP_WORK=1) or DEFAULT (full mode, kept for its material); made absolute.
work_dir() {
    TEMP_WORK=0
    if [ -z "$WORK" ]; then
        if [ "$MODE" = quick ]; then
            WORK=$(mktemp -d "${TMPDIR:-/tmp}/zarr-wavfs-$1.XXXXXX")
            TEMP_WORK=1
        else
            WORK=$2
        fi
    fi
    mkdir -p "$WORK"
    WORK=$(cd "$WORK" && pwd)
}

# results.tsv: "measure/system/case<TAB>value[<TAB>pair]"; meta.tsv: "key<TAB>value".
rec() { if [ $# -gt 2 ]; then printf '%s\t%s\t%s\n' "$@" >>"$RESULTS"; else printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; fi; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
# timed KEY CMD...: runs CMD and records its wall time under KEY; a failing CMD is
# recorded as a failure (failed/KEY) instead of stopping the benchmark.
timed() {
    local key=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    if "$@"; then
        t1=$EPOCHREALTIME
        rec "$key" "$(elapsed "$t0" "$t1")"
    else
        log "failed: $key ($*)"
        rec "failed/$key" 1
    fi
}
cat_null() { cat "$1" >/dev/null; }
vmhwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# material_key SECS CHANNELS: what an encoded file of scripts/bench/material.py depends
# on (a file whose stored key matches is reused; the scripts share their material).
material_key() {
    printf '%s secs=%s ch=%s bitrate=%sk %s\n' "$(sha256sum "$(dirname "${BASH_SOURCE[0]}")/material.py" | cut -c1-16)" \
        "$1" "$2" $((BITRATE_K * $2)) "$(opusenc --version 2>&1 | head -1)"
}

# Every 2 s: the 1-min load average and the number of threads outside this script's
# session that are running or waiting for I/O (state R or D).
sample_load() {
    local sid
    sid=$(ps -o sid= -p $$ | tr -d ' ')
    while :; do
        printf '%s\t%s\n' "$(cut -d' ' -f1 /proc/loadavg)" \
            "$(ps -eL -o sid=,stat= | awk -v s="$sid" '$1 != s && $1 != 0 && $2 ~ /^[RD]/ { n++ } END { print n + 0 }')"
        sleep 2
    done
}

# stop_sampler FILE: stops sample_load (its pid in SAMPLER) and records what it wrote to FILE.
stop_sampler() {
    local l n
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=""
    while IFS=$'\t' read -r l n; do
        rec "load1/-/-" "$l"
        rec "foreign_threads/-/-" "$n"
    done <"$1"
}

# --- cold state ------------------------------------------------------------------------------
# check_drop_caches: DROP=1 (full mode, root) drops the whole page cache; where that is
# not allowed, DROP=0 and the files behind a read are evicted instead.
check_drop_caches() {
    if [ "$DROP" = 1 ] && ! { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
        DROP=0
        note "/proc/sys/vm/drop_caches is not writable: cold runs evict the backing files with posix_fadvise instead"
    fi
}
# cold_cache [--per-file] PATH...: the page cache forgets the data behind a read (all of
# it with DROP=1, unless --per-file; else PATHs' pages, posix_fadvise(DONTNEED)).
cold_cache() {
    local per_file=0
    if [ "${1:-}" = --per-file ]; then per_file=1; shift; fi
    if [ "$DROP" = 1 ] && [ "$per_file" = 0 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    else
        "${PROBE[@]}" evict "$@"
    fi
}

# --- processes and mounts ------------------------------------------------------------------------
kill_wait() { # PID [SECS]: SIGTERM, then up to SECS (default 5) for it to go
    local i
    kill "$1" 2>/dev/null || return 0
    for ((i = 0; i < ${2:-5} * 100; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.01; done
    wait "$1" 2>/dev/null || true
}
wait_mounted() { # MNT PID: until MNT is mounted (30 s at most; else 1) or PID has exited (1)
    local i
    for ((i = 0; i < 3000; i++)); do
        mountpoint -q "$1" && return 0
        kill -0 "$2" 2>/dev/null || { log "the daemon for $1 exited"; return 1; }
        sleep 0.01
    done
    log "$1 not mounted after 30 s"
    return 1
}
# stop_daemon MNT [PID [SECS]]: unmount MNT (lazily if busy), then up to SECS (default
# 30) for its daemon PID to exit before it is sent SIGTERM.
stop_daemon() {
    local i
    if mountpoint -q "$1" 2>/dev/null; then fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1"; fi
    [ -n "${2:-}" ] || return 0
    for ((i = 0; i < ${3:-30} * 100; i++)); do kill -0 "$2" 2>/dev/null || break; sleep 0.01; done
    if kill -0 "$2" 2>/dev/null; then log "the daemon $2 of $1 still runs ${3:-30} s after its unmount: stopping it"; fi
    kill_wait "$2"
}
