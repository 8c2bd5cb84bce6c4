#!/usr/bin/env python3
"""Soak test of a zarr-wavfs mount (issue 19, item 4): concurrent reads for a long time,
every byte checked, the daemon's memory, fds and threads watched.

    bash scripts/soak.sh [MINUTES] [options]     # builds the release binary if needed
    python3 scripts/soak.py [MINUTES] [--bin PATH] [--report FILE] [--log FILE]
                            [--seed S] [--work DIR]

Setup: deterministic material (numpy PCG64, --seed) imported into one archive with
`zarr-wavfs import --codec flac|pcm|opus`: 13 recordings, mono, stereo, 6 and 8
channels, 16/24-bit and float (lossless codecs), 44.1/48/96 kHz and a 384 kHz bat
recording, in nested folders; 8.4 minutes of audio, 213 MiB as WAV, more decoded audio
than the default span cache (256 MiB) holds. The oracle is `zarr-wavfs extract` of every
recording; before the load starts the mount must list exactly those files and `cmp`
equal to them.

Phases: MINUTES (default 60) split in half, each with a fresh `mount -f` (a child
process, unmounted with fusermount3 -u at the end, on failure or Ctrl-C): first with
the default --cache-size, then with --cache-size 1MiB (nearly every read evicts). Load
in each phase, compared with the oracle files (mmapped):
  pread     16 threads: os.pread of a random file, length log-uniform 1 B..1 MiB,
            offset uniform (70%), inside the WAV header (15%) or near or past EOF
            (15%); a fresh open every 32 reads
  mmap      2 child processes (an EIO on a mapped page is a SIGBUS): mmap of a random
            file, 32 random slices (lengths and offsets as pread), a fresh mapping
  seq       2 threads: a whole random file in 128 KiB reads ...
  cat       ... every 4th file through the real `cat` instead, its output compared as
            it arrives; counted per file (latency: the whole file, not in `all`)
The mount sets FOPEN_KEEP_CACHE, so a thread drops the mounted files' pages from the
page cache (posix_fadvise DONTNEED) every 0.25 s; otherwise the kernel would answer
almost every read and the daemon would idle.

Counted per phase and reader: reads, bytes, wrong reads (a short read is one), wrong
bytes, errors (any OSError, a cat exiting non-zero, a reader process dying), latency
per read (p50/p99 from a histogram of 2.3% buckets, exact max). Every 5 s the daemon's
VmRSS, open fds and threads are sampled (and its CPU time).

Criteria, per phase, each PASS or FAIL; "after the warm-up" means the samples taken
after the first 20% of the phase:
  correct      0 wrong reads and 0 errors
  no hang      no read in flight and no 60 s without a completed read (a watchdog
               checks every 0.5 s; a hang ends the soak: the daemon is killed)
  clean exit   the daemon runs throughout and exits 0 when unmounted
  RSS flat     max <= 1.25 x median + 16 MiB, after the warm-up
  fds flat     max - min <= 8, after the warm-up
  threads flat max - min <= 4, after the warm-up

Outputs: the report (markdown, to stdout and --report, default /tmp/soak-report.md): a
summary table (one row per phase), per phase a table per reader, the daemon's RSS, fds,
threads and CPU, the criteria, the sampled time series and the mount log's warnings and
errors; the log (--log, default /tmp/soak-log.txt): every wrong read (reader, file,
offset, length, first differing byte offset) and error, the first 10,000 of them.
Exit status 0 when every criterion passes in both phases, 1 otherwise, 2 on a setup
failure. The work directory (material, archive, oracles, mount logs) is a temporary one
removed at the end, unless --work DIR names one to keep. Needs fusermount3, /dev/fuse,
cmp, cat, numpy and soundfile; the binary is --bin, else $ZW_BIN, else
target/release/zarr-wavfs.
"""

import argparse
import json
import math
import mmap
import os
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
PREAD_THREADS, MMAP_READERS, SEQ_READERS = 16, 2, 2
REOPEN_EVERY = 32  # reads per open (pread) or mapping (mmap)
MAX_READ = 1 << 20
SEQ_CHUNK = 128 << 10
CAT_EVERY = 4
EVICT_EVERY = 0.25
SAMPLE_EVERY = 5.0
HANG_SECS = 60.0
WARMUP = 0.2
RSS_FACTOR, RSS_SLACK = 1.25, 16 * MiB
FD_SPREAD, THREAD_SPREAD = 8, 4
MAX_LOGGED = 10_000
PER_DECADE = 100  # latency histogram buckets per factor of 10, from 0.1 us
KINDS = ["pread", "mmap", "seq", "cat", "evict"]
PHASES = [("default --cache-size", []), ("--cache-size 1MiB", ["--cache-size", "1MiB"])]

# (recording path in the archive, codec, rate, channels, soundfile subtype, seconds)
MATERIAL = [
    ("site1/mono16", "flac", 48000, 1, "PCM_16", 60),
    ("stereo24_96k", "flac", 96000, 2, "PCM_24", 45),
    ("site1/deep/six16", "flac", 48000, 6, "PCM_16", 30),
    ("octo24", "flac", 48000, 8, "PCM_24", 30),
    ("bats/bat384k", "flac", 384000, 1, "PCM_16", 30),
    ("site1/pcm_mono16_44k", "pcm", 44100, 1, "PCM_16", 60),
    ("pcm_stereo_f32", "pcm", 48000, 2, "FLOAT", 45),
    ("pcm_six24", "pcm", 48000, 6, "PCM_24", 30),
    ("site1/deep/pcm_octo_f32", "pcm", 48000, 8, "FLOAT", 20),
    ("site1/opus_mono", "opus", 48000, 1, "PCM_16", 60),
    ("opus_stereo_44k", "opus", 44100, 2, "PCM_16", 45),
    ("opus_six", "opus", 48000, 6, "PCM_16", 30),
    ("site1/deep/opus_octo", "opus", 48000, 8, "PCM_24", 20),
]


class Abort(Exception):
    """Ends the soak early with a message and an exit status."""

    def __init__(self, msg: str, status: int):
        super().__init__(msg)
        self.status = status


# ---------------------------------------------------------------------------------
# Processes and mounts

_children: set = set()
_mounts: set = set()
_lock = threading.Lock()


def spawn(cmd, **kw) -> subprocess.Popen:
    with _lock:
        p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        _children.add(p)
    return p


def reap(p: subprocess.Popen) -> int:
    if p.poll() is None:
        p.kill()
    rc = p.wait()
    with _lock:
        _children.discard(p)
    return rc


def is_mounted(mnt: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(mnt) for line in f)


def cleanup_all() -> None:
    for p in list(_children):
        reap(p)
    for mnt in list(_mounts):
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], stderr=subprocess.DEVNULL)
        _mounts.discard(mnt)


class Mount:
    """`zarr-wavfs mount -f` as a child; ready once it answers a listing."""

    def __init__(self, binary: Path, arch: Path, mnt: Path, extra: list):
        self.cmd = [binary, "mount", "-v", "-f", arch, mnt, *extra]
        self.mnt, self.log = mnt, mnt.with_name(mnt.name + ".log")
        self.proc = None
        self.exit = ""  # how the daemon ended

    def __enter__(self):
        self.mnt.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as err:
            self.proc = spawn(self.cmd, stdout=subprocess.DEVNULL, stderr=err)
        _mounts.add(self.mnt)
        t0 = time.monotonic()
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None or time.monotonic() - t0 > 30:
                reap(self.proc)
                raise Abort(f"mount did not come up ({' '.join(map(str, self.cmd))}):\n"
                            f"{self.log.read_text(errors='replace')}", 2)
            time.sleep(0.02)
        os.listdir(self.mnt)
        return self

    def kill(self) -> None:
        """For a hang: blocked readers get errors once the daemon is gone."""
        reap(self.proc)
        subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], stderr=subprocess.DEVNULL)

    def __exit__(self, *_):
        if self.proc.poll() is not None and not self.exit:
            self.exit = f"died during the phase (exit {self.proc.returncode})"
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)], stderr=subprocess.DEVNULL)
        try:
            rc = self.proc.wait(timeout=30)
            self.exit = self.exit or f"exit {rc} on unmount"
        except subprocess.TimeoutExpired:
            self.exit = self.exit or "did not exit within 30 s of the unmount"
        reap(self.proc)
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)],
                           stderr=subprocess.DEVNULL)
        _mounts.discard(self.mnt)

    def warnings(self) -> list:
        text = self.log.read_text(errors="replace")
        return [l for l in text.splitlines() if re.search(r"WARN|ERROR|panicked", l)]


# ---------------------------------------------------------------------------------
# Material, archive, oracles

@dataclass
class Target:
    """A recording: its file in the mount and its oracle."""
    name: str  # path in the mount, e.g. site1/mono16.wav
    oracle_path: Path
    size: int
    header: int  # offset of the first sample byte
    mnt: Path = None
    oracle: object = None  # mmap of the oracle


def signal_for(rng, rate: int, channels: int, secs: float) -> np.ndarray:
    """Per channel a rising sweep (ultrasonic above 96 kHz) under noise."""
    n = int(rate * secs)
    t = np.arange(n) / rate
    out = np.empty((n, channels), np.float32)
    for c in range(channels):
        f0 = rate / 10 if rate > 96000 else 220.0 * (c + 1)
        sweep = np.sin(2 * np.pi * (f0 * t + 0.5 * f0 / secs * t * t))
        out[:, c] = np.clip(0.3 * sweep + 0.1 * rng.standard_normal(n), -1, 0.999)
    return out


def wav_data_offset(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    i = 12
    while i + 8 <= len(head):
        cid, size = head[i:i + 4], struct.unpack("<I", head[i + 4:i + 8])[0]
        if cid == b"data":
            return i + 8
        i += 8 + size + (size & 1)
    raise Abort(f"no data chunk in {path}", 2)


def run_checked(cmd, cwd=None) -> None:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, timeout=1800)
    if r.returncode != 0:
        raise Abort(f"setup: {' '.join(map(str, cmd))} failed:\n"
                    f"{r.stderr.decode(errors='replace')}", 2)


def build(work: Path, binary: Path, seed: int) -> list:
    """Material, archive and oracles under `work`; the recordings as Targets."""
    import soundfile as sf
    arch, targets = work / "archive.zarr", []
    shutil.rmtree(arch, ignore_errors=True)
    for i, (path, codec, rate, channels, subtype, secs) in enumerate(MATERIAL):
        folder, stem = os.path.split(path)
        inp = Path("in") / f"{stem}.wav"
        (work / inp).parent.mkdir(parents=True, exist_ok=True)
        data = signal_for(np.random.default_rng([seed, i]), rate, channels, secs)
        sf.write(work / inp, data, rate, subtype=subtype, format="WAV")
        # Relative input paths: an Opus serial number is a hash of the path given.
        run_checked([binary, "import", arch, inp, "--into", folder, "--codec", codec],
                    cwd=work)
        (work / inp).unlink()
        oracle = work / "oracle" / f"{path}.wav"
        oracle.parent.mkdir(parents=True, exist_ok=True)
        run_checked([binary, "extract", arch, path, "-o", oracle])
        targets.append(Target(f"{path}.wav", oracle, oracle.stat().st_size,
                              wav_data_offset(oracle)))
    return targets


# ---------------------------------------------------------------------------------
# Counting and checking

def bucket(lat: float) -> int:
    return max(0, int(math.log10(max(lat, 1e-7) / 1e-7) * PER_DECADE))


class Stats:
    def __init__(self):
        self.reads = self.bytes = self.wrong_reads = self.wrong_bytes = self.errors = 0
        self.hist: dict = {}  # bucket -> reads
        self.max = 0.0

    def read(self, n: int, lat: float) -> None:
        self.reads += 1
        self.bytes += n
        b = bucket(lat)
        self.hist[b] = self.hist.get(b, 0) + 1
        self.max = max(self.max, lat)

    def merge(self, o: "Stats", latency=True) -> None:
        for k in ("reads", "bytes", "wrong_reads", "wrong_bytes", "errors"):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        if latency:
            for b, n in o.hist.items():
                self.hist[b] = self.hist.get(b, 0) + n
            self.max = max(self.max, o.max)

    def percentile(self, q: float):
        total, cum = sum(self.hist.values()), 0
        for b in sorted(self.hist):
            cum += self.hist[b]
            if cum >= q * total:
                return 1e-7 * 10 ** ((b + 0.5) / PER_DECADE)
        return None

    def to_json(self) -> dict:
        return {**vars(self), "hist": {str(b): n for b, n in self.hist.items()}}

    @classmethod
    def from_json(cls, d: dict) -> "Stats":
        s = cls()
        s.__dict__.update(d, hist={int(b): n for b, n in d["hist"].items()})
        return s


def compare(st: Stats, log, what: str, off: int, length: int, got: bytes, t: Target):
    want = t.oracle[off:off + length]
    if got == want:
        return
    m = min(len(got), len(want))
    diff = np.flatnonzero(np.frombuffer(got, np.uint8, m) != np.frombuffer(want, np.uint8, m)
                          ) if m else np.zeros(0)
    first = int(diff[0]) if diff.size else m
    st.wrong_reads += 1
    st.wrong_bytes += int(diff.size) + abs(len(got) - len(want))
    log(f"WRONG {what} {t.name} offset {off} length {length}: got {len(got)} bytes, "
        f"expected {len(want)}, {diff.size} differ, first difference at file offset "
        f"{off + first}")


def pick(rng: random.Random, t: Target):
    """(offset, length): log-uniform length; uniform, header or near/past-EOF offset."""
    n = min(MAX_READ, int(math.exp(rng.uniform(0, math.log(MAX_READ + 1)))))
    r = rng.random()
    if r < 0.15:
        return rng.randrange(t.header), n
    if r < 0.30:
        return rng.randint(max(0, t.size - 2 * n), t.size + 16), n
    return rng.randrange(t.size), n


class Worker:
    """One reader: its counts and, for the watchdog, the operation in flight."""

    def __init__(self, name: str):
        self.name = name
        self.stats = {k: Stats() for k in KINDS}
        self.since = None  # monotonic start of the operation in flight (or last progress)
        self.what = ""
        self.last_done = time.monotonic()

    def begin(self, what: str) -> None:
        self.what, self.since = what, time.monotonic()

    def end(self) -> None:
        self.since, self.last_done = None, time.monotonic()


class Log:
    def __init__(self, path: Path):
        self.f = open(path, "w")
        self.n, self.prefix = 0, ""
        self.lock = threading.Lock()

    def __call__(self, msg: str) -> None:
        with self.lock:
            self.n += 1
            if self.n <= MAX_LOGGED:
                self.f.write(f"{time.strftime('%H:%M:%S')} {self.prefix}{msg}\n")
            elif self.n == MAX_LOGGED + 1:
                self.f.write("... further wrong reads and errors are counted, not logged\n")
            self.f.flush()


# ---------------------------------------------------------------------------------
# Readers

def pread_loop(w: Worker, targets, rng, stop, log) -> None:
    st, fd, left, t = w.stats["pread"], None, 0, None
    while not stop.is_set():
        try:
            if left == 0:
                if fd is not None:
                    os.close(fd)
                    fd = None
                t = rng.choice(targets)
                w.begin(f"open {t.name}")
                fd = os.open(t.mnt, os.O_RDONLY)
                w.end()
                left = REOPEN_EVERY
            off, n = pick(rng, t)
            w.begin(f"pread {t.name} offset {off} length {n}")
            t0 = time.perf_counter()
            got = os.pread(fd, n, off)
            lat = time.perf_counter() - t0
            w.end()
            st.read(len(got), lat)
            compare(st, log, "pread", off, n, got, t)
            left -= 1
        except OSError as e:
            st.errors += 1
            log(f"ERROR {w.what}: {e}")
            w.end()
            left = 0
    if fd is not None:
        os.close(fd)


def read_whole(w: Worker, t: Target, stop, log) -> None:
    st, pos = w.stats["seq"], 0
    try:
        w.begin(f"open {t.name}")
        fd = os.open(t.mnt, os.O_RDONLY)
        w.end()
        try:
            while not stop.is_set():
                w.begin(f"read {t.name} offset {pos} length {SEQ_CHUNK}")
                t0 = time.perf_counter()
                got = os.read(fd, SEQ_CHUNK)
                lat = time.perf_counter() - t0
                w.end()
                st.read(len(got), lat)
                compare(st, log, "read", pos, SEQ_CHUNK, got, t)
                if not got:
                    break
                pos += len(got)
        finally:
            os.close(fd)
    except OSError as e:
        st.errors += 1
        log(f"ERROR {w.what}: {e}")
        w.end()


def cat_whole(w: Worker, t: Target, stop, log) -> None:
    st, pos = w.stats["cat"], 0
    w.begin(f"cat {t.name} at byte 0")
    t0 = time.perf_counter()
    p = spawn(["cat", t.mnt], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while not stop.is_set():
            piece = os.read(p.stdout.fileno(), SEQ_CHUNK)
            w.begin(f"cat {t.name} at byte {pos}")  # progress
            if not piece:
                break
            compare(st, log, "cat output", pos, len(piece), piece, t)
            pos += len(piece)
        if stop.is_set():
            return
        err = p.stderr.read().decode(errors="replace").strip()
        rc = p.wait()
    finally:
        p.stdout.close()
        p.stderr.close()
        reap(p)
        w.end()
    if rc != 0:
        st.errors += 1
        log(f"ERROR cat {t.name}: exit {rc} after {pos} bytes: {err}")
        return
    st.read(pos, time.perf_counter() - t0)
    if pos != t.size:
        st.wrong_reads += 1
        st.wrong_bytes += abs(t.size - pos)
        log(f"WRONG cat {t.name}: {pos} bytes, expected {t.size}")


def seq_loop(w: Worker, targets, rng, stop, log) -> None:
    k = 0
    while not stop.is_set():
        k += 1
        (cat_whole if k % CAT_EVERY == 0 else read_whole)(w, rng.choice(targets), stop, log)


def mmap_loop(w: Worker, targets, seed: str, deadline: float, stop, log) -> None:
    """Runs mmap reader processes until the deadline, one after another if one dies."""
    st, runs = w.stats["mmap"], 0
    files = [[t.name, str(t.mnt), str(t.oracle_path), t.size, t.header] for t in targets]
    while not stop.is_set() and time.monotonic() < deadline - 1:
        runs += 1
        spec = {"files": files, "seed": f"{seed}:{runs}", "secs": deadline - time.monotonic()}
        p = spawn([sys.executable, __file__, "--mmap-reader", json.dumps(spec)],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        w.begin(f"mmap reader (pid {p.pid}): no report")
        for line in p.stdout:
            batch = json.loads(line)
            st.merge(Stats.from_json(batch["stats"]))
            for msg in batch["log"]:
                log(msg)
            w.begin(f"mmap reader (pid {p.pid}): no report")
            w.last_done = time.monotonic()
        err = p.stderr.read().decode(errors="replace")[-2000:]
        p.stdout.close()
        p.stderr.close()
        rc = reap(p)
        if rc != 0 and not stop.is_set():
            st.errors += 1
            why = "killed by SIGBUS (an error on a mapped page)" if rc == -signal.SIGBUS \
                else f"exit {rc}"
            log(f"ERROR mmap reader pid {p.pid}: {why} {err}")
    w.end()


def mmap_reader(spec: dict) -> None:
    """The child of mmap_loop: JSON lines of Stats and log messages, every 0.5 s."""
    rng, deadline = random.Random(spec["seed"]), time.monotonic() + spec["secs"]
    targets = []
    for name, mnt, oracle, size, header in spec["files"]:
        with open(oracle, "rb") as f:
            targets.append(Target(name, Path(oracle), size, header, Path(mnt),
                                  mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)))
    st, logs, sent = Stats(), [], time.monotonic()
    while time.monotonic() < deadline:
        t = rng.choice(targets)
        try:
            fd = os.open(t.mnt, os.O_RDONLY)
            try:
                mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
        except OSError as e:
            st.errors += 1
            logs.append(f"ERROR mmap of {t.name}: {e}")
            continue
        with mm:
            for _ in range(REOPEN_EVERY):
                off, n = pick(rng, t)
                t0 = time.perf_counter()
                got = mm[off:off + n]
                st.read(len(got), time.perf_counter() - t0)
                compare(st, logs.append, "mmap slice", off, n, got, t)
                if time.monotonic() - sent >= 0.5:
                    print(json.dumps({"stats": st.to_json(), "log": logs}), flush=True)
                    st, logs, sent = Stats(), [], time.monotonic()
    print(json.dumps({"stats": st.to_json(), "log": logs}), flush=True)


def evict_loop(w: Worker, targets, stop, log) -> None:
    st = w.stats["evict"]
    try:
        fds = [os.open(t.mnt, os.O_RDONLY) for t in targets]
    except OSError as e:
        st.errors += 1
        log(f"ERROR evictor open: {e}")
        return
    try:
        while not stop.wait(EVICT_EVERY):
            for fd in fds:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as e:
        st.errors += 1
        log(f"ERROR posix_fadvise: {e}")
    finally:
        for fd in fds:
            os.close(fd)


def guarded(w: Worker, fn, *args) -> None:
    """A bug in this script fails the phase instead of silently idling the thread."""
    try:
        fn(w, *args)
    except Exception:
        w.stats["evict"].errors += 1
        args[-1](f"ERROR internal error in {w.name}: {traceback.format_exc()}")
        w.end()


# ---------------------------------------------------------------------------------
# Phases

@dataclass
class Sample:
    t: float
    rss: int
    fds: int
    threads: int
    cpu: float


def sample(pid: int, t: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    field_ = lambda k: int(re.search(rf"^{k}:\s+(\d+)", status, re.M).group(1))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return Sample(t, field_("VmRSS") * 1024, len(os.listdir(f"/proc/{pid}/fd")),
                  field_("Threads"), (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"))


@dataclass
class Phase:
    label: str
    secs: float = 0.0
    stats: dict = field(default_factory=lambda: {k: Stats() for k in KINDS})
    samples: list = field(default_factory=list)
    hang: str = ""
    exit: str = ""
    warnings: list = field(default_factory=list)

    def all(self) -> Stats:
        s = Stats()
        for k, st in self.stats.items():
            s.merge(st, latency=k != "cat")
        return s

    def criteria(self) -> list:
        """[(criterion, value, limit, ok)]"""
        a = self.all()
        warm = [s for s in self.samples if s.t >= WARMUP * self.secs] or self.samples
        rss = [s.rss for s in warm]
        fds = [s.fds for s in warm]
        thr = [s.threads for s in warm]
        rss_limit = RSS_FACTOR * statistics.median(rss) + RSS_SLACK
        return [
            ("correct", f"{a.wrong_reads} wrong reads, {a.errors} errors", "0", 
             a.wrong_reads == 0 and a.errors == 0),
            ("no hang", self.hang or f"slowest read {a.max:.2f} s", f"< {HANG_SECS:.0f} s",
             not self.hang),
            ("clean exit", self.exit, "exit 0 on unmount", self.exit == "exit 0 on unmount"),
            ("RSS flat", f"max {max(rss) / MiB:.1f} MiB",
             f"<= {RSS_FACTOR} x median {statistics.median(rss) / MiB:.1f} + "
             f"{RSS_SLACK // MiB} = {rss_limit / MiB:.1f} MiB", max(rss) <= rss_limit),
            ("fds flat", f"{max(fds)} - {min(fds)} = {max(fds) - min(fds)}",
             f"<= {FD_SPREAD}", max(fds) - min(fds) <= FD_SPREAD),
            ("threads flat", f"{max(thr)} - {min(thr)} = {max(thr) - min(thr)}",
             f"<= {THREAD_SPREAD}", max(thr) - min(thr) <= THREAD_SPREAD),
        ]

    def ok(self) -> bool:
        return bool(self.samples) and all(c[3] for c in self.criteria())


def check_mount(mnt: Path, targets) -> None:
    listed = sorted(str(p.relative_to(mnt)) for p in mnt.rglob("*") if p.is_file())
    if listed != sorted(t.name for t in targets):
        raise Abort(f"the mount lists {listed}, expected {sorted(t.name for t in targets)}", 1)
    for t in targets:
        r = subprocess.run(["cmp", t.mnt, t.oracle_path], capture_output=True, timeout=600)
        if r.returncode != 0:
            raise Abort(f"{t.name} in the mount is not what extract wrote: "
                        f"{(r.stdout + r.stderr).decode(errors='replace').strip()}", 1)


def run_phase(n: int, label: str, extra: list, secs: float, binary: Path, work: Path,
              targets, seed: int, log: Log) -> Phase:
    ph = Phase(label)
    log.prefix = f"[phase {n}] "
    with Mount(binary, work / "archive.zarr", work / f"mnt{n}", extra) as m:
        for t in targets:
            t.mnt = m.mnt / t.name
        if n == 1:
            check_mount(m.mnt, targets)
        stop, t0 = threading.Event(), time.monotonic()
        deadline = t0 + secs
        jobs = [(f"pread{i}", pread_loop, targets, random.Random(f"{seed}:{n}:pread{i}"),
                 stop, log) for i in range(PREAD_THREADS)]
        jobs += [(f"mmap{i}", mmap_loop, targets, f"{seed}:{n}:mmap{i}", deadline, stop, log)
                 for i in range(MMAP_READERS)]
        jobs += [(f"seq{i}", seq_loop, targets, random.Random(f"{seed}:{n}:seq{i}"), stop,
                  log) for i in range(SEQ_READERS)]
        jobs += [("evictor", evict_loop, targets, stop, log)]
        workers, threads = [], []
        for name, fn, *args in jobs:
            w = Worker(name)
            workers.append(w)
            threads.append(threading.Thread(target=guarded, args=(w, fn, *args), daemon=True))
            threads[-1].start()
        next_sample = t0
        try:
            while (now := time.monotonic()) < deadline:
                if now >= next_sample:
                    ph.samples.append(sample(m.proc.pid, now - t0))
                    next_sample += SAMPLE_EVERY
                if m.proc.poll() is not None:
                    break
                stuck = [w for w in workers if w.since and now - w.since > HANG_SECS]
                idle = now - max(w.last_done for w in workers if w.name != "evictor")
                if stuck or idle > HANG_SECS:
                    ph.hang = (f"{stuck[0].name}: {stuck[0].what}: no return for "
                               f"{now - stuck[0].since:.0f} s" if stuck else
                               f"no read completed for {idle:.0f} s")
                    break
                time.sleep(0.5)
            if m.proc.poll() is None:
                ph.samples.append(sample(m.proc.pid, time.monotonic() - t0))
        finally:
            ph.secs = time.monotonic() - t0
            stop.set()
            if ph.hang:
                m.kill()
                m.exit = "killed after the hang"
            for th in threads:
                th.join(timeout=HANG_SECS)
            if any(th.is_alive() for th in threads) and not ph.hang:
                ph.hang = "readers still blocked 60 s after the phase ended: " + ", ".join(
                    f"{w.name}: {w.what}" for w, th in zip(workers, threads) if th.is_alive())
                m.kill()
                m.exit = "killed after the hang"
    ph.exit = m.exit
    ph.warnings = m.warnings()
    for w in workers:
        for k, st in w.stats.items():
            ph.stats[k].merge(st)
    return ph


# ---------------------------------------------------------------------------------
# Report

def ms(x) -> str:
    return "-" if x is None else f"{x * 1000:.3g}" if x < 1 else f"{x * 1000:.0f}"


def report(phases, targets, minutes: float, binary: Path) -> str:
    audio = sum(m[5] for m in MATERIAL)
    out = [f"# zarr-wavfs soak: {minutes:g} min, {time.strftime('%Y-%m-%d %H:%M %Z')}", "",
           f"Binary `{binary}`; archive of {len(targets)} recordings, "
           f"{audio / 60:.1f} min of audio, {sum(t.size for t in targets) / MiB:.0f} MiB as "
           "WAV; load: 16 pread threads, 2 mmap readers, 2 sequential readers (every 4th "
           "file with `cat`), page cache dropped every 0.25 s.", "",
           "| recording | codec | rate | channels | input | MiB |", "|---|---|--:|--:|---|--:|"]
    for (path, codec, rate, ch, sub, _), t in zip(MATERIAL, targets):
        out.append(f"| {t.name} | {codec} | {rate} | {ch} | {sub} | {t.size / MiB:.1f} |")
    out += ["", "| phase | duration | reads | GiB read | wrong reads | wrong bytes | errors | "
            "p50 ms | p99 ms | max ms | RSS start/median/max MiB | fds min/max | result |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for ph in phases:
        a, s = ph.all(), ph.samples
        rss = (f"{s[0].rss / MiB:.0f} / {statistics.median(x.rss for x in s) / MiB:.0f} / "
               f"{max(x.rss for x in s) / MiB:.0f}" if s else "-")
        fds = f"{min(x.fds for x in s)} / {max(x.fds for x in s)}" if s else "-"
        out.append(f"| {ph.label} | {ph.secs / 60:.1f} min | {a.reads} | "
                   f"{a.bytes / 2**30:.2f} | {a.wrong_reads} | {a.wrong_bytes} | {a.errors} | "
                   f"{ms(a.percentile(0.5))} | {ms(a.percentile(0.99))} | {ms(a.max)} | "
                   f"{rss} | {fds} | {'PASS' if ph.ok() else 'FAIL'} |")
    for n, ph in enumerate(phases, 1):
        out += ["", f"## Phase {n}: {ph.label}, {ph.secs / 60:.1f} min", "",
                "| reader | reads | GiB | wrong reads | wrong bytes | errors | p50 ms | "
                "p99 ms | max ms |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
        rows = [(k, ph.stats[k]) for k in KINDS if k != "evict" or ph.stats[k].errors]
        for k, st in rows + [("**all**", ph.all())]:
            out.append(f"| {k} | {st.reads} | {st.bytes / 2**30:.2f} | {st.wrong_reads} | "
                       f"{st.wrong_bytes} | {st.errors} | {ms(st.percentile(0.5))} | "
                       f"{ms(st.percentile(0.99))} | {ms(st.max)} |")
        s = ph.samples
        if s:
            out += ["", f"Daemon: RSS start/median/max {s[0].rss / MiB:.1f} / "
                    f"{statistics.median(x.rss for x in s) / MiB:.1f} / "
                    f"{max(x.rss for x in s) / MiB:.1f} MiB, fds {min(x.fds for x in s)}-"
                    f"{max(x.fds for x in s)}, threads {min(x.threads for x in s)}-"
                    f"{max(x.threads for x in s)}, CPU {s[-1].cpu - s[0].cpu:.0f} s; "
                    f"{ph.exit}.", "", "| criterion | value | limit | result |",
                    "|---|---|---|---|"]
            out += [f"| {c} | {v} | {lim} | {'PASS' if ok else 'FAIL'} |"
                    for c, v, lim, ok in ph.criteria()]
            out += ["", "Samples (seconds: RSS MiB / fds / threads):", "", "```"]
            cells = [f"{x.t:.0f}:{x.rss / MiB:.0f}/{x.fds}/{x.threads}" for x in s]
            out += [" ".join(cells[i:i + 10]) for i in range(0, len(cells), 10)] + ["```"]
        else:
            out += ["", f"No samples of the daemon ({ph.exit}); FAIL."]
        if ph.hang:
            out += ["", f"**Hang**: {ph.hang}"]
        out += ["", f"Mount log: {len(ph.warnings)} warning/error lines."]
        if ph.warnings:
            out += ["", "```"] + ph.warnings[:20] + ["```"]
    ok = len(phases) == len(PHASES) and all(ph.ok() for ph in phases)
    out += ["", f"**Result: {'PASS' if ok else 'FAIL'}**", ""]
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--mmap-reader":
        mmap_reader(json.loads(sys.argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("minutes", nargs="?", type=float, default=60.0)
    ap.add_argument("--bin", type=Path, default=Path(os.environ.get(
        "ZW_BIN", REPO / "target/release/zarr-wavfs")))
    ap.add_argument("--report", type=Path, default=Path("/tmp/soak-report.md"))
    ap.add_argument("--log", type=Path, default=Path("/tmp/soak-log.txt"))
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--work", type=Path, help="work directory to use and keep")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda s, _f: (_ for _ in ()).throw(KeyboardInterrupt()))
    binary = a.bin.resolve()
    work = (a.work or Path(tempfile.mkdtemp(prefix="zw-soak-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log, phases = Log(a.log), []
    try:
        if not binary.is_file():
            raise Abort(f"no binary {binary} (cargo build --release, or --bin)", 2)
        print(f"soak: building the archive and oracles in {work}", file=sys.stderr)
        targets = build(work, binary, a.seed)
        for t in targets:
            with open(t.oracle_path, "rb") as f:
                t.oracle = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        for n, (label, extra) in enumerate(PHASES, 1):
            print(f"soak: phase {n}, {label}, {a.minutes / 2:g} min", file=sys.stderr)
            phases.append(run_phase(n, label, extra, a.minutes * 30, binary, work, targets,
                                    a.seed, log))
            if phases[-1].hang:
                break
        text = report(phases, targets, a.minutes, binary)
        print(text)
        a.report.write_text(text)
        print(f"soak: report {a.report}, log {a.log} ({log.n} wrong reads and errors)",
              file=sys.stderr)
        return 0 if len(phases) == len(PHASES) and all(ph.ok() for ph in phases) else 1
    except Abort as e:
        print(f"soak: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130
    finally:
        cleanup_all()
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
