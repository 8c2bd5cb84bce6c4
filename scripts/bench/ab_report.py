#!/usr/bin/env python3
"""The Markdown table of scripts/bench/ab.sh: old (A) and new (B) binary side by side.

    ab_report.py RESULTS.tsv META.tsv > report.md

RESULTS: "measure/system/recording<TAB>value<TAB>pair" (system old or new; pair: the
index of the A/B pair of sequential runs, or of the offset of a random read); META:
"key<TAB>value". Standard library only. Nothing here measures anything.
"""

import math
import statistics
import sys
from collections import defaultdict

R = defaultdict(list)          # key -> [value, ...] in run order
P = defaultdict(dict)          # key -> {pair: value}
M = defaultdict(list)          # meta key -> [value, ...]


def load(results, meta):
    for line in open(results):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2:
            continue
        key, value = parts[0], float(parts[1])
        R[key].append(value)
        if len(parts) > 2 and parts[2] != "-":
            P[key][int(parts[2])] = value
    for line in open(meta):
        k, _, v = line.rstrip("\n").partition("\t")
        M[k].append(v)


def meta(k, default="–"):
    return M[k][-1] if M.get(k) else default


def pct(values, q):
    """Nearest-rank percentile, as scripts/bench/report.py: the smallest value with at
    least q of them at or below."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def num(x, digits=None):
    if x is None:
        return "–"
    if digits is None:
        a = abs(x)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3 if a >= 0.01 else 4
    return f"{x:,.{digits}f}"


def ratio(b, a):
    return b / a if a and b is not None else None


def spread(xs, scale=1.0, digits=None):
    """median (min–max) of xs times scale."""
    if not xs:
        return "–"
    xs = [x * scale for x in xs]
    if len(xs) == 1:
        return num(xs[0], digits)
    return f"{num(statistics.median(xs), digits)} ({num(min(xs), digits)}–{num(max(xs), digits)})"


def failures(measure, rec):
    n = {w: len(R.get(f"failed/{measure}/{w}/{rec}", [])) for w in ("old", "new")}
    return "" if not any(n.values()) else f" **failed: A {n['old']}, B {n['new']}**"


def paired_ratios(measure, rec):
    a, b = P.get(f"{measure}/old/{rec}", {}), P.get(f"{measure}/new/{rec}", {})
    return [b[i] / a[i] for i in sorted(a) if i in b and a[i] > 0]


def seq_rows(rec, label, wav_bytes):
    rows = []
    a, b = R.get(f"seq_s/old/{rec}", []), R.get(f"seq_s/new/{rec}", [])
    rs = paired_ratios("seq_s", rec)
    if rs:
        slower = sum(r > 1 for r in rs)
        cell = f"{spread(rs, digits=3)}; B slower in {slower} of {len(rs)} pairs"
    else:
        cell = "–"
    rows.append((f"{label}: cold sequential `cat`, s", spread(a), spread(b), cell + failures("seq_s", rec)))
    if wav_bytes:
        mb = wav_bytes / 1e6
        ra = [mb / x for x in a if x > 0]
        rb = [mb / x for x in b if x > 0]
        ma = statistics.median(ra) if ra else None
        mb_ = statistics.median(rb) if rb else None
        rows.append((f"{label}: cold sequential, MB/s", spread(ra), spread(rb), num(ratio(mb_, ma), 3)))
    for measure, what, scale, digits in (("cpu_s", "daemon CPU per cold cat (user + sys), s", 1.0, None),
                                         ("rss_kib", "daemon peak RSS, MiB", 1 / 1024, None)):
        a, b = R.get(f"{measure}/old/{rec}", []), R.get(f"{measure}/new/{rec}", [])
        ma = statistics.median(a) if a else None
        mb_ = statistics.median(b) if b else None
        rows.append((f"{label}: {what}", spread(a, scale, digits), spread(b, scale, digits),
                     num(ratio(mb_, ma), 3)))
    return rows


def random_rows(rec, label):
    rows = []
    for measure, what in (("cold_total_s", "open + read"), ("cold_read_s", "pread")):
        a, b = R.get(f"{measure}/old/{rec}", []), R.get(f"{measure}/new/{rec}", [])
        n = f"n={len(a)}/{len(b)}" if len(a) != len(b) else f"n={len(a)}"
        for q, qn in ((0.5, "p50"), (0.99, "p99")):
            pa, pb = pct(a, q), pct(b, q)
            cell = num(ratio(pb, pa), 3)
            if q == 0.5:
                rs = paired_ratios(measure, rec)
                if rs:
                    cell += f" (per offset: {num(statistics.median(rs), 3)})"
            fail = failures("cold_total_s", rec) if measure == "cold_total_s" and q == 0.5 else ""
            rows.append((f"{label}: cold 4 KiB {what} {qn}, ms ({n})",
                         num(pa * 1e3 if pa is not None else None),
                         num(pb * 1e3 if pb is not None else None), cell + fail))
        short = {w: len(R.get(f"short_reads/{w}/{rec}", [])) for w in ("old", "new")}
        if any(short.values()):
            rows.append((f"{label}: short reads (< 4096 bytes)", str(short["old"]), str(short["new"]), "–"))
    return rows


def hours(secs):
    s = float(secs)
    if s >= 3600:
        return f"{s / 3600:g} h"
    if s >= 60:
        return f"{s / 60:g} min"
    return f"{s:g} s"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    load(sys.argv[1], sys.argv[2])
    out = []
    w = out.append

    def same(rec):
        a, b, x = meta(f"sha_old_{rec}", None), meta(f"sha_new_{rec}", None), meta(f"sha_extract_{rec}", None)
        if a is None or b is None:
            return "not checked"
        s = "yes" if a == b else "**NO**"
        return s + ("" if x is None else (", equal to `extract`" if a == x and b == x else ", **not equal to `extract`**"))

    mb = {rec: float(meta(f"wav_bytes_{rec}", "0") or 0) for rec in ("mono", "flac")}
    labels = {"mono": f"Opus {hours(meta('opus_s', '0'))}", "flac": f"FLAC {hours(meta('flac_s', '0'))}"}
    cold = ("a fresh mount, then `sync; echo 3 > /proc/sys/vm/drop_caches`"
            if meta("drop_caches") == "1" else
            "a fresh mount, then the archive's files evicted with posix_fadvise (probe.py evict)")

    w("## A/B: cold reads of a local archive, old (A) vs new (B) binary")
    w("")
    def side(who):
        rev = meta(f"{who}_rev")
        return ((f"{rev} — " if rev != "–" else "")
                + f"`{meta(who + '_version')}`, `{meta(who + '_bin')}` (sha256 {meta(who + '_sha')})")

    w(f"Generated by `scripts/bench/ab.sh` ({meta('mode')} mode) on {meta('date')}. "
      f"**A (old)**: {side('old')}. **B (new)**: {side('new')}.")
    w("")
    w(f"Recordings, 48 kHz mono, the signal of scripts/bench/material.py: **{labels['mono']}** = the "
      f"recording of scripts/bench.sh, Ogg Opus at {meta('bitrate_k')} kbit/s from opusenc, imported "
      f"byte for byte ({num(mb['mono'] / 1e6)} MB served as WAV); **{labels['flac']}** = the first "
      f"{hours(meta('flac_s', '0'))} of it imported from WAV with the default codec "
      f"({meta('codec_flac')}; {num(mb['flac'] / 1e6)} MB WAV). "
      f"One archive, imported once with B, mounted by both (`mount -f --cache-size {meta('cache_size')}`). "
      f"Every run is cold: {cold}. Cold sequential: {meta('pairs')} A/B pairs per recording, "
      "A first in even pairs and B first in odd ones; the cells are median (min–max) of the runs, and "
      "B/A is the median (min–max) of the per-pair ratios. Cold random reads: "
      f"{meta('reads')} offsets per recording (the same for A and B, each read by both in turn), "
      "a fresh mount and evicted archive per read (`probe.py pread`); percentiles are nearest rank "
      "(with few reads p99 is the slowest read), B/A is the ratio of the percentiles and, for p50, "
      "also the median of the per-offset ratios. Other B/A cells: ratio of the medians. "
      "Below 1: B is faster (rates: above 1).")
    w("")
    w("| figure | A (old) | B (new) | B/A |")
    w("|---|---|---|---|")
    for rec in ("mono", "flac"):
        for row in seq_rows(rec, labels[rec], mb[rec]):
            w("| " + " | ".join(row) + " |")
    for rec in ("mono", "flac"):
        for row in random_rows(rec, labels[rec]):
            w("| " + " | ".join(row) + " |")
    w("")
    w(f"Same bytes served by A and B: mono {same('mono')}; flac {same('flac')}. "
      f"Codecs as stored: mono {meta('codec_mono')}, flac {meta('codec_flac')}.")
    w("")
    load1, foreign = R.get("load1/-/-", []), R.get("foreign_threads/-/-", [])
    machine = (f"Machine: {meta('cpu')}, {meta('cores')} cores, {meta('kernel')}. "
               f"Load average at start {meta('load_start')}, at the end {meta('load_end')}")
    if load1:
        machine += (f"; 1-min load during the run median {num(statistics.median(load1), 2)}, "
                    f"max {num(max(load1), 2)}")
    if foreign:
        machine += (f"; threads of other work running or in I/O wait: median "
                    f"{num(statistics.median(foreign), 0)}, max {num(max(foreign), 0)}")
    w(machine + ".")
    w("")
    w(f"Command: `{meta('command')}`")
    notes = M.get("note", [])
    if notes:
        w("")
        w("Notes:")
        w("")
        for n in notes:
            w(f"- {n}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
