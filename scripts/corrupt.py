#!/usr/bin/env python3
"""Corruption differential: damage one file of a real archive, check what is served.

    python3 scripts/corrupt.py [--variants N] [--seed S] [--bin PATH] [--report FILE]
                               [--log FILE] [--jobs J] [--timeout SECS]
                               [--only REGEX] [--variant I[,I...]] [--keep-failures DIR]
    bash scripts/corrupt.sh [VARIANTS] [SEED] [more options]

Builds three archives from deterministic material (FLAC, PCM, Opus; mono to 8 channels,
16-bit, 24-bit, float, 8-bit, 250 kHz, kept chunks, folders), takes the oracle (the
`extract`ed WAV of every recording and a pool of --start/--end parts, checked against a
mount of the intact archive), then for each variant damages one file of a fresh copy
of one archive and runs, each under --timeout (default 60 s): `ls`, `info`, `extract`
of the whole recording and of 3 parts, `verify`, and a mount with a `cmp` of every file
and 20 random preads, all compared with the oracle.

Variant I is fully determined by (SEED, I): the file kind × damage cell comes from a
seeded round robin over every cell, the file, offset, bytes or JSON edit from
Random(f"{SEED}:{I}"). `--variant I` re-runs just that variant (the archives are
rebuilt identically), so every logged finding is reproducible.

File kinds: the archive's and folders' `zarr.json`, the manifest, each codec's recording
`zarr.json`, and every array's `zarr.json` and chunks/shards (FLAC and Opus `stream`,
`index`, Opus `checkpoints` positions/digests/states, PCM `samples` and
`chunk_crc32c`). Damages: `flip` (one bit), `overwrite` (1-64 random bytes), `truncate`,
`delete`, `dir` (replaced by an empty directory) and, for JSON files, `json` (one value
changed: numbers +-1, strings altered, booleans negated, or one key removed).

Outcome of each check (and of a variant: the worst of its checks):
  exact       served bytes equal the oracle (for verify: exit 0, every recording checked)
  error       non-zero exit, EIO or a refused mount: the damage was detected
  vanished    exit 0 but a recording is missing (ls, verify's count, the mount's listing)
  DIFFERENT   exit 0 / a successful read with bytes other than the oracle's
  crash/hang  a signal, exit 101, "panicked" on stderr, or the timeout
`ls` and `info` exiting 0 with other text than the intact archive's (sizes on disk
aside) are counted as `changed`, a note, not a failure. The report (markdown, --report,
default /tmp/corrupt-report.md) has the counts per file kind × damage and per check;
the log (--log, default /tmp/corrupt-log.txt) describes every DIFFERENT, crash/hang and
vanished variant with its damage, command and first differing offset, and the damaged
archive is kept under --keep-failures (default /tmp/corrupt-failures). Every variant's
record is also written as JSON lines next to the log (.jsonl).

Exit status: 0 when no variant gave DIFFERENT or crash/hang, 1 otherwise, 2 on a setup
failure. Mounts, daemons and the work directory are cleaned up on exit, failure or
Ctrl-C. Needs fusermount3 and /dev/fuse, numpy and soundfile; the binary is --bin, else
$ZW_BIN, else target/release/zarr-wavfs.
"""

import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTCOMES = ["exact", "error", "vanished", "DIFFERENT", "crash/hang"]  # mild to worst
RANK = {o: i for i, o in enumerate(OUTCOMES)}
DAMAGES = ["flip", "overwrite", "truncate", "delete", "dir", "json"]
CHECKS = ["ls", "info", "extract", "extract-part", "verify", "mount-list", "mount-cmp",
          "mount-pread"]
PARTS_PER_RECORDING = 8  # the pool of --start/--end parts with an oracle each
PARTS_PER_VARIANT = 3
PREADS_PER_VARIANT = 20
JSON_ATTR_WEIGHT = 5  # recording zarr.json x json cells are this many times as frequent

# ---------------------------------------------------------------------------------
# Processes, mounts and cleanup

_children: set = set()  # Popen objects of daemons still running
_mounts: set = set()  # mount points that may still be mounted
_lock = threading.Lock()


def is_mounted(mnt: Path) -> bool:
    needle = f" {mnt} "
    with open("/proc/self/mountinfo") as f:
        return any(needle in line for line in f)


def unmount(mnt: Path) -> None:
    if is_mounted(mnt):
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], stderr=subprocess.DEVNULL)
    with _lock:
        _mounts.discard(mnt)


def cleanup_all() -> None:
    for mnt in list(_mounts):
        unmount(mnt)
    for p in list(_children):
        if p.poll() is None:
            p.kill()
            p.wait()
        _children.discard(p)


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class Run:
    cmd: list
    rc: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    secs: float

    @property
    def crashed(self) -> bool:
        return (self.timed_out or self.rc is None or self.rc < 0 or self.rc == 101
                or b"panicked" in self.stderr)

    def why(self) -> str:
        if self.timed_out:
            return f"timeout after {self.secs:.0f} s"
        if self.rc is not None and self.rc < 0:
            return f"killed by signal {-self.rc}"
        if b"panicked" in self.stderr:
            line = next(l for l in self.stderr.decode(errors="replace").splitlines()
                        if "panicked" in l)
            return f"exit {self.rc}, {line.strip()}"
        return f"exit {self.rc}"


def run(cmd, timeout: float, cwd=None) -> Run:
    t0 = time.monotonic()
    with _lock:
        p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                             start_new_session=True)
        _children.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
        return Run(cmd, p.returncode, out, err, False, time.monotonic() - t0)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return Run(cmd, None, out, err, True, time.monotonic() - t0)
    finally:
        with _lock:
            _children.discard(p)


def shell(cmd) -> str:
    return " ".join(str(c) if re.fullmatch(r"[\w./:=+-]+", str(c)) else repr(str(c))
                    for c in cmd)


# ---------------------------------------------------------------------------------
# Material and archives

def write_wav(path: Path, data, rate: int, subtype: str, extra_chunks=()) -> None:
    """A WAV of `data` (frames x channels, float in [-1, 1)) with extra chunks after fmt."""
    import numpy as np
    import soundfile as sf
    tmp = path.with_suffix(".tmp.wav")
    sf.write(tmp, np.asarray(data), rate, subtype=subtype, format="WAV")
    raw = tmp.read_bytes()
    tmp.unlink()
    chunks, i = [], 12
    while i + 8 <= len(raw):
        cid, size = raw[i:i + 4], struct.unpack("<I", raw[i + 4:i + 8])[0]
        chunks.append((cid, raw[i + 8:i + 8 + size]))
        i += 8 + size + (size & 1)
    out = []
    for cid, body in chunks:
        if cid not in (b"fmt ", b"data"):
            continue  # libsndfile's PEAK/fact chunks: keep the material minimal
        out.append(cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1))
        if cid == b"fmt ":
            for xid, xbody in extra_chunks:
                out.append(xid + struct.pack("<I", len(xbody)) + xbody
                           + b"\0" * (len(xbody) & 1))
    body = b"WAVE" + b"".join(out)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def make_material(d: Path) -> None:
    """Deterministic inputs: numpy's PCG64 with fixed seeds, testdata files."""
    import numpy as np
    import soundfile as sf
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20250601)

    def tones(secs, rate, channels, level=0.3):
        t = np.arange(int(secs * rate)) / rate
        cols = []
        for c in range(channels):
            f = 220.0 * (c + 1) * 1.5 ** (c % 3)
            sweep = np.sin(2 * np.pi * (f + 40 * t) * t)
            cols.append(level * (0.6 * sweep + 0.4 * rng.uniform(-1, 1, t.size)))
        return np.stack(cols, axis=1)

    dawn, _ = sf.read(REPO / "testdata/20250601_040000.wav", dtype="float64")
    dawn12 = np.tile(dawn, 2)[:, None]  # 12 s
    icmt = (b"Recorded at 04:00:00 01/06/2025 (UTC) by AudioMoth 24F3190361DA7D31 at "
            b"medium gain while battery was greater than 4.9V and temperature was 11.8C.\0")
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(icmt)) + icmt
    cue = struct.pack("<I", 2) + b"".join(
        struct.pack("<II4sIII", n, pos, b"data", 0, 0, pos) for n, pos in
        ((1, 48000), (2, 400000)))
    chunks = [(b"LIST", info), (b"cue ", cue)]
    write_wav(d / "20250601_040000.wav", dawn12, 48000, "PCM_16", chunks)
    shutil.copy(REPO / "testdata/stereo_music.wav", d / "stereo_music.wav")
    shutil.copy(REPO / "testdata/sweep.opus", d / "sweep.opus")
    write_wav(d / "oct24_4s.wav", tones(4, 48000, 8), 48000, "PCM_24")
    write_wav(d / "oct24_12s.wav", tones(12, 48000, 8), 48000, "PCM_24")
    write_wav(d / "oct16_6s.wav", tones(6, 48000, 8), 48000, "PCM_16")
    write_wav(d / "bat250.wav", tones(3, 250000, 1, 0.2), 250000, "PCM_16")
    write_wav(d / "bat250_u8.wav", tones(2, 250000, 1, 0.5), 250000, "PCM_U8")
    write_wav(d / "stereo_f32.wav", tones(6, 48000, 2, 0.5), 48000, "FLOAT")


# archive -> [(input, --into folder, --codec)]; the recording's path is folder/stem.
ARCHIVES = {
    "flac": [("20250601_040000.wav", "site1", "flac"), ("stereo_music.wav", "", "flac"),
             ("oct24_4s.wav", "site1/deep", "flac"), ("bat250.wav", "", "flac")],
    "pcm": [("20250601_040000.wav", "site1", "pcm"), ("stereo_f32.wav", "", "pcm"),
            ("oct24_12s.wav", "site1/deep", "pcm"), ("bat250_u8.wav", "", "pcm")],
    "opus": [("sweep.opus", "", None), ("20250601_040000.wav", "site1", "opus"),
             ("stereo_music.wav", "", "opus"), ("oct16_6s.wav", "site1/deep", "opus")],
}


@dataclass
class Recording:
    archive: str
    path: str  # archive-relative, without .wav
    frames: int
    oracle: Path
    parts: list = field(default_factory=list)  # [(start, end, oracle Path)]
    size: int = 0


def wav_data_offset(b: bytes) -> int:
    """Offset of the data chunk's first sample byte in a RIFF/RF64 file, or -1."""
    i = 12
    while i + 8 <= len(b):
        cid, size = b[i:i + 4], struct.unpack("<I", b[i + 4:i + 8])[0]
        if cid == b"data":
            return i + 8
        i += 8 + size + (size & 1)
    return -1


def wav_chunk_at(b: bytes, off: int) -> str:
    """Which part of a WAV file's header byte `off` is in, e.g. 'chunk "bext" + 12'."""
    if off < 12:
        return "RIFF header"
    i = 12
    while i + 8 <= len(b):
        cid, size = b[i:i + 4], struct.unpack("<I", b[i + 4:i + 8])[0]
        if off < i + 8 + size + (size & 1):
            return f"chunk {cid.decode(errors='replace')!r} + {off - i}"
        i += 8 + size + (size & 1)
    return "after the last chunk"


def parse_ls(text: str) -> list:
    """Recording paths (without .wav) of `ls` output: a tree indented 2 spaces a level."""
    paths, stack = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.strip().split("  ")[0]
        del stack[depth:]
        if name.endswith("/"):
            stack.append(name[:-1])
        else:
            paths.append("/".join(stack + [name.removesuffix(".wav")]))
    return paths


def normalise_ls(text: str) -> str:
    return re.sub(r"\([^)]*stored[^)]*\)", "(stored)", text)


def normalise_info(text: str) -> str:
    keep = [l for l in text.splitlines()
            if not l.startswith(("audio on disk:", "index:", "checkpoints:"))]
    return "\n".join(keep)


class SetupError(Exception):
    pass


class Setup:
    """Pristine archives, their file lists and the oracles."""

    def __init__(self, work: Path, binary: Path, timeout: float):
        self.work, self.bin, self.timeout = work, binary, timeout
        self.recordings: dict = {}  # archive -> [Recording]
        self.ls: dict = {}
        self.info: dict = {}  # (archive, path) -> normalised info text
        self.files: dict = {}  # kind -> [(archive, relpath)]
        self.stamp: dict = {}

    def build(self) -> None:
        mat = self.work / "in"
        make_material(mat)
        for name, items in ARCHIVES.items():
            arch = self.work / "pristine" / name
            recs = []
            for inp, into, codec in items:
                # Relative input paths: an Opus serial number is a hash of the path given.
                cmd = [self.bin, "import", arch, f"in/{inp}"]
                cmd += ["--into", into] if into else []
                cmd += ["--codec", codec] if codec else []
                r = run(cmd, 600, cwd=self.work)
                if r.rc != 0:
                    raise SetupError(f"setup: {shell(cmd)} failed: {r.stderr.decode()}")
                path = "/".join(p for p in (into, Path(inp).stem) if p)
                recs.append(Recording(name, path, 0, self.work / "oracle" / name /
                                      f"{path}.wav"))
            self.recordings[name] = recs
        self.take_oracles()
        self.classify_files()
        self.stamp = self.snapshot()

    def bin_cmd(self, *args):
        return [self.bin, *args]

    def take_oracles(self) -> None:
        rng = random.Random("parts")
        for name, recs in self.recordings.items():
            arch = self.work / "pristine" / name
            r = run(self.bin_cmd("verify", arch), 600)
            if r.rc != 0:
                raise SetupError(f"setup: intact {name} archive fails verify:\n"
                                 f"{r.stdout.decode()}{r.stderr.decode()}")
            r = run(self.bin_cmd("ls", arch), 60)
            if r.rc != 0 or sorted(parse_ls(r.stdout.decode())) != sorted(
                    x.path for x in recs):
                raise SetupError(f"setup: ls of intact {name}: {r.stdout.decode()}")
            self.ls[name] = normalise_ls(r.stdout.decode())
            for rec in recs:
                r = run(self.bin_cmd("info", arch, rec.path), 60)
                if r.rc != 0:
                    raise SetupError(f"setup: info {rec.path}: {r.stderr.decode()}")
                self.info[(name, rec.path)] = normalise_info(r.stdout.decode())
                rec.frames = int(re.search(r"^frames:\s+(\d+)", r.stdout.decode(),
                                           re.M).group(1))
                rec.oracle.parent.mkdir(parents=True, exist_ok=True)
                r = run(self.bin_cmd("extract", arch, rec.path, "-o", rec.oracle), 600)
                if r.rc != 0:
                    raise SetupError(f"setup: extract {rec.path}: {r.stderr.decode()}")
                whole = rec.oracle.read_bytes()
                rec.size = len(whole)
                d0 = wav_data_offset(whole)
                bpf = (len(whole) - d0) // rec.frames
                n = rec.frames
                spans = [(0, n), (0, 1), (n - 1, n), (n // 3, n // 3 + 4096)]
                while len(spans) < PARTS_PER_RECORDING:
                    a = rng.randrange(n)
                    spans.append((a, rng.randrange(a + 1, n + 1)))
                for k, (a, b) in enumerate(spans):
                    out = rec.oracle.with_name(f"{Path(rec.path).name}.part{k}.wav")
                    cmd = self.bin_cmd("extract", arch, rec.path, "--start", f"{a}f",
                                       "--end", f"{b}f", "-o", out)
                    r = run(cmd, 600)
                    part = out.read_bytes() if r.rc == 0 else b""
                    p0 = wav_data_offset(part)
                    if r.rc != 0 or part[p0:] != whole[d0 + a * bpf:d0 + b * bpf]:
                        raise SetupError(f"setup: {shell(cmd)} is not the oracle's slice")
                    rec.parts.append((a, b, out))
            # The mount of the intact archive must serve exactly the extracted files.
            with Mount(self, arch, self.work / "mnt-setup") as m:
                if m.start_run:
                    raise SetupError(f"mount of intact {name}: {m.start_run.why()}: "
                                     f"{m.start_run.stderr.decode()}")
                res = m.read(recs, [], self.timeout * 4)
            for rec in recs:
                got = res.get("files", {}).get(rec.path + ".wav", {})
                if got.get("result") != "exact":
                    raise SetupError(f"setup: the mount of intact {name} does not serve "
                                     f"{rec.path}.wav as extract does: {got} {res}")

    def classify_files(self) -> None:
        for name, recs in self.recordings.items():
            arch = self.work / "pristine" / name
            codec_of = {}
            for rec in recs:
                meta = json.loads((arch / rec.path / "zarr.json").read_text())
                codec_of[rec.path] = meta["attributes"]["zarr_wavfs"]["codec"]
            for p in sorted(arch.rglob("*")):
                if not p.is_file():
                    continue
                rel = p.relative_to(arch).as_posix()
                kind = self.kind_of(rel, codec_of)
                if kind:
                    self.files.setdefault(kind, []).append((name, rel))

    @staticmethod
    def kind_of(rel: str, codec_of: dict) -> str | None:
        if rel.startswith(".zarr-wavfs-staging/") or rel.endswith(".lock"):
            return None
        if rel == "zarr.json":
            return "archive zarr.json"
        if rel == ".zarr-wavfs-manifest.json":
            return "manifest"
        for rec, codec in codec_of.items():
            if rel.startswith(rec + "/"):
                sub = rel[len(rec) + 1:]
                if sub == "zarr.json":
                    return f"{codec} recording zarr.json"
                parts = sub.split("/")
                array = "/".join(p for p in parts[:-1] if p != "c" and not p.isdigit())
                what = "zarr.json" if parts[-1] == "zarr.json" else (
                    "shard" if array in ("samples", "checkpoints/states") else "chunk")
                return f"{codec} {array or parts[0]} {what}".replace(
                    "checkpoints/", "")
        return "folder zarr.json" if rel.endswith("zarr.json") else None

    def snapshot(self) -> dict:
        out = {}
        for p in (self.work / "pristine").rglob("*"):
            st = p.lstat()
            out[str(p)] = (st.st_size, st.st_mtime_ns, st.st_ino)
        return out

    def recording_of(self, archive: str, rel: str):
        """The recording a file belongs to (the deepest whose path prefixes it)."""
        recs = [r for r in self.recordings[archive] if rel.startswith(r.path + "/")]
        return max(recs, key=lambda r: len(r.path)) if recs else None


class Mount:
    """`mount --foreground` of an archive in the background; unmounted on exit."""

    def __init__(self, setup: Setup, arch: Path, mnt: Path):
        self.setup, self.arch, self.mnt = setup, arch, mnt
        self.proc = None
        self.start_run = None  # a Run when the daemon exited before mounting
        self.errlog = mnt.with_name(mnt.name + ".log")

    def __enter__(self):
        self.mnt.mkdir(parents=True, exist_ok=True)
        with _lock, open(self.errlog, "wb") as err:
            self.proc = subprocess.Popen(
                [str(self.setup.bin), "mount", "--foreground", str(self.arch),
                 str(self.mnt)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True)
            _children.add(self.proc)
            _mounts.add(self.mnt)
        t0 = time.monotonic()
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None or time.monotonic() - t0 > self.setup.timeout:
                timed_out = self.proc.poll() is None
                self.stop()
                self.start_run = Run(["mount", "--foreground", self.arch, self.mnt],
                                     self.proc.returncode, b"", self.stderr(), timed_out,
                                     time.monotonic() - t0)
                break
            time.sleep(0.02)
        return self

    def stderr(self) -> bytes:
        try:
            return self.errlog.read_bytes()
        except OSError:
            return b""

    def read(self, recs, preads, timeout):
        """Listing, whole-file comparison and preads, in a child process (it may hang)."""
        spec = {"mnt": str(self.mnt),
                "files": [(r.path + ".wav", str(r.oracle)) for r in recs],
                "preads": preads}
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, __file__, "--mount-reader", json.dumps(spec)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Readers blocked on the daemon: killing the daemon aborts the connection.
            self.kill()
            try:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate(timeout=30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
            return {"hang": f"reader timeout after {time.monotonic() - t0:.0f} s"}
        try:
            return json.loads(out)
        except ValueError:
            return {"reader_failed": err.decode(errors="replace")[-2000:]}

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        unmount(self.mnt)

    def stop(self) -> Run:
        """Unmount and wait for the daemon; its Run tells how it ended."""
        t0 = time.monotonic()
        timed_out = False
        if self.proc.poll() is None and is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)], stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=self.setup.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.proc.kill()
            self.proc.wait()
        unmount(self.mnt)
        with _lock:
            _children.discard(self.proc)
        return Run(["mount"], self.proc.returncode, b"", self.stderr(), timed_out,
                   time.monotonic() - t0)

    def __exit__(self, *exc):
        if self.proc.poll() is None or is_mounted(self.mnt):
            self.end = self.stop()
        else:
            self.end = Run(["mount"], self.proc.returncode, b"", self.stderr(), False, 0)
            with _lock:
                _children.discard(self.proc)


def mount_reader(spec_json: str) -> None:
    """Child process of Mount.read: prints a JSON report of what the mount serves."""
    spec = json.loads(spec_json)
    mnt = spec["mnt"]
    res = {"listing": [], "walk_errors": [], "files": {}, "preads": []}
    for root, _dirs, files in os.walk(mnt, onerror=lambda e: res["walk_errors"].append(
            f"{e.filename}: {e.strerror}")):
        for f in files:
            res["listing"].append(os.path.relpath(os.path.join(root, f), mnt))
    oracles = {}
    for rel, oracle in spec["files"]:
        want = oracles[rel] = Path(oracle).read_bytes()
        if rel not in res["listing"]:
            continue
        got = {"result": "exact"}
        try:
            st = os.stat(os.path.join(mnt, rel))
            got["size"] = st.st_size
            with open(os.path.join(mnt, rel), "rb") as f:
                pos = 0
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    if b != want[pos:pos + len(b)]:
                        got.update(result="DIFFERENT", offset=pos + first_diff(
                            b, want[pos:pos + len(b)]))
                        break
                    pos += len(b)
                if got["result"] == "exact" and pos != len(want):
                    got.update(result="DIFFERENT", offset=pos)
                got["read"] = pos
        except OSError as e:
            got.update(result="error", errno=e.errno, strerror=e.strerror)
        res["files"][rel] = got
    for rel, off, n in spec["preads"]:
        want = oracles[rel][off:off + n]
        if rel not in res["listing"]:
            continue
        item = {"file": rel, "offset": off, "length": n}
        try:
            fd = os.open(os.path.join(mnt, rel), os.O_RDONLY)
            try:  # a short read is legal (FUSE splits reads): read on to n or EOF
                b = b""
                while len(b) < n:
                    more = os.pread(fd, n - len(b), off + len(b))
                    if not more:
                        break
                    b += more
            finally:
                os.close(fd)
            if b == want:
                item["result"] = "exact"
            else:
                item.update(result="DIFFERENT", got=len(b),
                            first=off + first_diff(b, want))
        except OSError as e:
            item.update(result="error", errno=e.errno, strerror=e.strerror)
        res["preads"].append(item)
    print(json.dumps(res))


def first_diff(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # binary search on equal prefixes
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------
# Damages

def json_edits(obj, path=()):
    """Every single-value change of a JSON document: (path, op)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path + (k,), "remove"
            yield from json_edits(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from json_edits(v, path + (i,))
    else:
        yield path, "change"


def alter_string(s: str, rng: random.Random) -> str:
    r = rng.random()
    if not s or r < 0.15:
        return s + "x"
    if r < 0.3:
        return ""
    i = rng.randrange(len(s))
    c = s[i]
    pools = ["0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    pool = next((p for p in pools if c in p), "x_")
    new = rng.choice([x for x in pool if x != c] or ["y"])
    return s[:i] + new + s[i + 1:]


def damage_json(target: Path, rng: random.Random) -> str:
    text = target.read_text()
    doc = json.loads(text)
    edits = list(json_edits(doc))
    path, op = edits[rng.randrange(len(edits))]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    old = parent[key]
    where = "/".join(map(str, path))
    if op == "remove":
        del parent[key]
        what = f"removed key {where}"
    else:
        if isinstance(old, bool):
            new = not old
        elif isinstance(old, (int, float)):
            new = old + rng.choice((-1, 1))
        elif isinstance(old, str):
            new = alter_string(old, rng)
        else:
            new = 0
        parent[key] = new
        show = lambda v: json.dumps(v)[:80]
        what = f"{where}: {show(old)} -> {show(new)}"
    indent = 2 if "\n " in text else None
    target.unlink()
    target.write_text(json.dumps(doc, indent=indent))
    return what


def apply_damage(target: Path, damage: str, rng: random.Random) -> str:
    """Damages the (hard-linked) file: it is always replaced, never written in place."""
    data = target.read_bytes()
    size = len(data)
    if damage == "json":
        return damage_json(target, rng)
    target.unlink()
    if damage == "delete":
        return "deleted"
    if damage == "dir":
        target.mkdir()
        return "replaced by an empty directory"
    b = bytearray(data)
    if damage == "flip" and size:
        off, bit = rng.randrange(size), rng.randrange(8)
        b[off] ^= 1 << bit
        what = f"bit {bit} of byte {off} flipped (0x{data[off]:02x} -> 0x{b[off]:02x})"
    elif damage == "overwrite" and size:
        n = rng.randint(1, min(64, size))
        off = rng.randrange(size - n + 1)
        new = bytes(rng.randrange(256) for _ in range(n))
        if new[0] == data[off]:
            new = bytes([new[0] ^ 0xFF]) + new[1:]
        b[off:off + n] = new
        what = f"{n} bytes at {off} overwritten with {new.hex()}"
    elif damage == "truncate" and size:
        n = rng.randrange(size)
        del b[n:]
        what = f"truncated from {size} to {n} bytes"
    else:
        what = f"{damage} of an empty file: deleted"
        return what
    target.write_bytes(bytes(b))
    return what


# ---------------------------------------------------------------------------------
# One variant

@dataclass
class Check:
    name: str
    outcome: str
    detail: str = ""
    command: str = ""


def compare_file(got: bytes, want: bytes) -> str:
    """'' when equal, else where they first differ (header or data)."""
    if got == want:
        return ""
    off = first_diff(got, want)
    d0 = wav_data_offset(want)
    part = (f"header, {wav_chunk_at(want, off)}" if off < d0
            else f"data, byte {off - d0} of the samples")
    return (f"first difference at byte {off} ({part}); {len(got)} bytes, "
            f"oracle {len(want)}")


class Variant:
    def __init__(self, setup: Setup, seed: int, index: int, kind: str, damage: str):
        self.s, self.seed, self.index = setup, seed, index
        self.kind, self.damage = kind, damage
        self.rng = random.Random(f"{seed}:{index}")
        self.checks: list = []
        self.dir = setup.work / f"v{index}"

    def reproduce(self) -> str:
        return (f"python3 scripts/corrupt.py --seed {self.seed} --variant {self.index}"
                f" --bin {self.s.bin}")

    def add(self, name, outcome, detail="", command=""):
        self.checks.append(Check(name, outcome, detail, command))

    def add_run(self, name, r: Run, ok) -> bool:
        """Records a crash/hang or an error; True when the command exited 0."""
        cmd = shell(r.cmd)
        if r.crashed:
            self.add(name, "crash/hang", r.why(), cmd)
        elif r.rc != 0:
            err = (r.stderr.decode(errors="replace").strip().splitlines()
                   or r.stdout.decode(errors="replace").strip().splitlines())
            self.add(name, "error", f"exit {r.rc}: " + (err[-1][:300] if err else ""),
                     cmd)
        else:
            outcome, detail = ok(r)
            self.add(name, outcome, detail, cmd)
            return True
        return False

    def run(self) -> dict:
        s = self.s
        archive, rel = self.rng.choice(s.files[self.kind])
        arch = self.dir / archive
        self.dir.mkdir(parents=True)
        # A copy of hard links: cheap, and the damage replaces the file it touches.
        subprocess.run(["cp", "-al", str(s.work / "pristine" / archive), str(arch)],
                       check=True)
        recs = s.recordings[archive]
        target = s.recording_of(archive, rel) or self.rng.choice(
            [r for r in recs if r.path.startswith(str(Path(rel).parent))] or recs)
        what = apply_damage(arch / rel, self.damage, self.rng)
        self.record = {"variant": self.index, "seed": self.seed, "kind": self.kind,
                       "damage": self.damage, "archive": archive, "file": rel,
                       "what": what, "recording": target.path}
        t0 = time.monotonic()
        self.check_commands(arch, recs, target)
        self.check_mount(arch, recs, target)
        self.record["secs"] = round(time.monotonic() - t0, 2)
        self.record["checks"] = [c.__dict__ for c in self.checks]
        worst = max((c.outcome for c in self.checks), key=RANK.get)
        verify = next(c for c in self.checks if c.name == "verify")
        reads = [c for c in self.checks if c.name.startswith(("extract", "mount-cmp",
                                                              "mount-pread"))]
        self.record.update(
            outcome=worst,
            verify_passed=verify.outcome in ("exact", "vanished"),  # it exited 0
            changed=[c.name for c in self.checks if c.outcome == "exact" and c.detail
                     and c.name in ("ls", "info")],
            read_error=any(c.outcome == "error" for c in reads))
        return self.record

    def check_commands(self, arch: Path, recs, target: Recording) -> None:
        s = self.s
        s_timeout = s.timeout
        name = target.archive
        # ls: the listing, with its recordings
        def ls_ok(r):
            text = r.stdout.decode(errors="replace")
            missing = sorted(set(x.path for x in recs) - set(parse_ls(text)))
            if missing:
                return "vanished", f"not listed: {', '.join(missing)}"
            if normalise_ls(text) != s.ls[name]:
                return "exact", "changed: " + text.replace("\n", " | ")[:300]
            return "exact", ""
        self.add_run("ls", run(s.bin_cmd("ls", arch), s_timeout), ls_ok)

        def info_ok(r):
            text = normalise_info(r.stdout.decode(errors="replace"))
            want = s.info[(name, target.path)]
            if text != want:
                old, new = want.splitlines(), text.splitlines()
                diff = ([f"-{l}" for l in old if l not in new]
                        + [f"+{l}" for l in new if l not in old])
                return "exact", "changed: " + " | ".join(diff)[:300]
            return "exact", ""
        self.add_run("info", run(s.bin_cmd("info", arch, target.path), s_timeout),
                     info_ok)

        out = self.dir / "out.wav"
        parts = [(None, None, target.oracle)] + self.rng.sample(target.parts,
                                                                PARTS_PER_VARIANT)
        for a, b, oracle in parts:
            if out.exists():
                out.unlink()
            cmd = s.bin_cmd("extract", arch, target.path, "-o", out)
            if a is not None:
                cmd[4:4] = ["--start", f"{a}f", "--end", f"{b}f"]

            def extract_ok(r, oracle=oracle):
                try:
                    got = out.read_bytes()
                except OSError as e:
                    return "DIFFERENT", f"exit 0 but no output: {e}"
                diff = compare_file(got, oracle.read_bytes())
                return ("DIFFERENT", diff) if diff else ("exact", "")
            self.add_run("extract" if a is None else "extract-part", run(cmd, s_timeout),
                         extract_ok)

        def verify_ok(r):
            text = r.stdout.decode(errors="replace")
            m = re.search(r"(\d+) recordings? checked", text)
            n = int(m.group(1)) if m else -1
            if n != len(recs):
                return "vanished", f"exit 0: {text.strip()[-200:]} (intact: {len(recs)})"
            return "exact", ""
        self.add_run("verify", run(s.bin_cmd("verify", arch), s_timeout), verify_ok)

    def check_mount(self, arch: Path, recs, target: Recording) -> None:
        s = self.s
        preads = []
        for _ in range(PREADS_PER_VARIANT):
            rec = target if self.rng.random() < 0.5 else self.rng.choice(recs)
            n = self.rng.choice((1, 2, 44, 4096, 65536, self.rng.randint(1, 1 << 20)))
            off = self.rng.randrange(rec.size)
            preads.append((rec.path + ".wav", off, n))
        mnt = self.dir / "mnt"
        cmd = shell(["mount", "--foreground", arch, mnt])
        with Mount(s, arch, mnt) as m:
            if m.start_run:
                self.add_run("mount-list", m.start_run, lambda r: ("error", "exit 0, "
                             "not mounted"))
                return
            res = m.read(recs, preads, s.timeout * 2)
        end = m.end
        log = "\n".join(l for l in end.stderr.decode(errors="replace").splitlines()
                        if " WARN " in l or " ERROR " in l)
        if end.crashed or "hang" in res:
            self.add("mount-list", "crash/hang", res.get("hang") or end.why(), cmd)
            return
        if "reader_failed" in res:
            self.add("mount-list", "error", "reader failed: " + res["reader_failed"], cmd)
            return
        listing = set(res["listing"])
        missing = [r.path for r in recs if r.path + ".wav" not in listing]
        warned = [p for p in missing if p in log or Path(p).name in log]
        if res["walk_errors"]:
            self.add("mount-list", "error", "; ".join(res["walk_errors"])[:300], cmd)
        elif missing and len(warned) < len(missing):
            self.add("mount-list", "vanished", "not in the mount: "
                     + ", ".join(sorted(set(missing) - set(warned))), cmd)
        elif missing:
            self.add("mount-list", "error", "not in the mount, logged: "
                     + ", ".join(missing), cmd)
        else:
            self.add("mount-list", "exact", "", cmd)
        for rec in recs:
            f = res["files"].get(rec.path + ".wav")
            if f is None:
                continue
            detail = ""
            if f["result"] == "DIFFERENT":
                detail = (f"cmp {rec.path}.wav: first difference at byte {f['offset']}"
                          f" (size {f.get('size')}, oracle {rec.size})")
            elif f["result"] == "error":
                detail = f"read of {rec.path}.wav: {f['strerror']} (errno {f['errno']})"
            self.add("mount-cmp", f["result"], detail, cmd)
        for p in res["preads"]:
            detail = ""
            if p["result"] == "DIFFERENT":
                detail = (f"pread({p['file']}, {p['length']} B at {p['offset']}): "
                          f"{p['got']} B, first difference at byte {p['first']}")
            elif p["result"] == "error":
                detail = f"pread {p['file']}: {p['strerror']}"
            self.add("mount-pread", p["result"], detail, cmd)


# ---------------------------------------------------------------------------------
# The run and its report

def plan(setup: Setup, seed: int, count: int, only: str | None) -> list:
    """The (kind, damage) cell of each variant: a seeded round robin over all cells."""
    cells = []
    for kind in sorted(setup.files):
        is_json = kind.endswith(("zarr.json", "manifest"))
        for dmg in DAMAGES:
            if dmg == "json" and not is_json:
                continue
            if only and not re.search(only, f"{kind} {dmg}"):
                continue
            weight = JSON_ATTR_WEIGHT if dmg == "json" and "recording" in kind else 1
            cells += [(kind, dmg)] * weight
    if not cells:
        raise SystemExit(f"--only {only!r} matches no file kind x damage")
    rng = random.Random(f"{seed}:plan")
    order = []
    while len(order) < count:
        round_ = cells[:]
        rng.shuffle(round_)
        order += round_
    return order[:count]


def write_report(path: Path, records: list, args, setup: Setup, secs: float) -> None:
    def count(recs, outcome):
        return sum(1 for r in recs if r["outcome"] == outcome)

    L = []
    ver = run([setup.bin, "--version"], 30).stdout.decode().strip()
    digest = hashlib.sha256(setup.bin.read_bytes()).hexdigest()[:16]
    L += ["# Corruption differential", "",
          f"{len(records)} variants, seed {args.seed}, {ver} ({setup.bin}, sha256 "
          f"{digest}…), {secs / 60:.1f} min, timeout {args.timeout:.0f} s per command.",
          "", "Archives: " + "; ".join(
              f"{a}: " + ", ".join(r.path for r in rs) for a, rs in
              setup.recordings.items()), ""]
    totals = {o: count(records, o) for o in OUTCOMES}
    vp = [r for r in records if r["verify_passed"]]
    worst = [r for r in vp if r["outcome"] in ("DIFFERENT", "crash/hang")]
    L += ["## Totals (each variant counted once, as its worst check)", "",
          "| " + " | ".join(OUTCOMES) + " | verify passed | verify passed & DIFFERENT "
          "| verify passed & a read error | ls/info changed |",
          "|" + "---|" * (len(OUTCOMES) + 4),
          "| " + " | ".join(str(totals[o]) for o in OUTCOMES)
          + f" | {len(vp)} | {len(worst)} | "
          f"{sum(1 for r in vp if r['read_error'])} | "
          f"{sum(1 for r in records if r['changed'])} |", ""]
    L += ["## Per check (every run of a check counted)", "",
          "| check | " + " | ".join(OUTCOMES) + " |", "|---" * (len(OUTCOMES) + 1) + "|"]
    for chk in CHECKS:
        row = {o: 0 for o in OUTCOMES}
        for r in records:
            for c in r["checks"]:
                if c["name"] == chk:
                    row[c["outcome"]] += 1
        L.append(f"| {chk} | " + " | ".join(str(row[o]) for o in OUTCOMES) + " |")
    L += ["", "## Per file kind × damage", "",
          "| file kind | damage | variants | " + " | ".join(OUTCOMES)
          + " | verify passed | ls/info changed |", "|---" * (len(OUTCOMES) + 5) + "|"]
    cells = sorted({(r["kind"], r["damage"]) for r in records})
    for kind, dmg in cells:
        rs = [r for r in records if r["kind"] == kind and r["damage"] == dmg]
        cols = [str(count(rs, o)) if count(rs, o) else "" for o in OUTCOMES]
        for i, o in enumerate(OUTCOMES):
            if o in ("DIFFERENT", "crash/hang", "vanished") and cols[i]:
                cols[i] = f"**{cols[i]}**"
        L.append(f"| {kind} | {dmg} | {len(rs)} | " + " | ".join(cols)
                 + f" | {sum(r['verify_passed'] for r in rs)} | "
                 f"{sum(1 for r in rs if r['changed'])} |")
    bad = [r for r in records if r["outcome"] in ("DIFFERENT", "crash/hang", "vanished")]
    L += ["", f"## Findings ({len(bad)}: DIFFERENT, crash/hang, vanished)", ""]
    for r in bad:
        L.append(f"* **{r['outcome']}** v{r['variant']} {r['kind']} × {r['damage']}: "
                 f"`{r['archive']}/{r['file']}` {r['what']}; verify "
                 f"{'passed' if r['verify_passed'] else 'failed'}")
        for c in r["checks"]:
            if c["outcome"] == r["outcome"]:
                L.append(f"  - {c['name']}: {c['detail']}")
                break
    L += ["", f"Details and reproducers: {args.log}", ""]
    path.write_text("\n".join(L))


def log_finding(f, r: dict, repro: str) -> None:
    f.write(f"=== v{r['variant']} {r['outcome']}: {r['kind']} x {r['damage']}\n"
            f"  file:     {r['archive']}/{r['file']} ({r['what']})\n"
            f"  target:   {r['recording']}; verify {'PASSED' if r['verify_passed'] else 'failed'}\n"
            f"  rerun:    {repro}\n"
            f"  archive:  {r.get('kept', '-')}\n")
    for c in r["checks"]:
        if c["outcome"] not in ("exact", "error") or c["detail"]:
            f.write(f"  {c['name']:12} {c['outcome']:10} {c['detail']}\n"
                    f"               $ {c['command']}\n")
    f.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", type=Path,
                    default=Path(os.environ.get("ZW_BIN",
                                                REPO / "target/release/zarr-wavfs")))
    ap.add_argument("--report", type=Path, default=Path("/tmp/corrupt-report.md"))
    ap.add_argument("--log", type=Path, default=Path("/tmp/corrupt-log.txt"))
    ap.add_argument("--keep-failures", type=Path, default=Path("/tmp/corrupt-failures"))
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per command")
    ap.add_argument("--jobs", type=int, default=1, help="variants run at once")
    ap.add_argument("--only", help="regex on 'FILE-KIND DAMAGE', e.g. 'pcm.*json'")
    ap.add_argument("--variant", help="run only these variant numbers (comma-separated)")
    ap.add_argument("--work", type=Path, help="work directory, kept (default: a temp dir)")
    ap.add_argument("--mount-reader", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mount_reader:
        mount_reader(args.mount_reader)
        return 0
    args.bin = args.bin.resolve()
    if not os.access(args.bin, os.X_OK):
        print(f"corrupt.py: no binary at {args.bin} (--bin or ZW_BIN)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    work = args.work or Path(tempfile.mkdtemp(prefix="zw-corrupt-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    records, pool, setup = [], None, None
    try:
        setup = Setup(work, args.bin, args.timeout)
        print(f"corrupt: building archives and oracles in {work}", file=sys.stderr)
        setup.build()
        wanted = (sorted(set(int(x) for x in args.variant.split(","))) if args.variant
                  else list(range(args.variants)))
        order = plan(setup, args.seed, max(wanted) + 1, args.only)
        print(f"corrupt: {len(wanted)} variants over {len(set(order))} file kind x "
              f"damage cells", file=sys.stderr)
        args.log.parent.mkdir(parents=True, exist_ok=True)
        with open(args.log, "w") as log, open(args.log.with_suffix(".jsonl"), "w") as jl:
            log.write(f"# corrupt.py --seed {args.seed} --variants {args.variants}"
                      f" --bin {args.bin}\n")
            pool = concurrent.futures.ThreadPoolExecutor(args.jobs)
            for r, repro in pool.map(lambda i: run_variant(setup, args, i, order[i]),
                                     wanted):
                records.append(r)
                jl.write(json.dumps(r) + "\n")
                jl.flush()
                bad = r["outcome"] in ("DIFFERENT", "crash/hang")
                if bad or r["outcome"] == "vanished":
                    log_finding(log, r, repro)
                if bad or len(records) % 25 == 0 or len(records) == len(wanted):
                    tally = ", ".join(f"{o} {n}" for o in OUTCOMES if (
                        n := sum(x["outcome"] == o for x in records)))
                    print(f"corrupt: {len(records)}/{len(wanted)} "
                          f"({time.monotonic() - t0:.0f} s) {tally}"
                          + (f" | v{r['variant']} {r['outcome']}: {r['kind']} x "
                             f"{r['damage']}" if bad else ""), file=sys.stderr)
        pool.shutdown()
        write_report(args.report, records, args, setup, time.monotonic() - t0)
        print(args.report.read_text())
        return 1 if any(r["outcome"] in ("DIFFERENT", "crash/hang") for r in records) \
            else 0
    except SetupError as e:
        print(f"corrupt: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("corrupt: interrupted", file=sys.stderr)
        if records and setup:
            write_report(args.report, records, args, setup, time.monotonic() - t0)
            print(f"corrupt: partial report of {len(records)} variants in {args.report}",
                  file=sys.stderr)
        return 130
    finally:
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)
        cleanup_all()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def run_variant(setup: Setup, args, i: int, cell) -> tuple:
    v = Variant(setup, args.seed, i, *cell)
    r = v.run()
    if setup.snapshot() != setup.stamp:
        raise SetupError(f"variant {i} changed the pristine archive (a command wrote "
                         f"into a hard-linked file)")
    if r["outcome"] in ("DIFFERENT", "crash/hang", "vanished"):
        dest = args.keep_failures / f"seed{args.seed}-v{i}"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        shutil.copytree(v.dir / r["archive"], dest / r["archive"], symlinks=True)
        r["kept"] = str(dest / r["archive"])
    shutil.rmtree(v.dir, ignore_errors=True)
    return r, v.reproduce()


if __name__ == "__main__":
    sys.exit(main())
