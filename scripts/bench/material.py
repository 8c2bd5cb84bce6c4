#!/usr/bin/env python3
"""Deterministic benchmark material for scripts/bench.sh, written as a 16-bit WAV.

    material.py SECONDS CHANNELS OUT.wav|- [SECONDS CHANNELS OUT.wav ...]

writes one 48 kHz 16-bit WAV per triple ("-": standard output); several in one call
save the start-up (importing scipy takes about a second).

The signal is field-recording-like rather than synthetic silence, so that the Opus
encoder spends its bits the way it would on real audio:

* pink noise (Paul Kellet's 3-pole "pinking" filter over white noise) at about
  -30 dBFS RMS, a different noise per channel (partly correlated in stereo);
* every 10 s (at a random point in the first 4 s) an event, in turn
    - an exponential sine sweep 100 Hz -> 16 kHz, 2 s, -12 dBFS peak;
    - a "speech-like" burst, 2.5 s: a harmonic complex (f0 gliding around 110-220 Hz)
      through three formant band-passes, gated by a 4-5 Hz syllable envelope (one of
      8 variants);
    - a bird-like chirp train: 8 short upward chirps 2-6 kHz (one of 8 variants);
  panned differently per event in stereo.

The random numbers are drawn per one-minute chunk from numpy's PCG64 seeded with
(SEED, chunk index), so the output is identical on every run (and across machines up
to last-bit differences of libm), and memory stays small for multi-hour files.
"""

import struct
import sys

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

RATE = 48_000
SEED = 20_250_601
CHUNK_S = 60
EVENT_PERIOD_S = 10

# Kellet's pinking filter as a rational transfer function (about -3 dB/octave).
PINK_B = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
PINK_A = [1.0, -2.494956002, 2.017265875, -0.522189400]
# Formants of a neutral vowel, Hz, and their band-pass filters.
FORMANTS = [sos for f in (500, 1500, 2500)
            for sos in [butter(2, [f * 0.8, f * 1.2], "bandpass", fs=RATE, output="sos")]]


def wav_header(frames: int, channels: int) -> bytes:
    data = frames * channels * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, RATE, RATE * channels * 2,
                          channels * 2, 16)
            + b"data" + struct.pack("<I", data))


def fade(n: int, ms: float = 10.0) -> np.ndarray:
    """A window of n samples with raised-cosine fades of `ms` at both ends."""
    k = min(n // 2, int(RATE * ms / 1000))
    w = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k))
    w[:k], w[n - k:] = ramp, ramp[::-1]
    return w


def sweep() -> np.ndarray:
    n, f0, f1 = 2 * RATE, 100.0, 16_000.0
    t = np.arange(n) / RATE
    k = np.log(f1 / f0) / 2.0
    return 0.25 * fade(n) * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)


def speech(rng: np.random.Generator) -> np.ndarray:
    n = int(2.5 * RATE)
    t = np.arange(n) / RATE
    f0 = rng.uniform(110, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    src = sum(np.sin(h * phase) / h for h in range(1, 30))
    voiced = sum(sosfilt(sos, src) for sos in FORMANTS)
    syll = rng.uniform(4, 5)
    env = np.clip(np.sin(2 * np.pi * syll * t + rng.uniform(0, np.pi)), 0, None) ** 1.5
    out = voiced * env * fade(n)
    return 0.3 * out / (np.abs(out).max() + 1e-9)


def chirps(rng: np.random.Generator) -> np.ndarray:
    n = 2 * RATE
    out = np.zeros(n)
    for i in range(8):
        m = int(0.08 * RATE)
        f = np.linspace(rng.uniform(2000, 3000), rng.uniform(4500, 6000), m)
        start = int(i * 0.22 * RATE)
        out[start:start + m] += 0.2 * fade(m, 5) * np.sin(2 * np.pi * np.cumsum(f) / RATE)
    return out


def bank() -> list:
    """The event signals: one sweep, and 8 variants each of speech and chirps, made once
    (each variant from its own seed) and picked per event."""
    if not _BANK:
        _BANK.append([sweep()])
        for kind in (speech, chirps):
            _BANK.append([kind(np.random.default_rng([SEED, 2, v])) for v in range(8)])
    return _BANK


_BANK: list = []


def events_for(chunk: int, channels: int) -> np.ndarray:
    """The events that start inside minute `chunk`, as (CHUNK frames, channels)."""
    n = CHUNK_S * RATE
    out = np.zeros((n + 3 * RATE, channels))
    for k in range(CHUNK_S // EVENT_PERIOD_S):
        index = chunk * (CHUNK_S // EVENT_PERIOD_S) + k
        rng = np.random.default_rng([SEED, 1, index])
        variants = bank()[index % 3]
        sig = variants[rng.integers(len(variants))]
        start = k * EVENT_PERIOD_S * RATE + int(rng.uniform(0.5, 4.0) * RATE)
        pan = rng.uniform(0.2, 0.8) if channels == 2 else 1.0
        gains = [pan, 1 - pan] if channels == 2 else [1.0]
        for c, g in enumerate(gains):
            out[start:start + len(sig), c] += (2 * g if channels == 2 else g) * sig
    return out[:n]


def write(dest: str, secs: float, channels: int) -> None:
    frames = int(round(secs * RATE))
    out = sys.stdout.buffer if dest == "-" else open(dest, "wb")
    out.write(wav_header(frames, channels))
    zi = [lfilter(PINK_B, PINK_A, [0.0], zi=np.zeros(3))[1] for _ in range(channels)]
    done, chunk = 0, 0
    while done < frames:
        n = min(CHUNK_S * RATE, frames - done)
        rng = np.random.default_rng([SEED, 0, chunk])
        white = rng.standard_normal((CHUNK_S * RATE, 2))[:n]
        if channels == 2:  # partly correlated left and right
            white = np.stack([white[:, 0], 0.6 * white[:, 0] + 0.8 * white[:, 1]], axis=1)
        pink = np.empty((n, channels))
        for c in range(channels):
            pink[:, c], zi[c] = lfilter(PINK_B, PINK_A, white[:, c], zi=zi[c])
        x = 0.0316 * pink / 0.0867 + events_for(chunk, channels)[:n]
        pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
        out.write(pcm.tobytes())
        done += n
        chunk += 1
    out.flush()
    if out is not sys.stdout.buffer:
        out.close()


def main() -> None:
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit(__doc__)
    jobs = [(float(args[i]), int(args[i + 1]), args[i + 2]) for i in range(0, len(args), 3)]
    for secs, channels, dest in jobs:
        if channels not in (1, 2):
            sys.exit("CHANNELS must be 1 or 2")
    for secs, channels, dest in jobs:
        write(dest, secs, channels)


if __name__ == "__main__":
    main()
