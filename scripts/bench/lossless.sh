#!/usr/bin/env bash
# The lossless path against libFLAC (issue 20): import WAV -> FLAC, import of a .flac,
# `verify` and a cold sequential `cat` through the mount, each against the `flac`
# command doing the same work on one core, times the cores.
#
#   scripts/bench/lossless.sh [--bin BIN] [--quick] [--seconds S] [--pairs N]
#                             [--out FILE] [--work DIR] [--keep]
#
# Material (deterministic, scripts/bench/material.py): S seconds (full 1200, quick 120)
# of 48 kHz 16-bit mono ("mono") and stereo ("stereo"); "mono24": the mono signal as
# 24 bits (samples x 256 plus uniform noise in the low 8 bits, a 24-bit noise floor);
# "bat384": the mono samples relabelled 384 kHz (S/8 seconds, bat-detector-like rates).
# The reference is libFLAC 1.4 as the `flac` command, one thread, pinned to core 0:
# `flac -5 --no-padding --no-seektable` (so that its file holds only what ours holds
# besides the frames: STREAMINFO and a vendor string) makes ref.flac.
#
# Figures, per material, in --pairs alternating pairs (full 5, quick 3: pair i runs
# ours first for even i, the reference first for odd i, so a linear drift cancels);
# each ratio is the reference's one-core time ÷ (cores × ours) of the same pair, so
# 1 means ours uses every core as well as libFLAC uses one; the median of the pairs is
# reported (issue 20's targets: ≥ 0.85):
#   * import WAV: `BIN import` into a new archive (the WAV warm in the page cache)
#     vs `flac -5` of the same WAV; and the stored stream's size ÷ ref.flac's;
#   * import .flac: `BIN import` of ref.flac (copied, indexed, decoded and checked)
#     vs `flac -t ref.flac`;
#   * verify: `BIN verify` of the archive holding that recording vs `flac -t`;
#   * cold cat: a fresh mount (`BIN mount -f`), the archive's files evicted from the
#     page cache (scripts/bench/probe.py evict), then `cat REC.wav >/dev/null`, vs
#     `flac -d -c ref.flac >/dev/null` (ref.flac warm: the decode alone).
# Nothing is asserted. The Markdown table goes to --out (default stdout), the log to
# stderr. --quick: about 2 minutes on an idle 2-core machine.
#
# Needs: flac, fusermount3 and /dev/fuse, python3 with numpy and scipy, taskset.

# Functions run through traps look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail
export LC_ALL=C

HELPERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HELPERS/../.." && pwd)

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
log() { printf '[lossless %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

COMMAND="scripts/bench/lossless.sh${*:+ $(printf '%q ' "$@")}"
COMMAND=${COMMAND% }
BIN=$ROOT/target/release/zarr-wavfs QUICK=0 SECONDS_=1200 PAIRS=5 OUT="" WORK="" KEEP=0
SET_S=0 SET_P=0
while [ $# -gt 0 ]; do
    case $1 in
        --bin) BIN=${2:?--bin needs a path}; shift ;;
        --quick) QUICK=1 ;;
        --seconds) SECONDS_=${2:?--seconds needs a number}; SET_S=1; shift ;;
        --pairs) PAIRS=${2:?--pairs needs a number}; SET_P=1; shift ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        --work) WORK=${2:?--work needs a directory}; shift ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    [ "$SET_S" = 1 ] || SECONDS_=120
    [ "$SET_P" = 1 ] || PAIRS=3
fi
for t in flac taskset fusermount3 mountpoint python3; do
    command -v "$t" >/dev/null || die "$t is required (scripts/setup.sh installs it)"
done
[ -x "$BIN" ] || die "$BIN is not an executable (cargo build --release)"
CORES=$(nproc)

TEMP_WORK=0
if [ -z "$WORK" ]; then WORK=$(mktemp -d); TEMP_WORK=1; fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
MNT=$WORK/mnt MNT_PID=""
RESULTS=$WORK/results.tsv
mkdir -p "$MNT" "$WORK/logs"
: >"$RESULTS"
cp "$BIN" "$WORK/zarr-wavfs" # a rebuild during the run cannot change it
B=$WORK/zarr-wavfs

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    unmount
    if [ "$KEEP" = 0 ]; then
        if [ "$TEMP_WORK" = 1 ]; then rm -rf "$WORK"; else rm -rf "$WORK"/arch-* "$WORK"/*.flac; fi
    fi
    [ "$rc" -ne 0 ] && log "failed (exit $rc)"
    exit "$rc"
}
unmount() {
    local i
    [ -n "$MNT_PID" ] || return 0
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
    for ((i = 0; i < 3000; i++)); do kill -0 "$MNT_PID" 2>/dev/null || break; sleep 0.01; done
    kill -0 "$MNT_PID" 2>/dev/null && kill "$MNT_PID"
    wait "$MNT_PID" 2>/dev/null || true
    MNT_PID=""
}
mount_fresh() { # ARCH
    local i
    unmount
    "$B" mount "$1" "$MNT" -f --cache-size 256MiB --log "$WORK/logs/mount.log" \
        </dev/null >>"$WORK/logs/mount.stderr" 2>&1 &
    MNT_PID=$!
    for ((i = 0; i < 2000; i++)); do
        mountpoint -q "$MNT" && return 0
        kill -0 "$MNT_PID" 2>/dev/null || die "the daemon exited; see $WORK/logs"
        sleep 0.01
    done
    die "$MNT not mounted after 20 s"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
# timed CMD...: runs CMD (its stdout to /dev/null), prints its wall-clock seconds.
timed() {
    local a b
    a=$(now)
    "$@" >/dev/null 2>>"$WORK/logs/commands.stderr" || { log "failed: $* (see $WORK/logs)"; exit 1; }
    b=$(now)
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", b - a }'
}
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$RESULTS"; } # material figure pair ours ref
ref1() { taskset -c 0 "$@"; }

# --- material ------------------------------------------------------------------------------
log "material: $SECONDS_ s per recording in $WORK"
python3 "$HELPERS/material.py" "$SECONDS_" 1 "$WORK/mono.wav" "$SECONDS_" 2 "$WORK/stereo.wav"
python3 - "$WORK" <<'EOF'
import sys, wave
import numpy as np
work = sys.argv[1]
with wave.open(f"{work}/mono.wav") as w:
    rate, x = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")
rng = np.random.Generator(np.random.PCG64(20))
x24 = x.astype(np.int32) * 256 + rng.integers(-128, 128, len(x), dtype=np.int32)
b = x24.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
for name, width, r, data in [("mono24", 3, rate, b), ("bat384", 2, 384000, x.tobytes())]:
    with wave.open(f"{work}/{name}.wav", "wb") as w:
        w.setnchannels(1); w.setsampwidth(width); w.setframerate(r); w.writeframes(data)
EOF
MATERIALS=(mono stereo mono24 bat384)

# --- runs ----------------------------------------------------------------------------------
for k in "${MATERIALS[@]}"; do
    wav=$WORK/$k.wav ref=$WORK/$k.flac arch=$WORK/arch-$k farch=$WORK/arch-$k-copy
    cat "$wav" >/dev/null
    log "$k: import WAV vs flac -5"
    for ((i = 0; i < PAIRS; i++)); do
        rm -rf "$arch"
        if ((i % 2 == 0)); then
            o=$(timed "$B" import "$arch" "$wav"); r=$(timed ref1 flac -5 -s -f --no-padding --no-seektable -o "$ref" "$wav")
        else
            r=$(timed ref1 flac -5 -s -f --no-padding --no-seektable -o "$ref" "$wav"); o=$(timed "$B" import "$arch" "$wav")
        fi
        rec "$k" import_wav "$i" "$o" "$r"
    done
    stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["attributes"]["zarr_wavfs"]["stream_bytes"])' "$arch/$k/zarr.json")
    rec "$k" size 0 "$stored" "$(stat -c %s "$ref")"
    rec "$k" wav_bytes 0 "$(stat -c %s "$wav")" 0
    log "$k: import .flac, verify vs flac -t"
    for ((i = 0; i < PAIRS; i++)); do
        rm -rf "$farch"
        if ((i % 2 == 0)); then
            o=$(timed "$B" import "$farch" "$ref"); r=$(timed ref1 flac -t -s "$ref")
        else
            r=$(timed ref1 flac -t -s "$ref"); o=$(timed "$B" import "$farch" "$ref")
        fi
        rec "$k" import_flac "$i" "$o" "$r"
        if ((i % 2 == 0)); then
            o=$(timed "$B" verify "$arch"); r=$(timed ref1 flac -t -s "$ref")
        else
            r=$(timed ref1 flac -t -s "$ref"); o=$(timed "$B" verify "$arch")
        fi
        rec "$k" verify "$i" "$o" "$r"
    done
    log "$k: cold cat vs flac -d"
    for ((i = 0; i < PAIRS; i++)); do
        mount_fresh "$arch"
        python3 "$HELPERS/probe.py" evict "$arch"
        if ((i % 2 == 0)); then
            o=$(timed cat "$MNT/$k.wav"); r=$(timed ref1 flac -d -c -s "$ref")
        else
            r=$(timed ref1 flac -d -c -s "$ref"); o=$(timed cat "$MNT/$k.wav")
        fi
        rec "$k" cold_cat "$i" "$o" "$r"
        unmount
    done
done

# --- report --------------------------------------------------------------------------------
# shellcheck disable=SC2016 # the backticks are Markdown
report() {
    python3 - "$RESULTS" "$CORES" <<'EOF'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
cores = int(sys.argv[2])
by = {}
for m, fig, pair, ours, ref in rows:
    by.setdefault(m, {}).setdefault(fig, []).append((float(ours), float(ref)))
names = {
    "import_wav": ("import WAV → FLAC", "flac -5"),
    "import_flac": ("import .flac", "flac -t"),
    "verify": ("verify", "flac -t"),
    "cold_cat": ("cold sequential cat", "flac -d"),
}
def mm(v):
    return f"{st.median(v):.3f} ({min(v):.3f}–{max(v):.3f})"
print(f"| recording | figure | ours, s | libFLAC one core, s | ref ÷ ({cores} × ours), median of pairs (min–max) | ours, MB/s of WAV |")
print("| --- | --- | --: | --: | --: | --: |")
for m, figs in by.items():
    wav = figs["wav_bytes"][0][0]
    for fig, (label, refname) in names.items():
        p = figs[fig]
        ratios = [r / (cores * o) for o, r in p]
        mbs = wav / 1e6 / st.median(o for o, _ in p)
        print(f"| {m} | {label} (vs `{refname}`) | {mm([o for o, _ in p])} | {mm([r for _, r in p])} | "
              f"{st.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) | {mbs:,.0f} |")
    s, r = figs["size"][0]
    print(f"| {m} | stored stream ÷ `flac -5` file | {s:,.0f} B | {r:,.0f} B | size ratio {s / r:.4f} | – |")
EOF
    printf '\n%s pairs per figure; %s cores; %s; binary %s; load average at end %s.\nCommand: `%s`\n' \
        "$PAIRS" "$CORES" "$(flac --version)" "$BIN" "$(cut -d' ' -f1-3 /proc/loadavg)" "$COMMAND"
}
if [ -n "$OUT" ]; then report >"$OUT"; log "report in $OUT"; else report; fi
