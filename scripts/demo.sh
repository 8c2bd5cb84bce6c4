#!/usr/bin/env bash
# The main job on the bundled example (testdata/): installs what is needed, builds the
# release binary, imports the example recordings into a fresh archive, lists it, shows
# a recording, mounts it and reads the WAV files through the mount, serves them over HTTP
# and reads them with curl and ffprobe, extracts a whole
# recording and a time range as WAV, checks them with soxi, reads the archive with
# zarr-python, and verifies it. Exits non-zero on any failure.
#
# Set KEEP=1 to keep the temporary archive and extracted WAVs (the path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }
run() {
    printf '$ %s\n' "$*"
    "$@"
}
expect() { # expect WHAT ACTUAL WANTED
    if [ "$2" != "$3" ]; then
        echo "demo: FAIL: $1 is $2, expected $3" >&2
        exit 1
    fi
    echo "ok: $1 = $2"
}

step "setup"
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

step "build"
run cargo build --release
BIN="$PWD/target/release/zarr-wavfs"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zarr-wavfs-demo.XXXXXX")
cleanup() {
    if grep -q " $WORK/mnt " /proc/self/mounts; then fusermount3 -u -z "$WORK/mnt"; fi
    if [ -n "${SERVE_PID:-}" ]; then kill "$SERVE_PID" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
ARCH="$WORK/archive"
REC=demo/20250601_040000

step "import"
# WAV files are stored losslessly (FLAC, the default); the Ogg Opus file is kept as it is.
run "$BIN" import "$ARCH" testdata/20250601_040000.wav testdata/stereo_music.wav testdata/sweep.opus --into demo
# The same recording as Opus: the example is a few seconds long, and a 1 s checkpoint
# interval gives it stored checkpoints, so extract and verify exercise checkpoint restores.
run "$BIN" import "$ARCH" testdata/20250601_040000.wav --into lossy --codec opus --checkpoint-interval 1

step "ls"
run "$BIN" ls "$ARCH"

step "info"
run "$BIN" info "$ARCH" "$REC"
run "$BIN" info "$ARCH" lossy/20250601_040000

step "mount (FUSE): every recording is a WAV file"
MNT="$WORK/mnt"
mkdir -p "$MNT"
run "$BIN" mount "$ARCH" "$MNT" --log "$WORK/mount.log"
run ls -lR "$MNT"
run soxi "$MNT/demo/stereo_music.wav"
expect "mounted stereo_music.wav samples" "$(soxi -s "$MNT/demo/stereo_music.wav")" 176400
printf '$ %s\n' "cmp $MNT/$REC.wav <($BIN extract $ARCH $REC -o -)"
cmp "$MNT/$REC.wav" <("$BIN" extract "$ARCH" "$REC" -o -)
echo "ok: the mounted file equals extract's output byte for byte"
printf '$ %s\n' "cmp <(sox testdata/20250601_040000.wav -t raw -) <(sox $MNT/$REC.wav -t raw -)"
cmp <(sox testdata/20250601_040000.wav -t raw -) <(sox "$MNT/$REC.wav" -t raw -)
echo "ok: lossless: the mounted file's samples equal the imported WAV's"
run md5sum "$MNT/demo/sweep.wav"
run python3 -c 'import sys, wave; w = wave.open(sys.argv[1]); print(w.getparams())' "$MNT/$REC.wav"
run fusermount3 -u "$MNT"

step "serve (HTTP): the same files to any client"
"$BIN" -v serve "$ARCH" --listen 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q '^serving ' "$WORK/serve.out" && break; sleep 0.1; done
URL=$(sed -n 's/^serving \(http:[^ ]*\)\/$/\1/p' "$WORK/serve.out")
[ -n "$URL" ] || { cat "$WORK/serve.log" >&2; echo "demo: FAIL: serve did not start" >&2; exit 1; }
echo "serving on $URL"
run curl -sS -H 'Accept: application/json' "$URL/demo/"
printf '$ %s\n' "cmp <(curl -sS $URL/$REC.wav) <($BIN extract $ARCH $REC -o -)"
cmp <(curl -sS "$URL/$REC.wav") <("$BIN" extract "$ARCH" "$REC" -o -)
echo "ok: the served file equals extract's output byte for byte"
run ffprobe -v error -show_entries format=duration "$URL/demo/stereo_music.wav"
printf '$ %s\n' "curl '$URL/$REC.wav?start=1.5&end=3' vs extract --start 1.5 --end 3"
cmp <(curl -sS "$URL/$REC.wav?start=1.5&end=3") <("$BIN" extract "$ARCH" "$REC" --start 1.5 --end 3 -o -)
echo "ok: a segment URL equals extract of the same span"
expect "spectrogram content type" "$(curl -sS -o /dev/null -w '%{content_type}' "$URL/$REC.png?start=0&end=5")" image/png
kill -TERM "$SERVE_PID"; wait "$SERVE_PID"; SERVE_PID=
echo "(open $URL/ in a browser for the folder page, players and spectrograms)"

step "extract (whole recording)"
run "$BIN" extract "$ARCH" "$REC" -o "$WORK/dawn.wav"
run soxi "$WORK/dawn.wav"
expect "dawn.wav samples" "$(soxi -s "$WORK/dawn.wav")" 288000
expect "dawn.wav rate" "$(soxi -r "$WORK/dawn.wav")" 48000

step "extract (range 1.5 s .. 3 s)"
run "$BIN" extract "$ARCH" "$REC" --start 1.5 --end 00:00:03 -o "$WORK/dawn_1.5-3.wav"
run soxi "$WORK/dawn_1.5-3.wav"
expect "dawn_1.5-3.wav samples" "$(soxi -s "$WORK/dawn_1.5-3.wav")" 72000

step "extract (44.1 kHz stereo, as 24-bit)"
run "$BIN" extract "$ARCH" demo/stereo_music -o "$WORK/stereo_music.wav" --format s24
run soxi "$WORK/stereo_music.wav"
expect "stereo_music.wav samples" "$(soxi -s "$WORK/stereo_music.wav")" 176400
expect "stereo_music.wav rate" "$(soxi -r "$WORK/stereo_music.wav")" 44100
expect "stereo_music.wav channels" "$(soxi -c "$WORK/stereo_music.wav")" 2

step "zarr-python reads the archive"
printf '$ %s\n' "python3 tests/interop/zarr_python_check.py $ARCH lossy/20250601_040000 > $WORK/interop.json"
python3 tests/interop/zarr_python_check.py "$ARCH" lossy/20250601_040000 >"$WORK/interop.json"
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("stream:", d["stream_len"], "bytes, sha256", d["stream_sha256"])
print("index shape:", d["index_shape"], "first row:", d["index_first_row"])
print("checkpoints/states shape:", d.get("checkpoints_states_shape"))' "$WORK/interop.json"

step "verify"
run "$BIN" verify "$ARCH"

step "demo passed"
