#!/usr/bin/env bash
# Remakes the seed corpora in fuzz/corpus/TARGET/ (committed; each file under 64 KiB).
#
#   fuzz/make_corpus.sh
#
# Seeds come from the project's test files (testdata/), from short files made with
# ffmpeg, flac and opusenc (Debian packages ffmpeg, flac, opus-tools), from the
# project's own writers (tests/fuzz_corpus.rs `write_project_seeds` imports some of
# those files into an archive and keeps its metadata and manifest), and, for the
# structured targets, from field layouts written here (see each target in
# src/fuzzing.rs for what its bytes mean). Encoder versions change the bytes, not what
# the seeds exercise; the regressions in fuzz/regressions/ are never touched.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORPUS=$ROOT/fuzz/corpus
for tool in ffmpeg flac opusenc python3; do
    command -v "$tool" >/dev/null || { echo "make_corpus.sh: needs $tool" >&2; exit 1; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

rm -rf "$CORPUS"
mkdir -p "$CORPUS"/{wav_input,flac_input,compressed_input,flac_scan,flac_headers,ogg_pages,opus_head,ogg_opus_scan,index_rows,checkpoints,recording_meta,manifest,wav_layout,kept_chunks}

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
# A short tone: ff_tone SECONDS RATE CHANNELS OUTPUT-OPTIONS... OUT
ff_tone() {
    local secs=$1 rate=$2 ch=$3
    shift 3
    ff -f lavfi -i "sine=frequency=440:duration=$secs:sample_rate=$rate" -ac "$ch" \
        -fflags +bitexact -flags:a +bitexact "$@"
}

# --- WAV family --------------------------------------------------------------------------
W=$CORPUS/wav_input
ff_tone 0.02 8000 1 -c:a pcm_s16le "$W/s16-mono.wav"
ff_tone 0.02 8000 1 -c:a pcm_u8 "$W/u8-mono.wav"
ff_tone 0.01 48000 2 -c:a pcm_s24le "$W/s24-stereo.wav"
ff_tone 0.01 16000 3 -c:a pcm_s32le "$W/s32-3ch-extensible.wav"
ff_tone 0.01 16000 1 -c:a pcm_f32le "$W/f32.wav"
ff_tone 0.01 16000 1 -c:a pcm_f64le "$W/f64.wav"
ff_tone 0.01 16000 2 -c:a pcm_s16le -rf64 always "$W/rf64.wav"
ff_tone 0.01 16000 2 -c:a pcm_s16le -f w64 "$W/w64.w64"
ff_tone 0.01 16000 1 -c:a pcm_s16le -write_bext 1 \
    -metadata origination_date=2025-06-01 -metadata origination_time=04:00:00 "$W/bext.wav"
ff_tone 0.01 16000 1 -c:a pcm_s16le \
    -metadata comment="Recorded at 05:00:00 01/06/2025 (UTC+1) by AudioMoth 24F3190360A3B0C5" \
    -metadata title="dawn" "$W/audiomoth-icmt.wav"
ff_tone 0.02 8000 1 -c:a pcm_s16le "$TMP/seed16.wav"
ff_tone 0.05 8000 1 -c:a pcm_s16le "$TMP/tone.wav"
ff_tone 0.05 48000 2 -c:a pcm_s24le "$TMP/tone24.wav"
ff_tone 0.05 16000 1 -c:a pcm_f32le "$TMP/tonef32.wav"

# --- FLAC ----------------------------------------------------------------------------------
F=$CORPUS/flac_input
flac -s -f --blocksize=192 -o "$F/s16-blocks192.flac" "$TMP/seed16.wav"
flac -s -f --blocksize=256 --tag="DATE=2025-06-01T04:00:00Z" --tag="TITLE=dawn" \
    -o "$F/tags.flac" "$TMP/seed16.wav"
flac -s -f --blocksize=576 -o "$F/s24-stereo.flac" "$W/s24-stereo.wav"
ff_tone 0.01 8000 1 -sample_fmt s16 -c:a flac -frame_size 64 "$F/ffmpeg-s16.flac"
ff_tone 0.01 8000 2 -c:a flac -sample_fmt s32 -frame_size 40 "$F/ffmpeg-s24-stereo.flac"

# --- MP3, Vorbis, AAC, ALAC -------------------------------------------------------------
C=$CORPUS/compressed_input
ff_tone 0.1 8000 1 -c:a libmp3lame -b:a 16k -metadata date="2025-06-01T04:00:00" "$C/lame.mp3"
ff_tone 0.1 8000 1 -c:a libmp3lame -b:a 16k -write_xing 0 -id3v2_version 0 "$C/bare.mp3"
ff_tone 0.1 8000 1 -c:a libvorbis -q:a 0 -metadata DATE="2025-06-01T04:00:00Z" "$C/vorbis.ogg"
ff_tone 0.1 8000 1 -c:a aac -b:a 16k -f adts "$C/adts.aac"
ff_tone 0.1 8000 1 -c:a aac -b:a 16k "$C/aac.m4a"
ff_tone 0.05 8000 1 -c:a alac "$C/alac.m4a"

# --- Ogg Opus ------------------------------------------------------------------------------
O=$TMP/opus
mkdir -p "$O"
opusenc --quiet --serial 1 --bitrate 12 "$TMP/tone.wav" "$O/mono.opus"
opusenc --quiet --serial 2 --bitrate 24 --framesize 10 "$TMP/tone24.wav" "$O/stereo.opus"
ff -f lavfi -i "sine=frequency=440:duration=0.05:sample_rate=48000" -ac 6 -c:a pcm_s16le "$TMP/six.wav"
opusenc --quiet --serial 3 --bitrate 48 "$TMP/six.wav" "$O/surround51.opus"
cp "$ROOT/testdata/sweep.opus" "$O/sweep.opus"

# --- inputs imported by the project (recording_meta, manifest) ---------------------------
I=$TMP/import
mkdir -p "$I"
cp "$TMP/tone.wav" "$I/tone16.wav"
cp "$TMP/tonef32.wav" "$I/tonef32.wav"
cp "$W/audiomoth-icmt.wav" "$I/audiomoth.wav"
cp "$O/mono.opus" "$I/mono.opus"

python3 - "$ROOT" "$CORPUS" "$TMP" <<'EOF'
import hashlib, json, os, struct, sys
root, corpus, tmp = sys.argv[1:4]
def put(target, name, data):
    assert len(data) < 64 << 10, (target, name, len(data))
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)
def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def i64(v): return struct.pack("<q", v)
def chunk(cid, body):
    return cid + u32(len(body)) + body + (b"\0" if len(body) % 2 else b"")

# WAV variants by hand: the cases the reader's documentation names.
fmt16 = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
frames = bytes(range(256)) * 2
def riff(chunks, riff_size=None):
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + u32(len(body) if riff_size is None else riff_size) + body
guano = b"GUANO|Version: 1.0\nTimestamp: 2025-06-01T04:00:00+01:00\nTE: 1\n"
put("wav_input", "guano.wav", riff([chunk(b"fmt ", fmt16), chunk(b"guan", guano), chunk(b"data", frames)]))
put("wav_input", "fmt-after-data.wav", riff([chunk(b"data", frames), chunk(b"fmt ", fmt16)]))
put("wav_input", "odd-chunk-unpadded.wav",
    riff([chunk(b"fmt ", fmt16), b"junk" + u32(3) + b"abc", chunk(b"data", frames)]))
put("wav_input", "sox-pipe-size.wav",
    riff([chunk(b"fmt ", fmt16), b"data" + u32(0x7FFFF000) + frames], 0x7FFFF024))
put("wav_input", "unfinalised.wav", riff([chunk(b"fmt ", fmt16), b"data" + u32(0) + frames], 4 + 24 + 8))
put("wav_input", "data-ffffffff.wav", riff([chunk(b"fmt ", fmt16), b"data" + u32(0xFFFFFFFF) + frames]))
put("wav_input", "truncated.wav", riff([chunk(b"fmt ", fmt16), b"data" + u32(4096) + frames]))
ext = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 8000, 8000 * 8, 8, 32, 22, 24, 3) + \
    bytes([1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71])
put("wav_input", "extensible-24-in-32.wav", riff([chunk(b"fmt ", ext), chunk(b"data", frames)]))
ambi = ext[:24] + bytes([1, 0, 0, 0, 0x21, 0x07, 0xD3, 0x11, 0x86, 0x44, 0xC8, 0xC1, 0xCA, 0, 0, 0])
put("wav_input", "ambisonic.wav", riff([chunk(b"fmt ", ambi), chunk(b"data", frames)]))
bext = bytearray(602)
bext[320:338] = b"2025-06-0104:00:00"
cue = u32(1) + u32(1) + u32(10) + b"data" + u32(0) + u32(0) + u32(10)
adtl = b"adtl" + chunk(b"labl", u32(1) + b"mark\0")
put("wav_input", "kept-chunks.wav", riff([chunk(b"fmt ", fmt16), chunk(b"bext", bytes(bext)),
    chunk(b"cue ", cue), chunk(b"LIST", adtl), chunk(b"iXML", b"<x/>"), chunk(b"data", frames)]))
rf64 = open(os.path.join(corpus, "wav_input", "rf64.wav"), "rb").read()
put("wav_input", "bw64.wav", b"BW64" + rf64[4:])
head = open(os.path.join(root, "testdata", "20250601_040000.wav"), "rb").read()
# The testdata recording's header with 1000 frames of its samples, sizes made to fit.
at = head.index(b"data") + 8
cut = bytearray(head[:at] + head[at:at + 2000])
cut[at - 4:at] = u32(2000)
cut[4:8] = u32(len(cut) - 8)
put("wav_input", "testdata-dawn-cut.wav", bytes(cut))

# Ogg pages: a run of pages from each file (flag byte: bit 0 fixes CRCs).
def pages(b):
    out, pos = [], 0
    while pos + 27 <= len(b) and b[pos:pos + 4] == b"OggS":
        n = b[pos + 26]
        ln = 27 + n + sum(b[pos + 27:pos + 27 + n])
        out.append(b[pos:pos + ln])
        pos += ln
    return out
def packets(ps):
    out, cur = [], b""
    for p in ps:
        n = p[26]
        lacing = p[27:27 + n]
        body = p[27 + n:]
        pos = 0
        for l in lacing:
            cur += body[pos:pos + l]
            pos += l
            if l < 255:
                out.append(cur)
                cur = b""
    return out
opus_dir = os.path.join(tmp, "opus")
for name in sorted(os.listdir(opus_dir)):
    b = open(os.path.join(opus_dir, name), "rb").read()
    ps = pages(b)
    stem = name.rsplit(".", 1)[0]
    put("ogg_pages", stem + ".pages", b"\0" + b"".join(ps[:6])[:60000])
    put("ogg_pages", stem + "-fixcrc.pages", b"\1" + b"".join(ps[1:4])[:60000])
    if len(b) < 60000:
        put("ogg_opus_scan", stem + ".opus", b"\0" + b)
        # the same stream decoded at 24 kHz (rate index 1: flags 0b010)
        put("ogg_opus_scan", stem + "-24k.opus", b"\2" + b)
    head_packet, tags_packet = packets(ps[:2])[:2]
    put("opus_head", stem + ".head", head_packet)
    put("opus_head", stem + ".tags", tags_packet)
vorbis = open(os.path.join(corpus, "compressed_input", "vorbis.ogg"), "rb").read()
put("ogg_pages", "vorbis.pages", b"\0" + vorbis)

# FLAC: the input seeds scanned as streams; frame headers and STREAMINFO bodies.
def flac_frames(b):
    pos, si = 4, None
    while True:
        flags = b[pos]
        ln = int.from_bytes(b[pos + 1:pos + 4], "big")
        if flags & 0x7F == 0:
            si = b[pos + 4:pos + 4 + ln]
        pos += 4 + ln
        if flags & 0x80:
            return si, pos
flac_dir = os.path.join(corpus, "flac_input")
for name in sorted(os.listdir(flac_dir)):
    b = open(os.path.join(flac_dir, name), "rb").read()
    stem = name.rsplit(".", 1)[0]
    put("flac_scan", name, b)
    si, audio = flac_frames(b)
    put("flac_headers", stem + ".frame", b[audio:audio + 16])
    put("flac_headers", stem + ".streaminfo", si)
    # a later frame's header: the second sync code after the first frame
    nxt = b.find(b"\xff\xf8", audio + 2)
    if nxt > 0:
        put("flac_headers", stem + "-second.frame", b[nxt:nxt + 16])

# Index rows: u64 + shift byte for stream length and frame count, then i64 quads.
def wide(v): return u64(v) + u8(0)
rows = b"".join(i64(o) + i64(l) + i64(s) + i64(n) for o, l, s, n in
                [(42, 300, 0, 4096), (342, 280, 4096, 4096), (622, 100, 8192, 1000)])
put("index_rows", "flac-frames", wide(722) + wide(9192) + rows)
pages_rows = b"".join(i64(o) + i64(g) + i64(p) + i64(s) for o, g, p, s in
                      [(100, 9600, 10, 9600), (900, -1, 10, 9600), (1500, 19200, 20, 19200)])
put("index_rows", "opus-pages", wide(2000) + wide(19200) + pages_rows)
put("index_rows", "negative", wide(10) + wide(1) + i64(-1) * 4)

# Checkpoints: mode, state size, count, warm-up (u16), interval (u64 + shift), silk size
# (u16), arch, selftest (4); per row packet (u8), sample (u16) and three states; then
# the damage: file index, operation, operands.
def ck(mode, size, count, extra=b""):
    out = u8(mode) + u8(size - 1) + u8(count) + u16(50) + wide(48000) + u16(11) + u8(3) + b"self"
    for j in range(count):
        out += u8(100) + u16(1920) + bytes((j * 7 + k) % 256 for k in range(3 * size))
    return out + extra
put("checkpoints", "seeded", ck(0, 16, 3))
put("checkpoints", "seeded-multistream", ck(2, 8, 2))
put("checkpoints", "full", ck(4, 12, 4))
put("checkpoints", "empty", ck(0, 4, 0))
put("checkpoints", "damaged-flip", ck(8, 16, 3, u8(1) + u8(1) + u16(7) + u8(0x40)))
put("checkpoints", "damaged-cut", ck(12, 16, 2, u8(3) + u8(0) + u16(5)))
put("checkpoints", "damaged-json", ck(8, 16, 2, u8(6) + u8(2) + json.dumps({
    "zarr_format": 3, "node_type": "group", "attributes": {"zarr_wavfs": {
        "kind": "checkpoints", "count": 2, "encoding": "seeded", "warmup_packets": 50,
        "interval": 48000, "fingerprint": {"libopus": "x", "state_size": 16,
        "silk_state_size": 1, "target": "t", "arch": 0, "selftest": "s"}}}}).encode()))

# Recording metadata written by hand (older versions, the FLAC and Opus fields).
metas = {
    "v1-opus": {"kind": "recording", "format_version": 1, "codec": "opus", "channels": 1,
                "frames": 144000, "sample_rate": 48000, "original_sample_rate": 48000,
                "pre_skip": 312, "start_time": "2025-06-01T04:00:00Z", "stream_bytes": 17281,
                "index_pages": 3, "index_sha256": "00" * 32},
    "v4-flac-chunks": {"kind": "recording", "format_version": 4, "codec": "flac", "channels": 2,
                       "frames": 176400, "sample_rate": 44100, "original_sample_rate": 44100,
                       "sample_format": "int24", "stream_bytes": 1000, "index_rows": 44,
                       "index_sha256": "ab" * 32, "source": {"name": "a.wav", "size": 5,
                       "sha256": "cd" * 32}, "chunks": [{"id": "LIST", "data": "SU5GTw=="},
                       {"id": "iXML", "data": ""}]},
    "v3-pcm-float": {"kind": "recording", "format_version": 3, "codec": "pcm", "channels": 3,
                     "frames": 10, "sample_rate": 96000, "original_sample_rate": 96000,
                     "sample_format": "float32"},
}
for name, m in metas.items():
    put("recording_meta", name + ".json", json.dumps(m).encode())

# Manifests by hand: folders, a recording, another version.
rec = dict(metas["v3-pcm-float"])
put("manifest", "folders.json", json.dumps({"zarr_wavfs_manifest": 1, "nodes": [
    {"path": "a", "modified_ns": 1}, {"path": "a/b", "modified_ns": 2},
    {"path": "a/b/r", "modified_ns": 3, "recording": rec, "audio_bytes": 10}]}).encode())
put("manifest", "version-2.json", json.dumps({"zarr_wavfs_manifest": 2, "nodes": []}).encode())

# The served WAV layout: sel, channels, rate, frames, format, chunks (count; per chunk
# id pick, length kind, length, body), then with sel bit 2 the recording's start time,
# source, frame range and time expansion; then four reads (near, kind, offset, len
# kind, len) and the sample bytes.
def reads(*rs):
    return b"".join(u8(near) + u8(1) + u8(offset) + u8(1) + u16(ln) for near, offset, ln in rs)
plain = u8(0) + u8(1) + u8(2) + u16(100) + u8(0) + u8(0) + \
    reads((0, 128, 44), (1, 127, 3), (2, 128, 2), (3, 100, 1000)) + bytes(range(64))
put("wav_layout", "stereo-s16", plain)
chunks = u8(3) + u8(0) + u8(0) + b"\x55" * 602 + u8(1) + u8(1) + u8(5) + b"abcde" + \
    u8(7) + b"note" + u8(1) + u8(4) + b"<x/>"
put("wav_layout", "s24-chunks", u8(0) + u8(0) + u8(1) + u16(33) + u8(1) + chunks +
    reads((1, 120, 100), (0, 128, 700), (2, 127, 2), (3, 128, 5)) + bytes(range(200)))
meta_part = u8(1) + u8(0) + u16(2025 - 1970) + u8(5) + u8(0) + u8(4) + u8(0) + u8(0) + \
    u8(1) + b"source.wav".ljust(16, b"\0") + u64(12345) + bytes(32) + \
    wide(10) + wide(50) + u8(1) + u8(8)
put("wav_layout", "recording-part", u8(4) + u8(0) + u8(3) + u16(300) + u8(3) + u8(1) + u8(1) +
    u8(2) + u16(30) + bytes(30) + meta_part + reads((0, 128, 50), (1, 128, 9), (2, 120, 9), (3, 126, 9)))
put("wav_layout", "huge-rf64", u8(8) + u8(7) + u8(4) + u64(1 << 40) + u8(0) + u8(2) + u8(0) +
    reads((1, 128, 100), (2, 128, 3), (3, 127, 1), (0, 200, 80)))

# Kept chunks: chunks (as in wav_layout, any id), then total, first, frames (u64 +
# shift each), bext (flag, description, date, time, reference), time expansion.
smpl = bytes(28) + u32(1) + u32(0) + u32(1) + u32(0) + u32(5) + u32(20) + u32(0) + u32(0)
cue2 = u32(2) + u32(1) + u32(10) + b"data" + u32(0) * 2 + u32(10) + \
    u32(2) + u32(900) + b"data" + u32(0) * 2 + u32(900)
adtl2 = b"adtl" + chunk(b"labl", u32(1) + b"one\0") + chunk(b"note", u32(2) + b"two\0")
def pick(i): return u8(i)
def body(b): return u8(2) + u16(len(b)) + b
ks = u8(4) + pick(1) + body(cue2) + pick(2) + body(smpl) + pick(5) + body(adtl2) + \
    pick(4) + body(guano)
ctx = wide(1000) + wide(5) + wide(100)
bx = u8(1) + u8(5) + b"descr" + b"2025-06-01" + b"04:00:00" + u64(123)
put("kept_chunks", "part-with-bext", ks + ctx + bx + u8(1) + u32(10))
ks2 = u8(3) + pick(0) + u8(0) + bytes(bext) + pick(3) + body(u32(7) + b"xy") + \
    pick(8) + b"id3 " + body(b"\0" * 10)
put("kept_chunks", "whole-bext-fact", ks2 + wide(50) + wide(0) + wide(50) + u8(0) + u8(0))
EOF

# Seeds from the project's own writers (recording metadata, a manifest).
ZW_SEED_INPUTS=$I cargo test --quiet --manifest-path "$ROOT/Cargo.toml" --test fuzz_corpus \
    -- --ignored write_project_seeds

big=$(find "$CORPUS" -type f -size +64k)
[ -z "$big" ] || { echo "make_corpus.sh: seeds over 64 KiB: $big" >&2; exit 1; }
echo "fuzz/corpus: $(find "$CORPUS" -type f | wc -l) files, $(du -sk "$CORPUS" | cut -f1) KiB"
