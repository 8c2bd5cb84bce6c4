#!/usr/bin/env python3
"""Splits two perf profiles into where the CPU time went.

    profile.py LIMIT.data SEQ.data DAEMON_PID KIND >> RESULTS.tsv

Both are `perf record -g --kernel-callchains -e cpu-clock` files. LIMIT.data profiles
one run of `zarr-wavfs decode-limit` (that process only); SEQ.data the whole machine
(`perf record -a`) during one cold `cat` of our mounted WAV, served by the daemon
DAEMON_PID. Every sample goes to one category: user time of the daemon and of the limit
by the symbol it hit (libopus and libm, our Ogg page parser, memcpy, malloc, other Rust
code); their kernel time by what the kernel call chain shows (it has frame pointers, so
the chain is exact): receiving FUSE requests, sending replies, page faults, the
archive's files, waking and waiting threads; then the client `cat`, other processes and
idle. Prints "prof_s/CATEGORY/WHICH:KIND<TAB>core-seconds" lines for report.py (WHICH:
limit or seq) and the wall seconds the samples of SEQ.data span.
"""

import re
import subprocess
import sys
from collections import defaultdict

FIELDS = "comm,pid,tid,time,period,ip,sym,dso"
MALLOC = {"malloc", "free", "cfree", "realloc", "calloc", "_int_malloc", "_int_free",
          "_int_realloc", "malloc_consolidate", "unlink_chunk", "__libc_malloc",
          "__libc_free", "__libc_realloc", "__libc_calloc", "tcache_init"}


LEAF = re.compile(r"^\s*(.*?)\s+(\d+)/\d+\s+([\d.]+):\s+(\d+)\s+[0-9a-f]+\s+(.*) \((.*)\)$")


def perf_script(path, *args):
    return subprocess.run(["perf", "script", "-i", path, "-F", FIELDS, *args],
                          capture_output=True, text=True, check=True).stdout.splitlines()


def chains(path):
    """The kernel call chain of each sample, outermost last (user frames are not
    recorded: perf record --kernel-callchains)."""
    chain = None
    for line in perf_script(path) + [""]:
        if line.startswith(("\t", " ")) and line.strip():
            chain.append(line.strip())
        elif chain is not None and not line.strip():
            yield " ".join(chain)
            chain = None
        elif line.strip():
            if chain is not None:
                yield " ".join(chain)
            chain = []


def samples(path):
    """Yields (comm, pid, time, seconds, leaf symbol, leaf dso, kernel chain)."""
    for line, chain in zip(perf_script(path, "-G"), chains(path)):
        m = LEAF.match(line)
        if m:
            comm, pid, time, period, sym, dso = m.groups()
            yield comm, int(pid), float(time), int(period) / 1e9, sym, dso, chain


def kernel_category(chain):
    if "fuse_dev_do_read" in chain or "fuse_dev_read" in chain:
        return "k_fuse_read"
    if "fuse_dev_do_write" in chain or "fuse_dev_write" in chain:
        return "k_fuse_reply"
    if "exc_page_fault" in chain:
        return "k_fault_file" if "filemap_fault" in chain else "k_fault_anon"
    if any(x in chain for x in ("futex", "sched_yield", "nanosleep", "epoll_wait",
                                "schedule")):
        return "k_threads"
    if any(x in chain for x in ("ext4_", "filemap_", "path_openat", "statx", "fadvise",
                                "sys_close", "sys_read", "sys_pread", "sys_lseek",
                                "sys_newfstat", "sys_openat")):
        return "k_files"
    return "k_other"


def user_category(sym, dso):
    if "ogg::parse_page" in sym:
        return "u_ogg"
    if "memcpy" in sym or "memmove" in sym or "memset" in sym:
        return "u_memcpy"
    if sym in MALLOC:
        return "u_malloc"
    if "libm.so" in dso or ("::" not in sym and "[unknown]" not in sym
                            and "libc.so" not in dso and "ld-linux" not in dso):
        # C symbols of our binary are libopus (linked in statically); libm serves it
        return "u_opus"
    return "u_rust"


def category(sym, dso, chain):
    return kernel_category(chain) if dso == "[kernel.kallsyms]" else user_category(sym, dso)


def main():
    limit_data, seq_data, daemon, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    out = defaultdict(float)
    for comm, _pid, _t, secs, sym, dso, chain in samples(limit_data):
        if comm in ("perf-exec", "taskset"):
            continue
        out[("limit", category(sym, dso, chain))] += secs
    t0 = t1 = None
    for comm, pid, t, secs, sym, dso, chain in samples(seq_data):
        t0 = t if t0 is None else min(t0, t)
        t1 = t if t1 is None else max(t1, t)
        if pid == daemon:
            c = category(sym, dso, chain)
        elif pid == 0:
            c = "idle"
        elif comm == "cat":
            c = "client"
        else:
            c = "others"
        out[("seq", c)] += secs
    for (which, c), secs in sorted(out.items()):
        print(f"prof_s/{c}/{which}:{kind}\t{secs:.4f}")
    if t0 is not None:
        print(f"prof_wall_s/-/seq:{kind}\t{t1 - t0:.4f}")


if __name__ == "__main__":
    main()
