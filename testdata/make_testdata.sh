#!/usr/bin/env bash
# Regenerates the bundled example audio in testdata/ (see testdata/README.md).
# Needs sox and opusenc (apt packages sox, opus-tools). sox runs with -R (fixed random
# seed) and -D (no dither), so the WAV files come out byte-identical on every run.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. AudioMoth-like dawn recording: 6 s, 48 kHz, mono, 16-bit.
#    Quiet pink-noise background plus two trains of bird-like down-chirps.
sox -R -D -n -r 48000 -c 1 -b 16 "$tmp/bg.wav" synth 6 pinknoise vol 0.05
sox -R -D -n -r 48000 -c 1 -b 16 "$tmp/chirp_a.wav" synth 0.12 sine 6500-3500 fade t 0.01 0.12 0.04 vol 0.30
sox -R -D -n -r 48000 -c 1 -b 16 "$tmp/chirp_b.wav" synth 0.30 sine 2500-4500 fade t 0.02 0.30 0.08 vol 0.25
sox -R -D "$tmp/chirp_a.wav" "$tmp/train_a.wav" pad 0 0.10 repeat 4
sox -R -D "$tmp/chirp_b.wav" "$tmp/train_b.wav" pad 0 0.25 repeat 2
sox -R -D -m -v 1 "$tmp/bg.wav" -v 1 "|sox -R -D $tmp/train_a.wav -p pad 0.8" \
    -v 1 "|sox -R -D $tmp/train_b.wav -p pad 3.4" -b 16 20250601_040000.wav

# 2. Stereo music: 4 s, 44.1 kHz, 16-bit; two sine chords per channel (A minor, then F major).
sox -R -D -n -r 44100 -c 1 -b 16 "$tmp/l1.wav" synth 2 sine 220 sine mix 261.63 sine mix 329.63 fade t 0.05 2 0.2 vol 0.25
sox -R -D -n -r 44100 -c 1 -b 16 "$tmp/l2.wav" synth 2 sine 174.61 sine mix 220 sine mix 261.63 fade t 0.05 2 0.2 vol 0.25
sox -R -D -n -r 44100 -c 1 -b 16 "$tmp/r1.wav" synth 2 sine 440 sine mix 523.25 sine mix 659.26 fade t 0.05 2 0.2 vol 0.20
sox -R -D -n -r 44100 -c 1 -b 16 "$tmp/r2.wav" synth 2 sine 349.23 sine mix 440 sine mix 523.25 fade t 0.05 2 0.2 vol 0.20
sox -R -D "$tmp/l1.wav" "$tmp/l2.wav" "$tmp/left.wav"
sox -R -D "$tmp/r1.wav" "$tmp/r2.wav" "$tmp/right.wav"
sox -R -D -M "$tmp/left.wav" "$tmp/right.wav" -b 16 stereo_music.wav

# 3. Ogg Opus: a 3 s mono 48 kHz log sweep 100 Hz..12 kHz, encoded at 48 kbit/s.
sox -R -D -n -r 48000 -c 1 -b 16 "$tmp/sweep.wav" synth 3 sine 100:12000 fade t 0.02 3 0.05 vol 0.5
opusenc --quiet --serial 1 --bitrate 48 "$tmp/sweep.wav" sweep.opus

ls -l 20250601_040000.wav stereo_music.wav sweep.opus
