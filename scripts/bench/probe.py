#!/usr/bin/env python3
"""Timed reads for scripts/bench.sh. Every time is wall-clock (time.perf_counter) and
printed in seconds; nothing is timed outside the read itself (interpreter start-up and
imports are excluded).

    probe.py offsets SIZE COUNT SEED           COUNT uniform offsets in 0..SIZE-4096
    probe.py evict PATH...                     drop PATHs' pages from the page cache
    probe.py pread FILE OFFSET [--evict P...]  one cold 4 KiB read:
                                               "open_s pread_s total_s bytes"
    probe.py reads FILE OFFSETS --cold|--warm [--evict P...]
                                               many 4 KiB reads, one such line each
                                               (see below)
    probe.py ttfb FILE                         open + first read(64 KiB): "seconds bytes"
    probe.py windows FILE COUNT SEED           COUNT random 1-s windows: "seconds"

Reads use os.open(FILE, O_RDONLY) and os.pread, buffered through the page cache (no
O_DIRECT: a FUSE file system decides itself whether it allows that).

"Cold" needs the data gone from every cache. The caller remounts FUSE file systems
(their own caches); `evict` and `--evict` remove the backing files' pages from the
kernel's page cache with posix_fadvise(POSIX_FADV_DONTNEED), which works per file and
without root (unlike /proc/sys/vm/drop_caches, which would also evict this interpreter
and the daemon's binary). Pages of tmpfs files cannot be evicted: tmpfs is the ceiling.

`reads --cold`: for each offset, evict, then open, pread, close (for files on a local
disk or tmpfs: no remount needed). `reads --warm`: open once, read every offset once
untimed (priming), then time a pread of each offset again on the open file; the open
column is 0.
"""

import os
import random
import sys
import time

READ = 4096


def evict(paths):
    """posix_fadvise(DONTNEED) on every regular file under `paths` (files or dirs)."""
    for p in paths:
        files = [p] if not os.path.isdir(p) else [
            os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs]
        for f in files:
            try:
                fd = os.open(f, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def split_evict(args):
    """(positional args, paths after --evict)."""
    if "--evict" in args:
        i = args.index("--evict")
        return args[:i], args[i + 1:]
    return args, []


def timed_read(path, offset):
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    t1 = time.perf_counter()
    data = os.pread(fd, READ, offset)
    t2 = time.perf_counter()
    os.close(fd)
    return t1 - t0, t2 - t1, t2 - t0, len(data)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "offsets":
        size, count, seed = int(args[0]), int(args[1]), int(args[2])
        rng = random.Random(seed)
        for _ in range(count):
            print(rng.randrange(0, size - READ + 1))
    elif cmd == "evict":
        evict(args)
    elif cmd == "pread":
        (path, offset), paths = split_evict(args)
        evict(paths)
        print("%.9f %.9f %.9f %d" % timed_read(path, int(offset)))
    elif cmd == "reads":
        (path, offsets_file, mode), paths = split_evict(args)
        offsets = [int(x) for x in open(offsets_file).read().split()]
        if mode == "--cold":
            for off in offsets:
                evict(paths + [path])
                print("%.9f %.9f %.9f %d" % timed_read(path, off))
        elif mode == "--warm":
            fd = os.open(path, os.O_RDONLY)
            for off in offsets:
                os.pread(fd, READ, off)
            for off in offsets:
                t0 = time.perf_counter()
                data = os.pread(fd, READ, off)
                t = time.perf_counter() - t0
                print("0 %.9f %.9f %d" % (t, t, len(data)))
            os.close(fd)
        else:
            sys.exit("reads: --cold or --warm")
    elif cmd == "ttfb":
        t0 = time.perf_counter()
        fd = os.open(args[0], os.O_RDONLY)
        data = os.read(fd, 65536)
        t = time.perf_counter() - t0
        os.close(fd)
        print("%.9f %d" % (t, len(data)))
    elif cmd == "windows":
        import soundfile  # imported before the clock starts
        path, count, seed = args[0], int(args[1]), int(args[2])
        rng = random.Random(seed)
        t0 = time.perf_counter()
        with soundfile.SoundFile(path) as f:
            rate, frames = f.samplerate, f.frames
            for _ in range(count):
                f.seek(rng.randrange(0, max(1, frames - rate)))
                f.read(rate, dtype="int16")
        print("%.9f" % (time.perf_counter() - t0))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
