#!/usr/bin/env bash
# Compares the three codecs on the same material: stored size (share of the raw samples),
# import speed (x real time, all cores) and cold sequential read through the mount
# (x real time). Prints a Markdown table; run on an otherwise idle machine.
#
#   bash scripts/codecs.sh [SECONDS]      (default 600: ten minutes of each material)
#
# Material: field-recording-like 48 kHz 16-bit mono and stereo (scripts/bench/material.py:
# pink noise at about -30 dBFS with sweeps, speech-like bursts and chirps), and a 384 kHz
# 24-bit mono "bat detector" file (sox: pink noise at -40 dBFS with 40-kHz tone bursts).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
WORK=target/codecs-work
BIN="$PWD/target/release/zarr-wavfs"

cargo build --release --quiet
rm -rf "$WORK"
mkdir -p "$WORK/in" "$WORK/mnt"
cleanup() {
    if grep -q " $PWD/$WORK/mnt " /proc/self/mounts; then fusermount3 -u -z "$WORK/mnt"; fi
}
trap cleanup EXIT

python3 scripts/bench/material.py "$SECS" 1 "$WORK/in/mono48.wav" "$((SECS / 2))" 2 "$WORK/in/stereo48.wav"
BAT=$((SECS / 10))
sox -n -r 384000 -c 1 -b 24 "$WORK/in/noise.wav" synth "$BAT" pinknoise vol 0.01
sox -n -r 384000 -c 1 -b 24 "$WORK/in/tone.wav" synth 0.01 sine 40000 vol 0.3 pad 0 0.49 repeat $((BAT * 2 - 1))
sox -m "$WORK/in/noise.wav" "$WORK/in/tone.wav" -b 24 "$WORK/in/bat384.wav" trim 0 "$BAT"
rm "$WORK/in/noise.wav" "$WORK/in/tone.wav"

secs_of() { soxi -D "$1"; }
raw_bytes() { # frames x channels x bytes per sample of the served (own) format
    local f=$1
    echo "$(soxi -s "$f") * $(soxi -c "$f") * $(soxi -b "$f") / 8" | bc
}
now() { date +%s.%N; }

printf '| material | codec | stored | of raw | import (x real time) | cold cat through the mount (x real time) |\n'
printf '|---|---|---|---|---|---|\n'
for codec in flac pcm opus; do
    ARCH="$WORK/arch-$codec"
    for m in mono48 stereo48 bat384; do
        in="$WORK/in/$m.wav"
        if [ "$codec" = opus ] && [ "$m" = bat384 ]; then
            extra=(--bitrate 64k)
        else
            extra=()
        fi
        t0=$(now)
        "$BIN" import "$ARCH" "$in" --codec "$codec" "${extra[@]}" 2>/dev/null
        t1=$(now)
        stored=$(du -sb "$ARCH/$m" | cut -f1)
        sync
        echo 3 >/proc/sys/vm/drop_caches
        "$BIN" mount "$ARCH" "$WORK/mnt"
        t2=$(now)
        cat "$WORK/mnt/$m.wav" >/dev/null
        t3=$(now)
        fusermount3 -u "$WORK/mnt"
        sleep 0.5
        dur=$(secs_of "$in")
        raw=$(raw_bytes "$in")
        printf '| %s | %s | %s MiB | %.1f%% | %.0f | %.0f |\n' "$m" "$codec" \
            "$(echo "scale=1; $stored / 1048576" | bc)" \
            "$(echo "100 * $stored / $raw" | bc -l)" \
            "$(echo "$dur / ($t1 - $t0)" | bc -l)" \
            "$(echo "$dur / ($t3 - $t2)" | bc -l)"
    done
done
