#!/usr/bin/env bash
# A/B check of two builds on local archives: the cold sequential and cold random-read
# figures of scripts/bench.sh for an old binary (A) and a new one (B), side by side,
# measured in one run with A and B alternating so that the machine's drift hits both.
#
#   scripts/bench/ab.sh --old BIN_A --new BIN_B [--old-rev LABEL] [--new-rev LABEL]
#                       [--quick] [--pairs N] [--reads N] [--out FILE] [--work DIR]
#                       [--keep] [--drop-caches|--no-drop-caches]
#
# Material (deterministic, scripts/bench/material.py, as scripts/bench.sh makes it): the
# 2-hour 48 kHz mono recording of scripts/bench.sh, encoded once with opusenc at
# 64 kbit/s and imported byte for byte (recording "mono"), and the first 20 minutes of
# the same signal imported from WAV with the default codec, FLAC (recording "flac").
# Both go into one archive, imported once with B; A and B mount that same archive (the
# format did not change; the script checks that A reads it and that A and B serve the
# same bytes, also equal to `B extract`, before measuring).
#
# Figures, every run cold: a fresh mount (`BIN mount ARCH MNT -f`, the daemon a child of
# this script, as in scripts/bench.sh), then the page cache dropped
# (`sync; echo 3 > /proc/sys/vm/drop_caches`, full mode as root) or the archive's files
# evicted with posix_fadvise (scripts/bench/probe.py evict; --quick, or not root).
#   * cold sequential `cat FILE >/dev/null` of each recording: --pairs pairs (full 7,
#     quick 2); pair i runs A then B for even i, B then A for odd i (ABBA, so a linear
#     drift cancels). Reported: the median (min–max) of each side, the median (min–max)
#     of the per-pair ratios B/A and in how many pairs B was slower; also the daemon's
#     CPU time (user + system, from its /proc stat when the cat is done) and peak RSS.
#   * cold 4 KiB random reads of each recording (open + pread at a random offset,
#     scripts/bench/probe.py pread, a fresh mount and evicted archive per read, as the
#     cold random reads of scripts/bench.sh): --reads offsets (full 50, quick 5), the
#     same offsets for A and B, each offset read by A and by B in turn (order alternating
#     per offset). Reported: p50 and p99 (nearest rank) of open + read and of the pread
#     alone; B/A is the ratio of the two percentiles, and for p50 also the median of the
#     per-offset ratios.
# Nothing is asserted: the table goes to --out (default standard output) in Markdown,
# with the revisions (--old-rev/--new-rev, free-form labels such as `git describe`
# output), the binaries' sha256, the machine and its load. The log goes to stderr.
#
# --quick: toy sizes (20-s Opus and 10-s FLAC recordings, 2 pairs, 5 reads), a temp work
# dir; under half a minute. Full mode: about 5 minutes on an idle 2-core machine, plus
# about 3 the first time, to make the 2-hour material (kept in --work, default
# target/bench-work, whose material folder and mono.opus scripts/bench.sh shares).
#
# Needs: fusermount3 and /dev/fuse, python3 (numpy and scipy when material has to be
# made), opusenc.

# Functions run through traps and background jobs look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail
export LC_ALL=C

HELPERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HELPERS/../.." && pwd)

LOG_TAG=ab
# shellcheck source=scripts/bench/common.sh
. "$HELPERS/common.sh"

# --- options -----------------------------------------------------------------------------
COMMAND="scripts/bench/ab.sh${*:+ $(printf '%q ' "$@")}"
COMMAND=${COMMAND% }
QUICK=0 OLD="" NEW="" OLD_REV="" NEW_REV="" PAIRS="" READS="" OUT="" WORK="" KEEP=0 DROP=""
while [ $# -gt 0 ]; do
    if common_option "$@"; then shift "$OPT_SHIFT"; continue; fi
    case $1 in
        --old) OLD=${2:?--old needs a path}; shift ;;
        --old=*) OLD=${1#*=} ;;
        --new) NEW=${2:?--new needs a path}; shift ;;
        --new=*) NEW=${1#*=} ;;
        --old-rev) OLD_REV=${2:?--old-rev needs a label}; shift ;;
        --old-rev=*) OLD_REV=${1#*=} ;;
        --new-rev) NEW_REV=${2:?--new-rev needs a label}; shift ;;
        --new-rev=*) NEW_REV=${1#*=} ;;
        --pairs) PAIRS=${2:?--pairs needs a number}; shift ;;
        --pairs=*) PAIRS=${1#*=} ;;
        --reads) READS=${2:?--reads needs a number}; shift ;;
        --reads=*) READS=${1#*=} ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
{ [ -n "$OLD" ] && [ -n "$NEW" ]; } || die "--old BIN_A and --new BIN_B are required (see --help)"

# --- sizes of the two modes --------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
    MODE=quick
    OPUS_S=20 FLAC_S=10        # material, seconds
    PAIRS=${PAIRS:-2}          # A/B pairs of cold sequential runs per recording
    READS=${READS:-5}          # cold random 4 KiB reads per binary and recording
    DROP=${DROP:-0}
else
    MODE=full
    OPUS_S=7200 FLAC_S=1200    # the 2-hour mono recording of scripts/bench.sh; 20 min FLAC
    PAIRS=${PAIRS:-7}
    READS=${READS:-50}
    DROP=${DROP:-1}
fi
BITRATE_K=64                   # opusenc, per channel (mono), as in scripts/bench.sh
CACHE_SIZE=256MiB              # the daemon's --cache-size, as in scripts/bench.sh
SEED=5                         # random offsets, as in scripts/bench.sh
RECS=(mono flac)
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "--pairs must be a positive number"
[[ $READS =~ ^[1-9][0-9]*$ ]] || die "--reads must be a positive number"

# --- tools -------------------------------------------------------------------------------
for t in fusermount3 mountpoint opusenc python3 sha256sum; do have "$t" || die "$t is required (scripts/setup.sh installs it)"; done
[ -e /dev/fuse ] || die "/dev/fuse is missing"

abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
[ -x "$OLD" ] || die "--old: no executable at $OLD"
[ -x "$NEW" ] || die "--new: no executable at $NEW"
OLD=$(abspath "$OLD") NEW=$(abspath "$NEW")

# --- work directories ------------------------------------------------------------------------
# WORK keeps the material between full runs (deterministic; the same folder and keys as
# scripts/bench.sh, so either script reuses the other's mono.opus); RUN holds everything
# of this run and is removed at the end (unless --keep).
work_dir ab "$ROOT/target/bench-work"
MAT=$WORK/material RUN=$WORK/ab-run
MNT=$RUN/mnt ARCH=$RUN/archive SRC=$RUN/src

# The one mount of the run: its daemon's pid and which binary it is.
MNT_PID=""
SAMPLER=""                     # pid of the load sampler

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
    [ -n "$MNT_PID" ] && stop_daemon "$MNT" "$MNT_PID" 5
    if [ "$TEMP_WORK" = 1 ] && [ "$KEEP" = 0 ]; then rm -rf "$WORK"; elif [ "$KEEP" = 0 ]; then rm -rf "$RUN"; fi
    [ "$KEEP" = 1 ] && log "results kept in $RUN"
    [ "$rc" -ne 0 ] && log "failed (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$RUN"
mkdir -p "$MAT" "$RUN" "$MNT" "$SRC" "$RUN/logs" "$RUN/bin/old" "$RUN/bin/new"
# The run uses copies of the binaries: a rebuild during the run cannot change them.
cp "$OLD" "$RUN/bin/old/zarr-wavfs"
cp "$NEW" "$RUN/bin/new/zarr-wavfs"
declare -A BIN_OF=([old]=$RUN/bin/old/zarr-wavfs [new]=$RUN/bin/new/zarr-wavfs)
B=${BIN_OF[new]}
RESULTS=$RUN/results.tsv META=$RUN/meta.tsv
: >"$RESULTS"; : >"$META"

# How busy the machine is with other work (common.sh), as in scripts/bench.sh.
sample_load >"$RUN/load.tsv" 2>/dev/null &
SAMPLER=$!

# --- recording results ----------------------------------------------------------------------
# results.tsv: "measure/system/recording<TAB>value<TAB>pair" (system old or new; pair: the
# pair of sequential runs, or the offset's index for random reads); meta.tsv:
# "key<TAB>value". scripts/bench/ab_report.py turns both into the table.
HZ=$(getconf CLK_TCK)
# daemon_cpu_s PID: user + system CPU seconds of process PID so far.
daemon_cpu_s() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$HZ" '{ printf "%.3f", ($12 + $13) / hz }'; }

# --- cold state and mounts (common.sh, as scripts/bench.sh, for one mountpoint) -----------------
check_drop_caches
unmount() {
    [ -n "$MNT_PID" ] || return 0
    stop_daemon "$MNT" "$MNT_PID"
    MNT_PID=""
}
# remount WHO: unmount if mounted, then a fresh mount of the archive by binary WHO (old|new).
remount() {
    unmount
    "${BIN_OF[$1]}" mount "$ARCH" "$MNT" -f --cache-size "$CACHE_SIZE" --log "$RUN/logs/mount-$1.log" \
        </dev/null >>"$RUN/logs/mount-$1.stderr" 2>&1 &
    MNT_PID=$!
    wait_mounted "$MNT" "$MNT_PID" || die "mount by $1 failed; see $RUN/logs"
}
# order I: the two binaries in the order of pair (or offset) I: ABBA.
order() { if (($1 % 2 == 0)); then echo old new; else echo new old; fi; }

log "mode $MODE: old $OLD, new $NEW, work dir $WORK, report ${OUT:-stdout}"
meta mode "$MODE"
meta command "$COMMAND"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
for who in old new; do
    b=${BIN_OF[$who]}
    meta "${who}_bin" "$([ "$who" = old ] && echo "$OLD" || echo "$NEW")"
    meta "${who}_sha" "$(sha256sum "$b" | cut -c1-16)"
    meta "${who}_version" "$("$b" --version 2>/dev/null || echo '?')"
done
meta old_rev "${OLD_REV:-–}"
meta new_rev "${NEW_REV:-–}"
if cmp -s "${BIN_OF[old]}" "${BIN_OF[new]}"; then
    note "--old and --new are the same binary (an A/A run: the spread is the noise)"
fi

# ==============================================================================================
# 1. Material, as scripts/bench.sh makes it (same keys, so its mono.opus is shared)
# ==============================================================================================
wav_key() { # SECS: the key of the FLAC source WAV
    printf '%s secs=%s ch=1 wav\n' "$(sha256sum "$HELPERS/material.py" | cut -c1-16)" "$1"
}
OPUS_NAME=mono FLAC_NAME=ab-flac-$FLAC_S
gen_args=() encode=0
if [ -f "$MAT/$OPUS_NAME.opus" ] && [ "$(cat "$MAT/$OPUS_NAME.key" 2>/dev/null)" = "$(material_key "$OPUS_S" 1)" ]; then
    log "material $OPUS_NAME: reusing $MAT/$OPUS_NAME.opus"
else
    gen_args+=("$OPUS_S" 1 "$MAT/$OPUS_NAME.wav")
    encode=1
fi
if [ -f "$MAT/$FLAC_NAME.wav" ] && [ "$(cat "$MAT/$FLAC_NAME.key" 2>/dev/null)" = "$(wav_key "$FLAC_S")" ]; then
    log "material $FLAC_NAME: reusing $MAT/$FLAC_NAME.wav"
else
    rm -f "$MAT/$FLAC_NAME.key"
    gen_args+=("$FLAC_S" 1 "$MAT/$FLAC_NAME.wav")
fi
if [ ${#gen_args[@]} -gt 0 ]; then
    "$PY" -c 'import numpy, scipy' 2>/dev/null || die "python3 needs numpy and scipy to make the material (scripts/setup.sh installs them)"
    log "material: generating (${gen_args[*]})"
    "$PY" "$HELPERS/material.py" "${gen_args[@]}"
    if [ "$encode" = 1 ]; then
        log "material $OPUS_NAME: encoding with opusenc at $BITRATE_K kbit/s"
        opusenc --quiet --bitrate "$BITRATE_K" "$MAT/$OPUS_NAME.wav" "$MAT/$OPUS_NAME.opus.tmp" || die "opusenc failed"
        mv "$MAT/$OPUS_NAME.opus.tmp" "$MAT/$OPUS_NAME.opus"
        rm -f "$MAT/$OPUS_NAME.wav"
        material_key "$OPUS_S" 1 >"$MAT/$OPUS_NAME.key"
    fi
    [ -f "$MAT/$FLAC_NAME.key" ] || wav_key "$FLAC_S" >"$MAT/$FLAC_NAME.key"
fi

# ==============================================================================================
# 2. One archive, imported with B; A must read it too
# ==============================================================================================
# same_stream FILE ARRAY: the Zarr byte array (chunks c/0, c/1, ...) holds FILE exactly
# (as in scripts/bench.sh).
same_stream() {
    local n chunks=()
    n=$(stat -c %s "$1")
    mapfile -t chunks < <(find "$2/c" -type f -printf '%f\n' | sort -n)
    [ "$(tr -d ' \n' <"$2/zarr.json" | grep -o '"shape":\[[0-9]*' | grep -o '[0-9]*$')" = "$n" ] || return 1
    cmp -s "$1" <(for c in "${chunks[@]}"; do cat "$2/c/$c"; done | head -c "$n")
}
ln "$MAT/$OPUS_NAME.opus" "$SRC/mono.opus" 2>/dev/null || cp "$MAT/$OPUS_NAME.opus" "$SRC/mono.opus"
ln "$MAT/$FLAC_NAME.wav" "$SRC/flac.wav" 2>/dev/null || cp "$MAT/$FLAC_NAME.wav" "$SRC/flac.wav"
log "import mono (Ogg Opus, $OPUS_S s) with B"
"$B" import "$ARCH" "$SRC/mono.opus" --bitrate "${BITRATE_K}k" >>"$RUN/logs/import.log" 2>&1 ||
    die "import of mono.opus failed (see $RUN/logs/import.log)"
same_stream "$SRC/mono.opus" "$ARCH/mono/stream" || note "the archive's stream of mono differs from mono.opus"
log "import flac (WAV -> FLAC, the default codec, $FLAC_S s) with B"
"$B" import "$ARCH" "$SRC/flac.wav" >>"$RUN/logs/import.log" 2>&1 ||
    die "import of flac.wav failed (see $RUN/logs/import.log)"
declare -A WAV_BYTES=()
for k in "${RECS[@]}"; do
    info=$("$B" info "$ARCH" "$k")
    WAV_BYTES[$k]=$(awk '/^WAV size served:/ { print $4 }' <<<"$info")
    meta "codec_$k" "$(awk -F': *' '/^codec:/ { print $2 }' <<<"$info")"
    meta "duration_$k" "$(awk -F'[()]' '/^duration:/ { split($2, a, " "); print a[1] }' <<<"$info")"
    meta "wav_bytes_$k" "${WAV_BYTES[$k]}"
    old_info=$("${BIN_OF[old]}" info "$ARCH" "$k" 2>>"$RUN/logs/import.log") ||
        die "A cannot read the archive B wrote (recording $k; see $RUN/logs/import.log)"
    [ "$(awk '/^WAV size served:/ { print $4 }' <<<"$old_info")" = "${WAV_BYTES[$k]}" ] ||
        note "A and B disagree on the WAV size of $k"
done
[ "$(awk -F'\t' '$1 == "codec_flac" { print $2 }' "$META")" = flac ] || note "the flac recording was not stored as FLAC"
ARCH_BYTES_BEFORE=$(du -sb "$ARCH" | cut -f1)

# ==============================================================================================
# 3. Same bytes from A, from B and from `B extract` (untimed; also warms up both binaries)
# ==============================================================================================
for k in "${RECS[@]}"; do
    ref=$("$B" extract "$ARCH" "$k" -o - 2>>"$RUN/logs/extract.log" | sha256sum | cut -c1-64)
    for who in old new; do
        remount "$who"
        sum=$(sha256sum <"$MNT/$k.wav" | cut -c1-64)
        size=$(stat -c %s "$MNT/$k.wav")
        unmount
        meta "sha_${who}_$k" "$sum"
        [ "$sum" = "$ref" ] || note "$who: the served $k.wav differs from \`zarr-wavfs extract\` (new binary)"
        [ "$size" = "${WAV_BYTES[$k]}" ] || note "$who: $k.wav has st_size $size, info says ${WAV_BYTES[$k]}"
    done
    meta "sha_extract_$k" "$ref"
    log "$k: A and B serve $([ "$(awk -F'\t' -v a="sha_old_$k" -v b="sha_new_$k" '$1 == a { x = $2 } $1 == b { y = $2 } END { print (x == y) }' "$META")" = 1 ] && echo the same || echo DIFFERENT) bytes"
done

# ==============================================================================================
# 4. Cold sequential cat, A and B alternating (ABBA)
# ==============================================================================================
seq_run() { # WHO REC PAIR
    local who=$1 k=$2 p=$3 t0 t1
    remount "$who"
    cold_cache "$ARCH"
    t0=$EPOCHREALTIME
    if cat "$MNT/$k.wav" >/dev/null; then
        t1=$EPOCHREALTIME
        rec "seq_s/$who/$k" "$(elapsed "$t0" "$t1")" "$p"
    else
        log "failed: cold cat of $k by $who"
        rec "failed/seq_s/$who/$k" 1 "$p"
    fi
    rec "cpu_s/$who/$k" "$(daemon_cpu_s "$MNT_PID")" "$p"
    rec "rss_kib/$who/$k" "$(vmhwm_kib "$MNT_PID")" "$p"
    unmount
}
for k in "${RECS[@]}"; do
    log "$k: cold sequential cat, $PAIRS pairs A/B"
    for ((p = 0; p < PAIRS; p++)); do
        for who in $(order "$p"); do seq_run "$who" "$k" "$p"; done
    done
done

# ==============================================================================================
# 5. Cold random 4 KiB reads: a fresh mount and evicted archive per read (as scripts/bench.sh)
# ==============================================================================================
for k in "${RECS[@]}"; do
    "${PROBE[@]}" offsets "${WAV_BYTES[$k]}" "$READS" "$SEED" >"$RUN/offsets-$k"
    mapfile -t offsets <"$RUN/offsets-$k"
    log "$k: ${#offsets[@]} cold random 4 KiB reads each, A/B alternating"
    for ((i = 0; i < ${#offsets[@]}; i++)); do
        for who in $(order "$i"); do
            remount "$who"
            if line=$("${PROBE[@]}" pread "$MNT/$k.wav" "${offsets[$i]}" --evict "$ARCH"); then
                read -r o t total b <<<"$line"
                rec "cold_open_s/$who/$k" "$o" "$i"
                rec "cold_read_s/$who/$k" "$t" "$i"
                rec "cold_total_s/$who/$k" "$total" "$i"
                [ "$b" = 4096 ] || rec "short_reads/$who/$k" 1 "$i"
            else
                log "failed: cold read of $k at ${offsets[$i]} by $who"
                rec "failed/cold_total_s/$who/$k" 1 "$i"
            fi
        done
    done
    unmount
done

# The daemons only read: the archive must not have changed size.
[ "$(du -sb "$ARCH" | cut -f1)" = "$ARCH_BYTES_BEFORE" ] || note "the archive changed size during the run"

# ==============================================================================================
# 6. Report
# ==============================================================================================
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta cpu "$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }')"
meta cores "$(nproc)"
meta kernel "$(uname -sr)"
meta drop_caches "$DROP"
meta pairs "$PAIRS"
meta reads "$READS"
meta opus_s "$OPUS_S"
meta flac_s "$FLAC_S"
meta bitrate_k "$BITRATE_K"
meta cache_size "$CACHE_SIZE"
for n in "${NOTES[@]}"; do meta note "$n"; done

stop_sampler "$RUN/load.tsv"

"$PY" "$HELPERS/ab_report.py" "$RESULTS" "$META" >"$RUN/report.md"
if [ -n "$OUT" ]; then
    mkdir -p "$(dirname "$OUT")"
    cp "$RUN/report.md" "$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    log "report written to $OUT"
else
    cat "$RUN/report.md"
fi
exit 0
