#!/usr/bin/env python3
"""Reads a WAV file served by a zarr-wavfs mount the ways analysis scripts do.

Usage: mount_clients.py MOUNTED.wav REFERENCE.wav (--strict|--lenient)

REFERENCE is the same recording written by `zarr-wavfs extract` to an ordinary file.
Checks that Python's `wave`, `mmap`, and where installed `soundfile`, `scipy.io.wavfile`
and `numpy.memmap` get the same samples/bytes from both. With --strict a missing
optional module is an error (CI installs them); with --lenient it is reported and
skipped. Prints one line per check; exits non-zero on any mismatch.
"""

import mmap
import sys
import wave


def main():
    mounted, reference, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    strict = mode == "--strict"
    with open(reference, "rb") as f:
        ref_bytes = f.read()

    with wave.open(mounted) as a, wave.open(reference) as b:
        assert a.getparams() == b.getparams(), (a.getparams(), b.getparams())
        n = a.getnframes()
        assert a.readframes(n) == b.readframes(n), "wave: frames differ"
        # a seek into the middle, as players do
        a.setpos(n // 3)
        b.setpos(n // 3)
        assert a.readframes(1000) == b.readframes(1000), "wave: frames after setpos differ"
    print("wave ok")

    with open(mounted, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        assert len(m) == len(ref_bytes), "mmap: length"
        assert m[:] == ref_bytes, "mmap: bytes differ"
        mid = len(m) // 2
        assert m[mid : mid + 4097] == ref_bytes[mid : mid + 4097]
        m.close()
    print("mmap ok")

    def optional(name, check):
        try:
            module = __import__(name)
        except ImportError:
            if strict:
                raise
            print(f"{name} skipped (not installed)")
            return
        check(module)
        print(f"{name} ok")

    def check_numpy(np):
        a = np.memmap(mounted, dtype=np.uint8, mode="r")
        assert a.shape[0] == len(ref_bytes) and bytes(a[-5000:]) == ref_bytes[-5000:]

    def check_soundfile(sf):
        import numpy as np

        a, ra = sf.read(mounted, dtype="int16")
        b, rb = sf.read(reference, dtype="int16")
        assert ra == rb and np.array_equal(a, b), "soundfile: samples differ"
        part, _ = sf.read(mounted, dtype="int16", start=12345, frames=2000)
        assert np.array_equal(part, b[12345:14345]), "soundfile: seek read differs"

    def check_scipy(scipy):
        import numpy as np
        import scipy.io.wavfile as wf

        ra, a = wf.read(mounted)
        rb, b = wf.read(reference)
        assert ra == rb and np.array_equal(a, b), "scipy: samples differ"
        ra, a = wf.read(mounted, mmap=True)
        assert np.array_equal(a, b), "scipy mmap: samples differ"

    optional("numpy", check_numpy)
    optional("soundfile", check_soundfile)
    optional("scipy", check_scipy)


if __name__ == "__main__":
    main()
