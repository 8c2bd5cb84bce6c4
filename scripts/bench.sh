#!/usr/bin/env bash
# Benchmark of zarr-wavfs against ffmpegfs and decode-to-disk (issue 5, section 1).
#
#   scripts/bench.sh [--quick] [--bin PATH] [--out FILE] [--work DIR] [--reps N]
#                    [--peer-reps N] [--keep] [--drop-caches|--no-drop-caches]
#
# One run on one machine: builds the release binary (unless --bin), makes deterministic
# material (a 2-hour 48 kHz mono recording and a 1-hour stereo one), encodes each once to
# Ogg Opus at 64 kbit/s per channel with opusenc, imports that same stream into an archive
# (zarr-wavfs copies Ogg Opus byte for byte), gives the same .opus file to ffmpegfs and to
# the decode-to-disk peers (opusdec, ffmpeg), and measures every pattern of issue 5 on
# all of them, plus the limits (single-core libopus decode rate in our binary x cores,
# and `cat` of the decoded WAV from tmpfs). Each figure is the median of --reps runs
# (default 5) with min and max; percentiles come from one distribution of reads. To keep
# a full run near 25 minutes, the slowest peer runs (decoding 3 hours of audio to disk,
# ffmpegfs clients that transcode whole files) use --peer-reps (default 3) runs and
# ffmpegfs gets 10 cold random reads instead of 200; the report says so.
# Nothing is asserted: the figures, ratios and targets go to the report, by default
# docs/BENCHMARKS.md.
#
# --quick runs the same pipeline at toy sizes (20-s and 10-s recordings, 3 runs, one run
# per client, 10 random reads, 50 recordings for ls -lR) in about half a minute, skips
# peers that are not installed (with a note) and writes its report to --out (default: a
# temp file, never docs/BENCHMARKS.md). tests/bench_script.rs runs it under `cargo test`.
#
# Cold state: every cold run gets a fresh mount (ffmpegfs also a fresh, empty
# --cachepath). In full mode as root the page cache is then dropped
# (`sync; echo 3 > /proc/sys/vm/drop_caches`); in --quick mode, or when drop_caches is
# not writable, the backing files' pages are evicted instead with
# posix_fadvise(DONTNEED) (scripts/bench/probe.py evict). The many cold random reads
# always use that per-file eviction plus a fresh mount per read (see probe.py).
#
# Remote archives: scripts/bench/remote.sh then measures the same kind of material read
# from S3 (s3s-fs on loopback, and behind a 20 ms round trip in a network namespace of
# its own) against the local archive and against rclone/s3fs + ffmpegfs, and its section
# "## Remote archives (S3)" goes into the report (--quick: toy sizes; parts that cannot
# run here are skipped with a note in that section).
#
# Needs: fusermount3 and /dev/fuse, python3 with numpy and scipy, opusenc. Optional
# (skipped with a note when missing in --quick; installed with apt in full mode):
# ffmpegfs, opusdec, ffmpeg/ffprobe, sox, python3 soundfile, taskset, perf (the profile
# of one cold sequential read; Debian package linux-perf).

# Functions run through `timed`, traps and background jobs look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS=$ROOT/scripts/bench

LOG_TAG=bench
# shellcheck source=scripts/bench/common.sh
. "$HELPERS/common.sh"

# --- options -----------------------------------------------------------------------------
QUICK=0 BIN="" OUT="" WORK="" REPS="" PEER_REPS="" KEEP=0 DROP=""
while [ $# -gt 0 ]; do
    if common_option "$@"; then shift "$OPT_SHIFT"; continue; fi
    case $1 in
        --bin) BIN=${2:?--bin needs a path}; shift ;;
        --bin=*) BIN=${1#*=} ;;
        --reps) REPS=${2:?--reps needs a number}; shift ;;
        --reps=*) REPS=${1#*=} ;;
        --peer-reps) PEER_REPS=${2:?--peer-reps needs a number}; shift ;;
        --peer-reps=*) PEER_REPS=${1#*=} ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

# --- sizes of the two modes --------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
    MODE=quick
    MONO_S=20 STEREO_S=10      # material, seconds
    REPS=${REPS:-3}            # runs per figure
    SEQ_REPS=$REPS             # our cold sequential runs, each paired with a limit run
    ALL_CORES_REPS=1           # runs of the limit on one core, then on every core at once
    PEER_REPS=${PEER_REPS:-$REPS} # runs of decode-to-disk and of ffmpegfs's clients
    CLIENT_REPS=1              # runs of each client (sox, ffprobe, Python) per system
    READS=10                   # cold random reads per file (ours and disk/tmpfs files)
    FF_READS=3                 # cold random reads per file through ffmpegfs
    WINDOWS=10                 # 1-s windows of the Python client
    LS_FOLDERS=5 LS_PER=10     # ls -lR archive: folders x recordings
    SEED_S=2                   # length of the ls -lR seed recording
    MULTI_S=10                 # seconds of audio each of the 4 parallel readers reads
    DROP=${DROP:-0}
else
    MODE=full
    MONO_S=7200 STEREO_S=3600
    REPS=${REPS:-5}
    # The ratio to the limit is the noisiest figure (the machine's speed drifts between
    # a limit run and its cat run): more pairs for a steadier median.
    SEQ_REPS=$((2 * REPS - 1))
    ALL_CORES_REPS=3
    PEER_REPS=${PEER_REPS:-3}
    CLIENT_REPS=$REPS
    READS=200
    # Each cold ffmpegfs read transcodes from the start of the file up to its offset
    # (seconds each); fewer reads keep the run near 25 minutes. Said in the report.
    FF_READS=10
    WINDOWS=10
    LS_FOLDERS=20 LS_PER=50
    SEED_S=10
    MULTI_S=900
    DROP=${DROP:-1}
fi
BITRATE_K=64                   # per channel, for opusenc and zarr-wavfs alike
CACHE_SIZE=256MiB              # our daemon's --cache-size (RSS target: this + 64 MiB)
SEED=5                         # random offsets and windows
KINDS=(mono stereo)
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive number"
[[ $PEER_REPS =~ ^[1-9][0-9]*$ ]] || die "--peer-reps must be a positive number"

# --- tools -------------------------------------------------------------------------------
# Debian's ffmpegfs (and the other peers) are installed in full mode if missing.
if [ "$MODE" = full ]; then
    want=()
    have ffmpegfs || want+=(ffmpegfs)
    have opusdec || want+=(opus-tools)
    have ffmpeg || want+=(ffmpeg)
    have sox || want+=(sox)
    have perf || want+=(linux-perf)
    if [ ${#want[@]} -gt 0 ]; then
        log "installing ${want[*]} with apt"
        if [ "$(id -u)" -eq 0 ] && have apt-get; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >&2 ||
                { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >&2; } ||
                note "apt-get install ${want[*]} failed"
        else
            note "not root or no apt-get: cannot install ${want[*]}"
        fi
    fi
fi
for t in fusermount3 mountpoint opusenc python3; do have "$t" || die "$t is required (scripts/setup.sh installs it)"; done
[ -e /dev/fuse ] || die "/dev/fuse is missing"
"$PY" -c 'import numpy, scipy' 2>/dev/null || die "python3 needs numpy and scipy (scripts/setup.sh installs them)"
HAVE_SF=1; "$PY" -c 'import soundfile' 2>/dev/null || { HAVE_SF=0; note "python3 soundfile missing: Python window client skipped"; }
PEERS=()                       # FUSE peers
if have ffmpegfs; then PEERS+=(ffmpegfs); else note "ffmpegfs not installed: ffmpegfs skipped"; fi
DECODERS=()                    # decode-to-disk peers
if have opusdec; then DECODERS+=(opusdec); else note "opusdec not installed: opusdec skipped"; fi
if have ffmpeg; then DECODERS+=(ffmpeg); else note "ffmpeg not installed: ffmpeg decode-to-disk skipped"; fi
have sox || note "sox not installed: sox client skipped"
have ffprobe || note "ffprobe not installed: ffprobe client skipped"
PIN=(taskset -c 0)
if ! have taskset; then PIN=(); note "taskset missing: the single-core decode limit runs unpinned"; fi
NPROC=$(nproc)

# --- binary --------------------------------------------------------------------------------
if [ -z "$BIN" ]; then
    log "building the release binary (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) >&2
    BIN=$ROOT/target/release/zarr-wavfs
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
# The tree as the run starts (edits made while it runs do not show as "dirty").
GIT_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'no git')
[ -x "$BIN" ] || die "no executable at $BIN"

# --- work directories ------------------------------------------------------------------------
# WORK keeps the encoded material between full runs (it is deterministic); RUN holds
# everything of this run and is removed at the end (unless --keep).
work_dir bench "$ROOT/target/bench-work"
MAT=$WORK/material RUN=$WORK/run MNTS=$WORK/run/mnt
if [ -z "$OUT" ]; then
    if [ "$MODE" = quick ]; then OUT=$(mktemp "${TMPDIR:-/tmp}/zarr-wavfs-bench.XXXXXX.md"); else OUT=$ROOT/docs/BENCHMARKS.md; fi
fi
SHM_BASE=/dev/shm; [ -d "$SHM_BASE" ] && [ -w "$SHM_BASE" ] || SHM_BASE=${TMPDIR:-/tmp}
SHM=""

# Every daemon this script starts: mountpoint -> pid (for the cleanup and for RSS).
declare -A PID_OF=() PATTERN_OF=()
SAMPLER=""                     # pid of the load sampler
REMOTE_PID=""                  # pid of scripts/bench/remote.sh while it runs

cleanup() {
    local rc=$? m
    set +e
    trap - EXIT INT TERM
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
    [ -n "$REMOTE_PID" ] && kill_wait "$REMOTE_PID" 60
    for m in "${!PID_OF[@]}"; do stop_daemon "$m" "${PID_OF[$m]}" 5; done
    [ -n "$SHM" ] && rm -rf "$SHM"
    if [ "$TEMP_WORK" = 1 ]; then rm -rf "$WORK"; elif [ "$KEEP" = 0 ]; then rm -rf "$RUN"; fi
    [ "$rc" -ne 0 ] && log "failed (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$RUN"
mkdir -p "$MAT" "$RUN" "$MNTS" "$RUN/logs" "$RUN/bin"
# The run uses a copy of the binary: a rebuild during the run cannot mix two versions.
BIN_SOURCE=$BIN
cp "$BIN" "$RUN/bin/zarr-wavfs"
BIN=$RUN/bin/zarr-wavfs
SHM=$(mktemp -d "$SHM_BASE/zarr-wavfs-bench.XXXXXX")
RESULTS=$RUN/results.tsv META=$RUN/meta.tsv
: >"$RESULTS"; : >"$META"

# perf profiles one cold sequential read of each recording (scripts/bench/profile.py).
PERF=0
if have perf && perf record -q -e cpu-clock -o "$RUN/perf-check.data" -- true >/dev/null 2>&1; then
    PERF=1
else
    note "perf missing or not permitted: no profile of a cold sequential read"
fi
rm -f "$RUN/perf-check.data"

# How busy the machine is with other work (common.sh); the report warns when other
# work competed with the benchmark.
sample_load >"$RUN/load.tsv" 2>/dev/null &
SAMPLER=$!

# --- recording results ----------------------------------------------------------------------
# results.tsv: one line per run or per read (rec, timed: common.sh); scripts/bench/report.py
# turns it and meta.tsv into the report.
HZ=$(getconf CLK_TCK)
# cpu_ticks PID: the machine's CPU time by state (/proc/stat: user nice system idle
# iowait irq softirq steal), then the user and system time of process PID, in ticks.
cpu_ticks() {
    local cpu
    read -r -a cpu </proc/stat
    echo "${cpu[*]:1:8} $(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f12,13)"
}
# cpu_budget KIND BEFORE AFTER: where the machine's CPU time went between two
# cpu_ticks of our daemon, in core-seconds: its user and system time, the rest of the
# busy time (the client, anything else), idle, I/O wait and steal.
cpu_budget() {
    awk -v hz="$HZ" -v a="$2" -v b="$3" -v k="$1" 'BEGIN {
        n = split(a, p, " "); split(b, q, " ")
        for (i = 1; i <= n; i++) d[i] = (q[i] - p[i]) / hz
        busy = d[1] + d[2] + d[3] + d[6] + d[7]
        printf "cpu_s/daemon_user/%s\t%.2f\ncpu_s/daemon_sys/%s\t%.2f\n", k, d[9], k, d[10]
        printf "cpu_s/rest/%s\t%.2f\ncpu_s/idle/%s\t%.2f\n", k, busy - d[9] - d[10], k, d[4]
        printf "cpu_s/iowait/%s\t%.2f\ncpu_s/steal/%s\t%.2f\n", k, d[5], k, d[8] }' >>"$RESULTS"
}

check_drop_caches

# --- mounts ------------------------------------------------------------------------------------
# A mount is named SYSTEM-DATASET (ours-main, ffmpegfs-ls, ...); SOURCE_OF gives what it
# serves. Daemons run in the foreground (-f) as children of this script, so their pid is
# known exactly; they exit when unmounted.
declare -A SOURCE_OF=()

unmount() { # NAME: records the daemon's peak RSS (and ffmpegfs's cache size) first
    local name=$1 m=$MNTS/$1 pid sys=${1%%-*}
    pid=${PID_OF[$m]:-}
    [ -n "$pid" ] || return 0
    rec "rss_kib/$sys/${PATTERN_OF[$m]}" "$(vmhwm_kib "$pid")"
    if [ "$sys" = ffmpegfs ]; then
        rec "cache_bytes/$sys/${PATTERN_OF[$m]}" "$(du -sb "$RUN/cache-$name" 2>/dev/null | cut -f1)"
    fi
    stop_daemon "$m" "$pid"
    unset "PID_OF[$m]" "PATTERN_OF[$m]"
}

# remount NAME PATTERN: unmount if mounted, then a fresh mount (ffmpegfs: empty cache).
remount() {
    local name=$1 m=$MNTS/$1 src=${SOURCE_OF[$1]}
    unmount "$name"
    mkdir -p "$m"
    case $name in
        ours-*)
            "$BIN" mount "$src" "$m" -f --cache-size "$CACHE_SIZE" --log "$RUN/logs/$name.log" \
                >>"$RUN/logs/$name.stderr" 2>&1 &
            ;;
        ffmpegfs-*)
            rm -rf "$RUN/cache-$name"
            ffmpegfs -f --desttype=wav --audiosamplerate=48K --cachepath="$RUN/cache-$name" \
                --logfile="$RUN/logs/$name.log" "$src" "$m" >>"$RUN/logs/$name.stderr" 2>&1 &
            ;;
        *) die "unknown mount $name" ;;
    esac
    PID_OF[$m]=$!
    PATTERN_OF[$m]=$2
    wait_mounted "$m" "${PID_OF[$m]}" || die "mount $name failed; see $RUN/logs"
}

# Where SYSTEM serves recording KIND, and which files are behind it.
path_of() { # SYSTEM KIND
    case $1 in
        ours) echo "$MNTS/ours-main/$2.wav" ;;
        ffmpegfs) echo "$MNTS/ffmpegfs-main/$2.opus.wav" ;;
        opusdec | ffmpeg) echo "$RUN/decoded-$1/$2.wav" ;;
        tmpfs) echo "$SHM/$2.wav" ;;
    esac
}
backing_of() { # SYSTEM KIND
    case $1 in
        ours) echo "$ARCH/$2" ;;
        ffmpegfs) echo "$SRC/$2.opus" ;;
        *) path_of "$1" "$2" ;;
    esac
}
# cold SYSTEM KIND PATTERN: fresh mount (FUSE systems) and the page cache dropped.
cold() {
    case $1 in
        ours | ffmpegfs) remount "$1-main" "$3:$2" ;;
    esac
    cold_cache "$(backing_of "$1" "$2")"
}

# ==============================================================================================
# 1. Material: deterministic, encoded once; the same .opus for every system.
# ==============================================================================================
log "mode $MODE: work dir $WORK, report $OUT"
meta mode "$MODE"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
declare -A SECS_OF=([mono]=$MONO_S [stereo]=$STEREO_S [seed]=$SEED_S)
declare -A CH_OF=([mono]=1 [stereo]=2 [seed]=1)
todo=() gen_args=()
for name in mono stereo seed; do
    if [ -f "$MAT/$name.opus" ] && [ "$(cat "$MAT/$name.key" 2>/dev/null)" = "$(material_key "${SECS_OF[$name]}" "${CH_OF[$name]}")" ]; then
        log "material $name: reusing $MAT/$name.opus"
    else
        todo+=("$name")
        gen_args+=("${SECS_OF[$name]}" "${CH_OF[$name]}" "$MAT/$name.wav")
    fi
done
if [ ${#todo[@]} -gt 0 ]; then
    # One Python process writes the WAVs (scipy's import is slow), then opusenc encodes
    # them in parallel.
    log "material ${todo[*]}: generating (${gen_args[*]})"
    t0=$EPOCHREALTIME
    "$PY" "$HELPERS/material.py" "${gen_args[@]}"
    log "material ${todo[*]}: encoding with opusenc at $BITRATE_K kbit/s per channel"
    pids=()
    for name in "${todo[@]}"; do
        opusenc --quiet --bitrate $((BITRATE_K * CH_OF[$name])) "$MAT/$name.wav" "$MAT/$name.opus.tmp" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "opusenc failed"; done
    for name in "${todo[@]}"; do
        mv "$MAT/$name.opus.tmp" "$MAT/$name.opus"
        rm -f "$MAT/$name.wav"
        material_key "${SECS_OF[$name]}" "${CH_OF[$name]}" >"$MAT/$name.key"
    done
    rec "material_s/-/-" "$(elapsed "$t0" "$EPOCHREALTIME")"
fi

# ==============================================================================================
# 2. Archives and peer directories
# ==============================================================================================
# same_stream FILE ARRAY: the Zarr byte array (chunks c/0, c/1, ...) holds FILE exactly.
same_stream() {
    local n chunks=()
    n=$(stat -c %s "$1")
    mapfile -t chunks < <(find "$2/c" -type f -printf '%f\n' | sort -n)
    [ "$(tr -d ' \n' <"$2/zarr.json" | grep -o '"shape":\[[0-9]*' | grep -o '[0-9]*$')" = "$n" ] || return 1
    cmp -s "$1" <(for c in "${chunks[@]}"; do cat "$2/c/$c"; done | head -c "$n")
}

SRC=$RUN/src ARCH=$RUN/archive
mkdir -p "$SRC"
for k in "${KINDS[@]}"; do
    ln "$MAT/$k.opus" "$SRC/$k.opus" 2>/dev/null || cp "$MAT/$k.opus" "$SRC/$k.opus"
    log "import $k"
    timed "import_s/ours/$k" "$BIN" import "$ARCH" "$SRC/$k.opus" --bitrate "${BITRATE_K}k" >>"$RUN/logs/import.log" 2>&1
    if same_stream "$SRC/$k.opus" "$ARCH/$k/stream"; then
        rec "stream_identical/ours/$k" 1
    else
        rec "stream_identical/ours/$k" 0
        note "the archive's stream of $k differs from $k.opus"
    fi
    rec "index_bytes/ours/$k" "$(du -sb "$ARCH/$k/index" | cut -f1)"
    rec "ckpt_bytes/ours/$k" "$(du -sb "$ARCH/$k/checkpoints" | cut -f1)"
    # the default spacing as stored (in 48 kHz stream samples)
    meta ckpt_interval_s "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["attributes"]["zarr_wavfs"]["interval"] / 48000)' "$ARCH/$k/checkpoints/zarr.json")"
    rec "opus_bytes/-/$k" "$(stat -c %s "$SRC/$k.opus")"
done
ARCH_BYTES_BEFORE=$(du -sb "$ARCH" | cut -f1)
SOURCE_OF[ours-main]=$ARCH SOURCE_OF[ffmpegfs-main]=$SRC

# 4 different recordings for the parallel readers: hard-linked copies of the mono one.
ARCH_MULTI=$RUN/archive-multi SRC_MULTI=$RUN/src-multi
mkdir -p "$ARCH_MULTI" "$SRC_MULTI"
cp "$ARCH/zarr.json" "$ARCH_MULTI/"
for i in 1 2 3 4; do
    cp -al "$ARCH/mono" "$ARCH_MULTI/r$i"
    ln "$SRC/mono.opus" "$SRC_MULTI/r$i.opus"
done
SOURCE_OF[ours-multi]=$ARCH_MULTI SOURCE_OF[ffmpegfs-multi]=$SRC_MULTI

# ls -lR: LS_FOLDERS x LS_PER recordings, hard-linked copies of one short import
# (as tests/mount.rs does); the same tree of .opus files for ffmpegfs and as a plain
# directory (the limit).
ARCH_LS=$RUN/archive-ls SRC_LS=$RUN/src-ls
"$BIN" import "$ARCH_LS" "$MAT/seed.opus" --into f00 >>"$RUN/logs/import.log" 2>&1
for ((f = 0; f < LS_FOLDERS; f++)); do
    fd=$(printf 'f%02d' "$f")
    mkdir -p "$ARCH_LS/$fd" "$SRC_LS/$fd"
    cp "$ARCH_LS/f00/zarr.json" "$ARCH_LS/$fd/zarr.json" 2>/dev/null || true
    for ((r = 0; r < LS_PER; r++)); do
        cp -al "$ARCH_LS/f00/seed" "$ARCH_LS/$fd/$(printf 'r%03d' "$r")"
        ln "$MAT/seed.opus" "$SRC_LS/$fd/$(printf 'r%03d' "$r").opus"
    done
done
rm -rf "$ARCH_LS/f00/seed"
SOURCE_OF[ours-ls]=$ARCH_LS SOURCE_OF[ffmpegfs-ls]=$SRC_LS
LS_N=$((LS_FOLDERS * LS_PER))

# Exact sizes and durations, from the archive.
for k in "${KINDS[@]}"; do
    info=$("$BIN" info "$ARCH" "$k")
    rec "wav_bytes/-/$k" "$(awk '/^WAV size served:/ { print $4 }' <<<"$info")"
    rec "duration_s/-/$k" "$(awk -F'[()]' '/^duration:/ { split($2, a, " "); print a[1] }' <<<"$info")"
    meta "libopus" "$(awk -F': *' '/^checkpoint decoder:/ { print $2 }' <<<"$info")"
done
wav_bytes() { awk -F'\t' -v k="wav_bytes/-/$1" '$1 == k { print $2 }' "$RESULTS"; }

# ==============================================================================================
# 3. The FUSE + copy ceiling and decode-to-disk (the decode limit runs next to our cold
#    sequential reads, below)
# ==============================================================================================
for k in "${KINDS[@]}"; do
    # The WAV we serve, from tmpfs: the FUSE + copy ceiling.
    "$BIN" extract "$ARCH" "$k" -o "$SHM/$k.wav" 2>>"$RUN/logs/extract.log"
    for ((r = 0; r < REPS; r++)); do timed "seq_s/tmpfs/$k" cat_null "$SHM/$k.wav"; done
done

limit() { # KIND [MEASURE]: one pinned run of the limit: a libopus decoder straight
    # through the stream in memory, no checkpoints, spans, cache or FUSE (it prints its
    # seconds), recorded as MEASURE (default decode1_s)
    local secs key=${2:-decode1_s}/limit/$1
    if secs=$("${PIN[@]}" "$BIN" decode-limit "$ARCH" "$1" 2>>"$RUN/logs/limit.log"); then
        rec "$key" "$secs"
    else
        log "failed: limit of $1"; rec "failed/$key" 1
    fi
}

all_cores_limit() { # KIND: the limit alone on one core, then one pinned limit run on
    # every core at once: how much slower each core decodes when all of them do
    local k=$1 i r pids=()
    [ ${#PIN[@]} -gt 0 ] || return 0
    log "limit of $k: one core alone, then $NPROC cores at once x$ALL_CORES_REPS"
    for ((r = 0; r < ALL_CORES_REPS; r++)); do
        limit "$k" decode_alone_s
        pids=()
        for ((i = 0; i < NPROC; i++)); do
            taskset -c "$i" "$BIN" decode-limit "$ARCH" "$k" >"$RUN/all-cores-$i" 2>>"$RUN/logs/limit.log" &
            pids+=($!)
        done
        for ((i = 0; i < NPROC; i++)); do
            if wait "${pids[$i]}"; then
                rec "decode_all_s/limit/$k" "$(cat "$RUN/all-cores-$i")"
            else
                rec "failed/decode_all_s/limit/$k" 1
            fi
        done
    done
}

profile_seq() { # KIND FILE: perf profiles of one limit run and of one cold cat of FILE
    local k=$1 f=$2 pid
    log "ours $k: perf profile of the limit and of one cold sequential cat"
    perf record -q -g --kernel-callchains -e cpu-clock -F 999 -o "$RUN/perf-limit-$k.data" \
        -- "${PIN[@]}" "$BIN" decode-limit "$ARCH" "$k" >/dev/null 2>>"$RUN/logs/perf.log" ||
        { note "perf record of the $k limit failed (see logs/perf.log)"; return 0; }
    cold ours "$k" seq
    pid=${PID_OF[$MNTS/ours-main]}
    perf record -q -a -g --kernel-callchains -e cpu-clock -F 999 -o "$RUN/perf-seq-$k.data" \
        -- cat "$f" >/dev/null 2>>"$RUN/logs/perf.log" ||
        { note "perf record of a $k cat failed (see logs/perf.log)"; return 0; }
    "$PY" "$HELPERS/profile.py" "$RUN/perf-limit-$k.data" "$RUN/perf-seq-$k.data" "$pid" "$k" \
        >>"$RESULTS" 2>>"$RUN/logs/perf.log" || note "profile.py failed on the $k profiles (see logs/perf.log)"
}

decode() { # DECODER IN OUT: decode to a WAV on disk, fsync'd
    case $1 in
        opusdec) opusdec --quiet "$2" "$3" 2>>"$RUN/logs/decode.log" ;;
        ffmpeg) ffmpeg -nostdin -v error -y -i "$2" -c:a pcm_s16le "$3" 2>>"$RUN/logs/decode.log" ;;
    esac && sync "$3"
}
for d in "${DECODERS[@]}"; do
    mkdir -p "$RUN/decoded-$d"
    for k in "${KINDS[@]}"; do
        log "decode to disk: $d $k"
        out=$(path_of "$d" "$k")
        for ((r = 0; r < PEER_REPS; r++)); do
            rm -f "$out"
            cold_cache "$SRC/$k.opus"
            timed "decode_s/$d/$k" decode "$d" "$SRC/$k.opus" "$out"
        done
        rec "disk_bytes/$d/$k" "$(stat -c %s "$out")"
    done
done

# ==============================================================================================
# 4. Per-file patterns on every system
# ==============================================================================================
SYSTEMS=(ours "${PEERS[@]}" "${DECODERS[@]}" tmpfs)
fuse_system() { [ "$1" = ours ] || [ "$1" = ffmpegfs ]; }

for k in "${KINDS[@]}"; do
    size=$(wav_bytes "$k")
    "${PROBE[@]}" offsets "$size" "$READS" "$SEED" >"$RUN/offsets-$k"
    for s in "${SYSTEMS[@]}"; do
        f=$(path_of "$s" "$k")

        # -- cold sequential read, and completeness ---------------------------------------
        n=$REPS
        [ "$s" = ours ] && n=$SEQ_REPS
        log "$s $k: cold sequential cat x$n"
        for ((r = 0; r < n; r++)); do
            # Ours: the limit just before each run (${PIN[*]:-unpinned} zarr-wavfs
            # decode-limit). The machine's speed drifts by ±10 % over minutes; a pair
            # sees the same drift, and the report takes the median of the pairs' ratios.
            [ "$s" = ours ] && limit "$k"
            cold "$s" "$k" seq
            if [ "$s" = ours ]; then
                before=$(cpu_ticks "${PID_OF[$MNTS/ours-main]}")
                timed "seq_s/$s/$k" cat_null "$f"
                cpu_budget "$k" "$before" "$(cpu_ticks "${PID_OF[$MNTS/ours-main]}")"
            else
                timed "seq_s/$s/$k" cat_null "$f"
            fi
            if [ "$s" = ffmpegfs ]; then
                rec "disk_bytes/ffmpegfs/$k" "$(du -sb "$RUN/cache-ffmpegfs-main" | cut -f1)"
            fi
        done
        if [ "$s" = ours ]; then
            all_cores_limit "$k"
            if [ "$PERF" = 1 ]; then profile_seq "$k" "$f"; fi
        fi
        cold "$s" "$k" seq
        rec "st_size/$s/$k" "$(stat -c %s "$f")"
        # Through a pipe: `wc -c <FILE` would take the size from fstat, not read it.
        # shellcheck disable=SC2002
        rec "served/$s/$k" "$(cat "$f" | wc -c)"
        rec "st_size_after/$s/$k" "$(stat -c %s "$f")"

        # -- time to first byte --------------------------------------------------------------
        log "$s $k: time to first byte x$REPS"
        for ((r = 0; r < REPS; r++)); do
            cold "$s" "$k" ttfb
            rec "ttfb_s/$s/$k" "$("${PROBE[@]}" ttfb "$f" | cut -d' ' -f1)"
        done

        # -- cold random 4 KiB reads -----------------------------------------------------------
        n=$READS
        [ "$s" = ffmpegfs ] && n=$FF_READS
        log "$s $k: $n cold random 4 KiB reads"
        if fuse_system "$s"; then
            # A fresh mount and evicted backing files before each read.
            # (The loop runs in this shell, not a pipeline: remount tracks the daemons.)
            while read -r off; do
                remount "$s-main" "random:$k"
                "${PROBE[@]}" pread "$f" "$off" --evict "$(backing_of "$s" "$k")"
            done < <(head -n "$n" "$RUN/offsets-$k") >"$RUN/cold-$s-$k"
        else
            "${PROBE[@]}" reads "$f" "$RUN/offsets-$k" --cold >"$RUN/cold-$s-$k"
        fi
        while read -r o t total b; do
            rec "cold_open_s/$s/$k" "$o"
            rec "cold_read_s/$s/$k" "$t"
            rec "cold_total_s/$s/$k" "$total"
            [ "$b" = 4096 ] || rec "short_reads/$s/$k" 1
        done <"$RUN/cold-$s-$k"
        # Warm: the same offsets again on one mount, after one untimed pass.
        head -n "$n" "$RUN/offsets-$k" >"$RUN/offsets-$k-$s"
        cold "$s" "$k" warm
        "${PROBE[@]}" reads "$f" "$RUN/offsets-$k-$s" --warm |
            while read -r _ t _ _; do rec "warm_read_s/$s/$k" "$t"; done

        # -- clients ---------------------------------------------------------------------------
        reps=$CLIENT_REPS
        if [ "$s" = ffmpegfs ] && [ "$PEER_REPS" -lt "$reps" ]; then reps=$PEER_REPS; fi
        log "$s $k: clients (sox stat, ffprobe, Python windows) x$reps"
        for ((r = 0; r < reps; r++)); do
            if have sox; then
                cold "$s" "$k" sox
                timed "sox_s/$s/$k" sox "$f" -n stat 2>/dev/null
            fi
            if have ffprobe; then
                cold "$s" "$k" ffprobe
                timed "ffprobe_s/$s/$k" ffprobe -v error -show_format -show_streams "$f" >/dev/null
            fi
            if [ "$HAVE_SF" = 1 ]; then
                cold "$s" "$k" windows
                if t=$("$PY" "$HELPERS/probe.py" windows "$f" "$WINDOWS" "$((SEED + r))"); then
                    rec "windows_s/$s/$k" "$t"
                else
                    rec "failed/windows_s/$s/$k" 1
                fi
            fi
        done
        if fuse_system "$s"; then unmount "$s-main"; fi
    done
done

# ==============================================================================================
# 5. Four readers of four different recordings vs one reader
# ==============================================================================================
MULTI_BYTES=$((44 + MULTI_S * 48000 * 2))
read_head() { head -c "$MULTI_BYTES" "$1" >/dev/null; }
read_four() {
    local pids=() i rc=0
    for i in 1 2 3 4; do read_head "$1/r$i$2" & pids+=($!); done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    return "$rc"
}
for s in ours "${PEERS[@]}"; do
    ext=.wav
    [ "$s" = ffmpegfs ] && ext=.opus.wav
    log "$s: 1 reader vs 4 readers of 4 recordings ($MULTI_S s of audio each) x$REPS"
    for ((r = 0; r < REPS; r++)); do
        remount "$s-multi" multi
        cold_cache "${SOURCE_OF[$s-multi]}"
        timed "multi1_s/$s/-" read_head "$MNTS/$s-multi/r1$ext"
        remount "$s-multi" multi
        cold_cache "${SOURCE_OF[$s-multi]}"
        timed "multi4_s/$s/-" read_four "$MNTS/$s-multi" "$ext"
    done
    unmount "$s-multi"
done
rec "multi_bytes/-/-" "$MULTI_BYTES"

# ==============================================================================================
# 6. ls -lR of a fresh mount of an archive with many recordings
# ==============================================================================================
ls_count() { grep -c '\.wav$' "$1" || true; }
for s in ours "${PEERS[@]}" dir; do
    log "$s: ls -lR of $LS_N recordings in $LS_FOLDERS folders x$REPS"
    for ((r = 0; r < REPS; r++)); do
        if [ "$s" = dir ]; then
            target=$SRC_LS
            cold_cache "$SRC_LS"
        else
            remount "$s-ls" ls
            target=$MNTS/$s-ls
            cold_cache "${SOURCE_OF[$s-ls]}"
        fi
        timed "ls_s/$s/-" ls -lR "$target" >"$RUN/ls-$s.out"
    done
    if [ "$s" = dir ]; then
        rec "ls_entries/$s/-" "$(grep -c '\.opus$' "$RUN/ls-$s.out" || true)"
    else
        rec "ls_entries/$s/-" "$(ls_count "$RUN/ls-$s.out")"
        unmount "$s-ls"
    fi
done

# Our daemon only reads: the archive must not have grown.
rec "disk_bytes/ours/-" $(($(du -sb "$ARCH" | cut -f1) - ARCH_BYTES_BEFORE))

# ==============================================================================================
# 6b. Remote archives (S3): scripts/bench/remote.sh, on material of its own, writes its
#     own section of the report (spliced in before "## Commands")
# ==============================================================================================
REMOTE_MD=$RUN/remote.md
remote=(--bin "$BIN" --out "$REMOTE_MD" --work "$WORK/remote")
if [ "$MODE" = quick ]; then remote+=(--quick); fi
if [ "$DROP" = 1 ]; then remote+=(--drop-caches); else remote+=(--no-drop-caches); fi
if [ "$KEEP" = 1 ]; then remote+=(--keep); fi
log "remote archives: scripts/bench/remote.sh ${remote[*]}"
# In the background, so that a signal to this script reaches its trap (and, through
# cleanup, remote.sh's own) at once, not after remote.sh has finished.
bash "$HELPERS/remote.sh" "${remote[@]}" &
REMOTE_PID=$!
if ! wait "$REMOTE_PID"; then
    note "scripts/bench/remote.sh failed (its log is above): no remote section"
    rm -f "$REMOTE_MD"
fi
REMOTE_PID=""

# ==============================================================================================
# 7. Report
# ==============================================================================================
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta cpu "$(lscpu | awk -F': *' '/^Model name/ { print $2; exit }')"
meta cores "$NPROC"
meta ram "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
meta kernel "$(uname -sr)"
meta os "$(awk -F= '/^PRETTY_NAME=/ { gsub(/"/, "", $2); print $2 }' /etc/os-release 2>/dev/null)"
meta zarr_wavfs "$("$BIN" --version) ($GIT_REV)"
meta bin "$BIN_SOURCE (sha256 $(sha256sum "$BIN" | cut -c1-16))"
have ffmpegfs && meta ffmpegfs "$(ffmpegfs --version 2>&1 | grep -m1 FFMPEGFS)"
have ffmpeg && meta ffmpeg "$(ffmpeg -version | head -1)"
meta opusenc "$(opusenc --version 2>&1 | head -1)"
have opusdec && meta opusdec "$(opusdec --version 2>&1 | head -1)"
have sox && meta sox "$(sox --version 2>&1 | head -1)"
meta python "$("$PY" --version 2>&1)"
meta fuse "$(fusermount3 --version 2>&1 | head -1)"
meta drop_caches "$DROP"
meta reps "$REPS"
meta seq_reps "$SEQ_REPS"
meta all_cores_reps "$ALL_CORES_REPS"
meta perf "$PERF"
meta peer_reps "$PEER_REPS"
meta client_reps "$CLIENT_REPS"
meta reads "$READS"
meta ff_reads "$FF_READS"
meta windows "$WINDOWS"
meta ls_folders "$LS_FOLDERS"
meta ls_per "$LS_PER"
meta multi_s "$MULTI_S"
meta bitrate_k "$BITRATE_K"
meta cache_size "$CACHE_SIZE"
meta pin "${PIN[*]:-}"
meta peers "${PEERS[*]:-}"
meta decoders "${DECODERS[*]:-}"
for n in "${NOTES[@]}"; do meta note "$n"; done

stop_sampler "$RUN/load.tsv"

mkdir -p "$(dirname "$OUT")"
"$PY" "$HELPERS/report.py" "$RESULTS" "$META" >"$OUT.tmp"
if [ -s "$REMOTE_MD" ]; then
    awk -v sec="$REMOTE_MD" '/^## Commands$/ && !done { while ((getline l <sec) > 0) print l; done = 1 }
        { print } END { if (!done) while ((getline l <sec) > 0) print l }' "$OUT.tmp" >"$OUT.tmp2"
    mv "$OUT.tmp2" "$OUT.tmp"
fi
mv "$OUT.tmp" "$OUT"
log "report written to $OUT"
[ "$KEEP" = 1 ] && log "results kept in $RUN"
exit 0
