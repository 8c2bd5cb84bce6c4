#!/usr/bin/env python3
"""Turns the measurements of scripts/bench.sh into the Markdown report (docs/BENCHMARKS.md).

    report.py RESULTS.tsv META.tsv > REPORT.md

RESULTS.tsv has one line per run or per read, "measure/system/case<TAB>value"
(e.g. "seq_s/ours/mono<TAB>7.19"); META.tsv has "key<TAB>value" lines (machine,
versions, parameters, notes). Runs are summarised as median (min-max); random reads as
percentiles of all reads (nearest rank). Nothing here measures anything.
"""

import math
import statistics
import sys

from benchlib import M, R, load, med, meta, notes, num, pct, row, runs, v

OUT = []                # the report's lines

SYS_COLS = ["ours", "ffmpegfs", "opusdec", "ffmpeg", "tmpfs"]
KIND_TITLE = {"mono": "mono", "stereo": "stereo"}


def limit_shares(k, cores):
    """Cold sequential rate of ours as a share of the limit, one per run: (limit run ÷
    cores) ÷ cat run, bench.sh timing each limit run just before its cat run so that the
    machine's drift (±10 % over minutes here) hits both alike. Empty if unpaired."""
    d, t = v("decode1_s", "limit", k), v("seq_s", "ours", k)
    if not d or len(d) != len(t):
        return []
    return [(di / cores) / ti for di, ti in zip(d, t)]


def limit_share(k, cores):
    """The median of `limit_shares`, or None."""
    shares = limit_shares(k, cores)
    return statistics.median(shares) if shares else None


def ratio(a, b, pct_form=False):
    if a is None or b is None or b == 0:
        return "–"
    if pct_form:
        return f"{100 * a / b:.0f} %"
    r = a / b
    return f"{r:,.0f}" if r >= 100 else f"{r:.1f}" if r >= 10 else f"{r:.2f}"


def best_decoder(measure, case):
    """(system, median) of the decode-to-disk peer with the lowest median."""
    cands = [(med(measure, d, case), d) for d in ("opusdec", "ffmpeg")
             if med(measure, d, case) is not None]
    return min(cands) if cands else (None, None)


PROFILE_ROWS = [
    ("u_opus", "user: libopus decoding (libopus, libm)"),
    ("u_ogg", "user: Ogg page parsing (ours)"),
    ("u_memcpy", "user: memcpy, memset (span → reply buffer, packets)"),
    ("u_malloc", "user: malloc, free"),
    ("u_rust", "user: other Rust code (engine, span cache, zarrs, fuser, channels)"),
    ("k_fuse_read", "kernel: receiving FUSE requests"),
    ("k_fuse_reply", "kernel: sending FUSE replies (copied into the page cache)"),
    ("k_fault_anon", "kernel: page faults on new memory (span and reply buffers)"),
    ("k_fault_file", "kernel: page faults on program code (re-read after drop_caches)"),
    ("k_files", "kernel: the archive's files (open, read, fadvise, stat)"),
    ("k_threads", "kernel: waking and waiting threads (futex, yield, scheduler)"),
    ("k_other", "kernel: other (interrupts, timers)"),
    ("client", "the client `cat` (its reads: copying out of the page cache)"),
    ("others", "other processes"),
    ("idle", "idle"),
]


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def bounds(kinds, cores, quick, mb):
    """What bounds the cold sequential read and the 4-reader throughput: the machine's
    CPU time during our cold cats (/proc/stat), a perf profile of one of them against
    one of the limit, and the limit with every core decoding at once."""
    w = OUT.append
    w("## What bounds the sequential and the 4-reader figures")
    w("")
    if quick:
        w("Quick mode: toy sizes; these figures are not meaningful.")
        w("")
    w("**The CPU time of a cold sequential read.** ours/limit is the limit's "
      "single-core decode time ÷ (cores × the cat's time): the share of the machine's "
      "core-seconds during the cat that the same libopus decoding would need. Every "
      "core-second spent on anything else, or idle, lowers it. Around each of our "
      f"{meta('seq_reps')} cold cats per recording, bench.sh read the machine's CPU time "
      "by state (`/proc/stat`) and the daemon's (`/proc/PID/stat`); means over the runs, "
      "in core-seconds and ÷ the limit run before each cat (so that the rows add up to "
      "1 ÷ ours/limit):")
    w("")
    parts = [("daemon_user", "daemon, user time (decoding from checkpoints, Ogg parsing, "
              "copies, the span cache)"),
             ("daemon_sys", "daemon, kernel time (FUSE requests and replies, page faults, "
              "the archive's files)"),
             ("rest", "busy outside the daemon (the client `cat`; anything else)"),
             ("idle", "idle"), ("iowait", "I/O wait"), ("steal", "steal (the hypervisor)")]
    have = [k for k in kinds if v("cpu_s", "daemon_user", k)]
    if have:
        w(row(["core-seconds during one cold `cat`"]
              + [c for k in have for c in (f"{k}, core-s", f"{k}, ÷ limit")]))
        w(row(["---"] + ["--:"] * (2 * len(have))))
        lim = {k: mean(v("decode1_s", "limit", k)) for k in have}
        w(row(["the limit: libopus decoding the whole stream on one core (run before each "
               "cat)"] + [c for k in have for c in (num(lim[k]), "1.00")]))
        total = {k: 0.0 for k in have}
        for part, label in parts:
            cells = []
            for k in have:
                x = mean(v("cpu_s", part, k))
                total[k] += x
                cells += [num(x), f"{x / lim[k]:.3f}"]
            w(row([label] + cells))
        w(row(["**total: cores × the cat's time**"]
               + [c for k in have for c in (f"**{num(total[k])}**",
                                            f"**{total[k] / lim[k]:.3f}**")]))
        w(row(["ours/limit from these means (limit ÷ total)"]
               + [c for k in have for c in ("", f"{100 * lim[k] / total[k]:.1f} %")]))
        spread = {k: sorted(limit_shares(k, cores)) for k in have}
        w(row(["ours/limit, median of the runs' ratios (min–max): the machine's drift"]
               + [c for k in have for c in ((
                   "", f"{100 * statistics.median(spread[k]):.1f} % "
                       f"({100 * spread[k][0]:.1f}–{100 * spread[k][-1]:.1f} %)")
                   if spread[k] else ("", "–"))]))
        w("")

    prof = [k for k in kinds if v("prof_wall_s", "-", f"seq:{k}") and v("decode1_s", "limit", k)]
    # The yardstick: the median of the run's unprofiled limit runs (one profiled run
    # alone drifts with the machine, as much as ±10 %).
    lim = {k: med("decode1_s", "limit", k) for k in prof}

    def prof_s(cat, which, k):
        return sum(v("prof_s", cat, f"{which}:{k}"))

    def prof_total(which, k):
        return sum(prof_s(c, which, k) for c, _ in PROFILE_ROWS)

    def excess(cat, k):
        """The cat's share of the limit in `cat`, less the limit run's own share there
        (the profiled limit run as a fraction of its own total, immune to its drift):
        the rows add up to the cat's total ÷ limit − 1."""
        return prof_s(cat, "seq", k) / lim[k] - prof_s(cat, "limit", k) / prof_total("limit", k)

    if prof:
        w("**A profile of one cold cat against one limit run** (`perf record -g "
          "--kernel-callchains -e cpu-clock -F 999`, `-a` for the cat; split by "
          "`scripts/bench/profile.py`: user samples by the symbol hit, kernel samples by "
          "their call chain), in core-seconds. The last column is each row's excess over "
          "the limit: the cat's core-seconds there ÷ the limit (the median of the limit "
          "runs above), less the limit run's own share of that row (a straight decode "
          "parses pages and copies too), so the column adds up to the cat's total ÷ "
          "limit − 1.")
        w("")
        w(row(["where the samples fell"]
              + [c for k in prof for c in (f"{k}: limit run", f"{k}: cold cat",
                                           f"{k}: excess ÷ limit")]))
        w(row(["---"] + ["--:"] * (3 * len(prof))))
        for cat, label in PROFILE_ROWS:
            cells = []
            for k in prof:
                a, b = prof_s(cat, "limit", k), prof_s(cat, "seq", k)
                cells += [num(a) if a else "–", num(b) if b else "–",
                          f"{excess(cat, k):+.3f}" if a or b else "–"]
            w(row([label] + cells))
        w(row(["**total**"] + [c for k in prof for c in (
            f"**{num(prof_total('limit', k))}**", f"**{num(prof_total('seq', k))}**",
            f"**{prof_total('seq', k) / lim[k] - 1:+.3f}**")]))
        w("")

    allc = [k for k in kinds if v("decode_all_s", "limit", k) and v("decode_alone_s", "limit", k)]
    slow = {k: med("decode_all_s", "limit", k) / med("decode_alone_s", "limit", k) for k in allc}
    if allc:
        w(f"**The limit on every core at once.** {meta('all_cores_reps')} time(s) per "
          "recording: the limit alone on one core, then one pinned limit run on each of "
          f"the {cores} cores at once. Per-core decode time with all cores busy ÷ alone "
          "(medians): "
          + "; ".join(f"{k} {num(med('decode_all_s', 'limit', k))} s ÷ "
                      f"{num(med('decode_alone_s', 'limit', k))} s = {slow[k]:.3f}"
                      for k in allc)
          + ". Above 1, the machine itself decodes slower per core when every core does "
          "(shared caches and memory, the host's scheduling of the virtual CPUs): the "
          "limit, cores × one core alone, is more than these cores deliver together.")
        w("")

    for k in prof:
        def part(*cats):
            return sum(excess(c, k) for c in cats)
        opus = part("u_opus")
        transport = part("k_fuse_read", "k_fuse_reply", "client")
        ours = sorted([
            ("our user-space work (Ogg parsing, copies, malloc, engine)",
             part("u_ogg", "u_memcpy", "u_malloc", "u_rust")),
            ("page faults (the span cache growing on a fresh mount, program code)",
             part("k_fault_anon", "k_fault_file")),
            ("threads, the archive's files, other kernel work",
             part("k_threads", "k_files", "k_other")),
            ("idle cores and other processes", part("idle", "others")),
        ], key=lambda x: -x[1])
        mine = sum(x for _, x in ours)
        total = prof_total("seq", k) / lim[k] - 1
        text = (f"**Reading the {k} profile.** 85 % of the limit allows an excess of "
                f"1 ÷ 0.85 − 1 = +0.176; this cat's was {total:+.3f} ("
                f"{100 / (1 + total):.1f} % of the limit). libopus itself: {opus:+.3f}")
        if k in slow:
            text += (f", against {slow[k] - 1:+.3f} for the machine alone (each core "
                     "decodes that much slower when every core decodes)")
        text += (f". FUSE transport (the kernel's request and reply work, the client's "
                 f"copies): {transport:+.3f}. Ours: "
                 + "; ".join(f"{label} {x:+.3f}" for label, x in ours) + ". ")
        machine = max(opus, slow.get(k, 1.0) - 1)
        room = 0.176 - machine - transport
        text += (f"What it would take: after the machine's {machine:+.3f} and FUSE "
                 f"transport's {transport:+.3f}, 85 % leaves {room:+.3f} for our own "
                 f"overhead, now {mine:+.3f}"
                 + (". " if room > 0 else
                    ": out of reach while the machine is in this state, even with no "
                    "overhead of our own. ")
                 + "FUSE transport comes with any FUSE file system served "
                 "through fuser: the kernel's per-request work shrinks only with larger "
                 "requests (reads come in readahead windows, 128 KiB by default) and the "
                 "reply copy only with splice, which fuser does not offer. Ours is spread "
                 "thin (no Rust symbol of ours above 0.2 % of the samples besides the Ogg "
                 "page parser): the copy from a span into the reply buffer, checkpoint "
                 "restores and their warm-up packets, thread hand-offs between the FUSE "
                 "workers and the decoders, the archive's file opens, idle time at the "
                 "start and end of the read.")
        w(text)
        w("")

    if mb and med("multi1_s", "ours") and med("multi4_s", "ours") and "mono" in kinds:
        d1 = med("decode1_s", "limit", "mono")
        size = med("wav_bytes", "-", "mono")
        rate1 = mb / 1e6 / med("multi1_s", "ours")
        rate4 = 4 * mb / 1e6 / med("multi4_s", "ours")
        if d1 and size and rate4 < 1.7 * rate1:
            limit_rate = cores * size / 1e6 / d1
            need = 1.7 * rate1 * cores / rate4
            w(f"**4 readers ÷ 1 reader.** One reader already decodes on all {cores} cores "
              f"(the prefetcher decodes the spans ahead of it in parallel): it reads "
              f"{num(rate1)} MB/s, {100 * rate1 / limit_rate:.0f} % of the {cores}-core "
              f"limit ({num(limit_rate)} MB/s). Four readers share the same cores, so "
              f"4 ÷ 1 is at most limit ÷ one reader = {limit_rate / rate1:.2f} here; they "
              f"reached {num(rate4)} MB/s ({100 * rate4 / limit_rate:.0f} % of the "
              f"limit). 1.7 × would need one reader held to 1 ÷ 1.7 = 59 % of the machine, "
              f"or, at the 4 readers' measured {num(rate4 / cores)} MB/s per core, "
              f"{need:.1f} cores for 1.7 × the one reader's {num(rate1)} MB/s "
              f"(≥ {math.ceil(need)} cores).")
            w("")



def main():
    load(sys.argv[1], sys.argv[2])
    quick = meta("mode") == "quick"
    cores = int(meta("cores", "1"))
    kinds = [k for k in ("mono", "stereo") if v("wav_bytes", "-", k)]
    out = OUT
    w = out.append

    w("# Benchmarks")
    w("")
    if quick:
        w("**Quick mode: toy sizes, for checking that the benchmark runs. These figures "
          "mean nothing.**")
        w("")
    w("Generated by `scripts/bench.sh` (issue 5): zarr-wavfs against ffmpegfs and against "
      "decoding to WAV on disk (opusdec, ffmpeg), with the limits of the machine, all in "
      f"one run on one machine ({meta('date')}). Every figure is the median of "
      f"{meta('reps')} runs with (min–max), unless it is a percentile over many reads"
      + ("" if meta("seq_reps") in ("?", meta("reps")) else
         f" or our cold sequential read ({meta('seq_reps')} runs, each paired with a "
         "run of the limit)")
      + ("" if meta("client_reps") == meta("reps") else
         f"; the clients (sox, ffprobe, Python) ran {meta('client_reps')} time(s) per system")
      + ("." if meta("peer_reps") == meta("reps") else
         f"; the slowest peer runs (decode to disk, and ffmpegfs under the three clients) "
         f"are medians of {meta('peer_reps')} runs, to keep the whole run near 25 minutes.")
      + " Regenerate with `bash scripts/bench.sh` (as root; about half an hour).")
    w("")
    busy = v("foreign_threads")
    if busy:
        mean = statistics.mean(busy)
        share = sum(1 for x in busy if x > 0) / len(busy)
        text = (f"Other work on the machine during the run: {mean:.1f} threads outside the "
                f"benchmark running or waiting for I/O on average (max {max(busy):.0f}; "
                f"some in {100 * share:.0f} % of {len(busy)} samples taken every 2 s); "
                f"1-min load average median {statistics.median(v('load1')):.1f}, max "
                f"{max(v('load1')):.1f}, on {cores} cores.")
        if mean >= 0.25:
            text = ("**Warning: the machine was busy with other work during this run, so "
                    "these figures are disturbed; rerun on an idle machine.** " + text)
        w(text)
        w("")

    # --- machine and versions ---------------------------------------------------------
    w("## Machine and versions")
    w("")
    w(f"- CPU: {meta('cpu')}, {meta('cores')} cores; RAM {meta('ram')}; {meta('kernel')}; "
      f"{meta('os')}")
    w(f"- load average (1, 5, 15 min) at start: {meta('load_start')}; at end: "
      f"{meta('load_end')}")
    w(f"- zarr-wavfs: {meta('zarr_wavfs')}, bundled {meta('libopus')}; binary "
      f"`{meta('bin')}`")
    for k in ("ffmpegfs", "ffmpeg", "opusenc", "opusdec", "sox", "python", "fuse"):
        if M.get(k):
            w(f"- {k}: {meta(k)}")
    w("")

    # --- material ------------------------------------------------------------------------
    w("## Material")
    w("")
    w("Deterministic (`scripts/bench/material.py`: pink noise at about -31 dBFS RMS plus, "
      "every 10 s, a sine sweep, a speech-like burst or a chirp train), 48 kHz 16-bit, "
      f"encoded once with opusenc at {meta('bitrate_k')} kbit/s per channel. The same "
      "`.opus` file is served by ffmpegfs and decoded by the decode-to-disk peers; "
      "`zarr-wavfs import` copies it byte for byte (checked) and adds the page index and "
      f"checkpoints at the default spacing ({meta('ckpt_interval_s')} s).")
    w("")
    w(row(["recording", "duration", "WAV served", ".opus", "stream identical",
           "index + checkpoints", "import"]))
    w(row(["---"] + ["--:"] * 6))
    for k in kinds:
        dur = med("duration_s", "-", k)
        stream = med("opus_bytes", "-", k)
        over = (med("index_bytes", "ours", k) or 0) + (med("ckpt_bytes", "ours", k) or 0)
        w(row([f"{k}", f"{num(dur, 0)} s", f"{num(med('wav_bytes', '-', k), 0)} B",
               f"{num(stream, 0)} B ({num(8 * stream / dur / 1000, 1)} kbit/s)",
               "yes" if med("stream_identical", "ours", k) == 1 else "**no**",
               f"{num(over, 0)} B ({ratio(over, stream, True)} of the stream)",
               f"{num(med('import_s', 'ours', k))} s"]))
    w("")

    # --- the table -----------------------------------------------------------------------
    w("## Results")
    w("")
    w("Columns: **ours** = `zarr-wavfs mount` (default 16 threads, "
      f"`--cache-size {meta('cache_size')}`); **ffmpegfs** = `ffmpegfs --desttype=wav`; "
      "**opusdec/ffmpeg → disk** = the WAV those tools decoded to disk earlier, read as "
      "a plain file; **tmpfs** = our WAV (from `zarr-wavfs extract`) in /dev/shm, read "
      "as a plain file (the FUSE + copy ceiling); **limit** = the single-core libopus "
      "decode rate of the same stream in our binary: one libopus decoder straight "
      "through every packet, the stream in memory, no checkpoints, spans, cache or FUSE "
      f"(`{meta('pin')} zarr-wavfs decode-limit`) × {cores} cores, timed just before "
      "each of our cold sequential runs. Ratios are ours ÷ the other on the row's "
      "unit: for times below 1 means ours is faster, for rates above 1 does. "
      "**ours/decode-to-disk** compares with the faster of the two decoders; "
      "**ours/limit** with the limit column for first use, for sequential reads as the "
      "median of the runs' ratios (each cat run against the limit run just before it), "
      "and with "
      "the tmpfs column for the other rows.")
    w("")
    head = ["figure", "ours", "ffmpegfs", "opusdec → disk", "ffmpeg → disk", "tmpfs",
            "limit", "ours/ffmpegfs", "ours/decode-to-disk", "ours/limit"]
    w(row(head))
    w(row(["---"] + ["--:"] * (len(head) - 1)))

    def line(label, cells, r_ff="–", r_disk="–", r_lim="–"):
        w(row([label] + [cells.get(c, "–") for c in SYS_COLS + ["limit"]]
              + [r_ff, r_disk, r_lim]))

    for k in kinds:
        dur = med("duration_s", "-", k)
        size = med("wav_bytes", "-", k)
        d1 = med("decode1_s", "limit", k)
        limit_s = d1 / cores if d1 else None
        length = f"{dur / 3600:g} h" if dur >= 3600 else f"{dur:g} s"
        w(row([f"**{KIND_TITLE[k]}, {length}**"]
              + [""] * (len(head) - 1)))

        # cold sequential read
        seq = {s: med("seq_s", s, k) for s in SYS_COLS}
        dbest, dname = best_decoder("seq_s", k)
        cells = {s: runs("seq_s", s, k) for s in SYS_COLS}
        if d1:
            cells["limit"] = runs("decode1_s", "limit", k, scale=1 / cores)
        share = limit_share(k, cores)
        line("cold sequential `cat`, s", cells, ratio(seq["ours"], seq["ffmpegfs"]),
             ratio(seq["ours"], dbest), ratio(1, share) if share else "–")
        cells = {s: runs("seq_s", s, k, invert=size / 1e6) for s in SYS_COLS}
        if d1:
            cells["limit"] = runs("decode1_s", "limit", k, invert=cores * size / 1e6)
        inv = lambda t: size / 1e6 / t if t else None  # noqa: E731
        line("cold sequential, MB/s", cells, ratio(inv(seq["ours"]), inv(seq["ffmpegfs"])),
             ratio(inv(seq["ours"]), inv(dbest)),
             f"{100 * share:.1f} %" if share else "–")
        cells = {s: runs("seq_s", s, k, invert=dur) for s in SYS_COLS}
        if d1:
            cells["limit"] = runs("decode1_s", "limit", k, invert=cores * dur)
        line("cold sequential, × real time", cells)
        cells = {}
        for s in SYS_COLS:
            served, st = med("served", s, k), med("st_size", s, k)
            if served is None:
                continue
            after = med("st_size_after", s, k)
            text = f"{num(served, 0)} / {num(st, 0)}"
            if served != st:
                text += f" (**{num(served - st, 0)}**"
                text += f"; {num(after, 0)} after)" if after != st else ")"
            cells[s] = text
        line("bytes served / st_size", cells)
        # first use: everything read once, starting from the .opus
        cells, first = {}, {}
        for s in ("ours", "ffmpegfs"):
            if seq[s] is not None:
                first[s] = seq[s]
                cells[s] = num(seq[s])
        for d in ("opusdec", "ffmpeg"):
            dec = med("decode_s", d, k)
            if dec is not None and seq[d] is not None:
                first[d] = dec + seq[d]
                cells[d] = f"{num(dec)} + {num(seq[d])} = {num(first[d])}"
        if limit_s:
            cells["limit"] = num(limit_s)
        fbest = min([first[d] for d in ("opusdec", "ffmpeg") if d in first], default=None)
        line("first use: whole WAV read once from the .opus, s (decoders: decode + cold "
             "`cat`)", cells, ratio(first.get("ours"), first.get("ffmpegfs")),
             ratio(first.get("ours"), fbest), ratio(first.get("ours"), limit_s))
        cells = {d: runs("decode_s", d, k) for d in ("opusdec", "ffmpeg")}
        line("decode to disk (incl. fsync), s", cells)

        # latency
        tt = {s: med("ttfb_s", s, k) for s in SYS_COLS}
        dmin = min([tt[d] for d in ("opusdec", "ffmpeg") if tt[d] is not None], default=None)
        line("time to first byte (open + first 64 KiB read), ms",
             {s: runs("ttfb_s", s, k, scale=1e3) for s in SYS_COLS},
             ratio(tt["ours"], tt["ffmpegfs"]), ratio(tt["ours"], dmin))
        for label, measure, q, scale, unit in (
                ("cold 4 KiB read p50 (pread)", "cold_read_s", 0.5, 1e3, "ms"),
                ("cold 4 KiB read p99 (pread)", "cold_read_s", 0.99, 1e3, "ms"),
                ("cold 4 KiB open + read p99", "cold_total_s", 0.99, 1e3, "ms"),
                ("warm 4 KiB read p50", "warm_read_s", 0.5, 1e6, "µs"),
                ("warm 4 KiB read p99", "warm_read_s", 0.99, 1e6, "µs")):
            p = {s: pct(v(measure, s, k), q) for s in SYS_COLS}
            cells = {s: num(p[s] * scale) + (f" (n={len(v(measure, s, k))})"
                                             if s == "ffmpegfs" else "")
                     for s in SYS_COLS if p[s] is not None}
            dmin = min([p[d] for d in ("opusdec", "ffmpeg") if p[d] is not None], default=None)
            line(f"{label}, {unit}", cells, ratio(p["ours"], p["ffmpegfs"]),
                 ratio(p["ours"], dmin), ratio(p["ours"], p["tmpfs"]))

        # clients
        for label, measure in (("client: `sox FILE -n stat`, s", "sox_s"),
                               ("client: `ffprobe`, s", "ffprobe_s"),
                               (f"client: Python, {meta('windows')} random 1-s windows, s",
                                "windows_s")):
            m = {s: med(measure, s, k) for s in SYS_COLS}
            if all(x is None for x in m.values()):
                continue
            dmin = min([m[d] for d in ("opusdec", "ffmpeg") if m[d] is not None],
                       default=None)
            line(label, {s: runs(measure, s, k) for s in SYS_COLS},
                 ratio(m["ours"], m["ffmpegfs"]), ratio(m["ours"], dmin),
                 ratio(m["ours"], m["tmpfs"]))

        # resources
        rss = {}
        for s in ("ours", "ffmpegfs"):
            vals = [x for key, xs in R.items() if key.startswith(f"rss_kib/{s}/")
                    and key.endswith(f":{k}") for x in xs]
            if vals:
                rss[s] = max(vals) / 1024
        line("daemon peak RSS (VmHWM, max over this file's patterns), MiB",
             {s: num(x, 0) for s, x in rss.items()}, ratio(rss.get("ours"), rss.get("ffmpegfs")))
        cells = {"ours": f"{num(med('disk_bytes', 'ours', '-') or 0, 0)} (archive growth)"}
        if med("disk_bytes", "ffmpegfs", k) is not None:
            cells["ffmpegfs"] = f"{num(med('disk_bytes', 'ffmpegfs', k) / 1e6, 0)} (cache)"
        for d in ("opusdec", "ffmpeg"):
            if med("disk_bytes", d, k) is not None:
                cells[d] = num(med("disk_bytes", d, k) / 1e6, 0)
        cells["tmpfs"] = f"{num(size / 1e6, 0)} (RAM)"
        line("extra disk used, MB", cells)

    # --- whole-archive figures -------------------------------------------------------------
    w(row(["**whole archive**"] + [""] * (len(head) - 1)))
    mb = med("multi_bytes")
    if mb:
        t1 = {s: med("multi1_s", s) for s in ("ours", "ffmpegfs")}
        t4 = {s: med("multi4_s", s) for s in ("ours", "ffmpegfs")}
        rate1 = {s: mb / 1e6 / t for s, t in t1.items() if t}
        rate4 = {s: 4 * mb / 1e6 / t for s, t in t4.items() if t}
        line(f"1 reader, first {meta('multi_s')} s of a mono recording, MB/s",
             {s: runs("multi1_s", s, "-", invert=mb / 1e6) for s in ("ours", "ffmpegfs")},
             ratio(rate1.get("ours"), rate1.get("ffmpegfs")))
        line("4 readers of 4 different recordings together, MB/s",
             {s: runs("multi4_s", s, "-", invert=4 * mb / 1e6) for s in ("ours", "ffmpegfs")},
             ratio(rate4.get("ours"), rate4.get("ffmpegfs")))
        line("4 readers ÷ 1 reader (throughput)",
             {s: ratio(rate4.get(s), rate1.get(s)) for s in ("ours", "ffmpegfs")
              if s in rate1 and s in rate4})
    n_ls = int(float(meta("ls_folders", "0")) * float(meta("ls_per", "0")))
    ls = {s: med("ls_s", s) for s in ("ours", "ffmpegfs", "dir")}
    cells = {s: runs("ls_s", s, "-") + f" [{num(med('ls_entries', s), 0)} files]"
             for s in ("ours", "ffmpegfs") if ls[s] is not None}
    if ls["dir"] is not None:
        cells["limit"] = runs("ls_s", "dir", "-") + " (plain dir of .opus)"
    line(f"`ls -lR` of a fresh mount, {n_ls} recordings in {meta('ls_folders')} folders, s",
         cells, ratio(ls["ours"], ls["ffmpegfs"]), "–", ratio(ls["ours"], ls["dir"]))
    rss_all = {s: max([x for key, xs in R.items() if key.startswith(f"rss_kib/{s}/")
                       for x in xs], default=None) for s in ("ours", "ffmpegfs")}
    line("daemon peak RSS over every pattern, MiB",
         {s: num(x / 1024, 0) for s, x in rss_all.items() if x is not None},
         ratio(rss_all["ours"], rss_all["ffmpegfs"]))
    w("")
    n_reads, n_ff = meta("reads"), meta("ff_reads")
    w(f"Random reads: {n_reads} offsets, uniform over the WAV file (seeded; the same "
      f"offsets for every system), ffmpegfs the first {n_ff} of them (each cold ffmpegfs "
      "read transcodes from the start of the file up to its offset, seconds per read). "
      "Cold: before each read a fresh mount (ffmpegfs: with an empty cache directory) and "
      "the backing files (archive, .opus, decoded WAV) evicted from the page cache with "
      "`posix_fadvise(POSIX_FADV_DONTNEED)`; the read is `os.open` + `os.pread` of 4096 "
      "bytes (buffered, no O_DIRECT), with the `pread` alone and open + read reported. "
      "Warm: the same offsets on one mount after one untimed pass, `pread` on an open "
      "file. Percentiles are nearest-rank.")
    w("")

    # --- RSS by pattern --------------------------------------------------------------------
    pats = sorted({key.split("/", 2)[2] for key in R if key.startswith("rss_kib/")})
    if pats:
        w("Peak RSS (VmHWM, MiB) of the daemons by pattern, max over the mounts of that "
          "pattern:")
        w("")
        w(row(["daemon"] + pats))
        w(row(["---"] + ["--:"] * len(pats)))
        for s in ("ours", "ffmpegfs"):
            if any(v("rss_kib", s, p) for p in pats):
                w(row([s] + [num(max(v("rss_kib", s, p)) / 1024, 0) if v("rss_kib", s, p)
                             else "–" for p in pats]))
        w("")

    # --- targets ---------------------------------------------------------------------------
    w("## Targets (issue 5, section 2)")
    w("")
    if quick:
        w("Quick mode: toy sizes; the verdicts below are not meaningful.")
        w("")
    w(row(["target", "measured", "met?"]))
    w(row(["---", "---", ":-:"]))

    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**not met**")

    cache_mib = 256.0
    cs = meta("cache_size", "256MiB").lower().replace("mib", "")
    try:
        cache_mib = float(cs)
    except ValueError:
        pass
    for k in kinds:
        dur, size = med("duration_s", "-", k), med("wav_bytes", "-", k)
        t, d1 = med("seq_s", "ours", k), med("decode1_s", "limit", k)
        frac = limit_share(k, cores)
        if t and d1 and frac:
            w(row([f"cold sequential read ≥ 85 % of cores × single-thread libopus ({k})",
                   f"{100 * frac:.1f} % ({num(size / 1e6 / t)} of "
                   f"{num(cores * size / 1e6 / d1)} MB/s)", verdict(frac >= 0.85)]))
        tf = med("seq_s", "ffmpegfs", k)
        if t and tf:
            w(row([f"cold sequential read not slower than ffmpegfs ({k})",
                   f"{num(t)} s vs {num(tf)} s", verdict(t <= tf)]))
    if "mono" in kinds:
        p99 = pct(v("cold_total_s", "ours", "mono"), 0.99)
        p99r = pct(v("cold_read_s", "ours", "mono"), 0.99)
        if p99 is not None:
            w(row(["cold random 4 KiB read p99 ≤ 20 ms, 2-hour file (open + read)",
                   f"{num(p99 * 1e3)} ms (pread alone: {num(p99r * 1e3)} ms; "
                   f"{len(v('cold_total_s', 'ours', 'mono'))} reads)", verdict(p99 <= 0.020)]))
        wp = pct(v("warm_read_s", "ours", "mono"), 0.99)
        if wp is not None:
            w(row(["warm random 4 KiB read p99 ≤ 0.2 ms", f"{num(wp * 1e3, 4)} ms",
                   verdict(wp <= 0.0002)]))
    if mb and med("multi1_s", "ours") and med("multi4_s", "ours"):
        x = 4 * med("multi1_s", "ours") / med("multi4_s", "ours")
        w(row([f"4 readers of 4 recordings ≥ 1.7 × one reader ({cores} cores)",
               f"{x:.2f} ×", verdict(x >= 1.7)]))
    if rss_all["ours"] is not None:
        lim = cache_mib + 64
        w(row([f"daemon RSS ≤ --cache-size + 64 MiB = {num(lim, 0)} MiB under every pattern",
               f"{num(rss_all['ours'] / 1024, 0)} MiB (max VmHWM)",
               verdict(rss_all["ours"] / 1024 <= lim)]))
    if "mono" in kinds:
        over = (med("index_bytes", "ours", "mono") or 0) + (med("ckpt_bytes", "ours", "mono") or 0)
        stream = med("opus_bytes", "-", "mono")
        w(row([f"index + checkpoints ≤ 10 % of the stream (64 kbit/s mono, {meta('ckpt_interval_s')} s spacing)",
               f"{100 * over / stream:.1f} % ({num(over, 0)} of {num(stream, 0)} B)",
               verdict(over <= 0.10 * stream)]))
    if ls["ours"] is not None:
        w(row([f"`ls -lR` of a fresh mount, {n_ls} recordings in {meta('ls_folders')} "
               "folders, ≤ 1 s", f"{num(ls['ours'])} s", verdict(ls["ours"] <= 1.0)]))
    w("")
    w("Where a target is not met, the next section shows what bounds it.")
    w("")

    bounds(kinds, cores, quick, mb)

    # --- commands --------------------------------------------------------------------------
    b = meta("bitrate_k", "64")
    w("## Commands")
    w("")
    w("Paths shortened: `$RUN` is the run directory, `F` the file under test, `mnt/…` "
      "the mountpoints. Every cold run starts with a fresh mount and "
      + ("`sync; echo 3 > /proc/sys/vm/drop_caches`" if meta("drop_caches") == "1"
         else "`python3 scripts/bench/probe.py evict BACKING_FILES` (drop_caches not used)")
      + ".")
    w("")
    w("```sh")
    for kind, ch in (("mono", 1), ("stereo", 2)):
        if kind in kinds:
            secs = num(med("duration_s", "-", kind), 0).replace(",", "")
            w(f"python3 scripts/bench/material.py {secs} {ch} - | opusenc --quiet "
              f"--bitrate {int(b) * ch} - {kind}.opus")
    w(f"zarr-wavfs import $RUN/archive $RUN/src/mono.opus --bitrate {b}k   # and stereo.opus")
    w(f"zarr-wavfs mount $RUN/archive mnt/ours -f --cache-size {meta('cache_size')} --log LOG")
    w("ffmpegfs -f --desttype=wav --audiosamplerate=48K --cachepath=$RUN/cache-NEW "
      "--logfile=LOG $RUN/src mnt/ffmpegfs")
    w("opusdec --quiet X.opus X.wav && sync X.wav")
    w("ffmpeg -nostdin -v error -y -i X.opus -c:a pcm_s16le X.wav && sync X.wav")
    w(f"{meta('pin')} zarr-wavfs decode-limit $RUN/archive mono   # limit; prints its seconds".strip())
    w("zarr-wavfs extract $RUN/archive mono -o /dev/shm/…/mono.wav; cat /dev/shm/…/mono.wav > /dev/null")
    w("cat F > /dev/null                        # cold sequential")
    w("stat -c %s F; cat F | wc -c; stat -c %s F  # completeness, on one more fresh mount")
    w("python3 scripts/bench/probe.py ttfb F")
    w("python3 scripts/bench/probe.py pread F OFFSET --evict BACKING   # per cold read, FUSE")
    w("python3 scripts/bench/probe.py reads F OFFSETS --cold           # disk and tmpfs files")
    w("python3 scripts/bench/probe.py reads F OFFSETS --warm")
    w("sox F -n stat")
    w("ffprobe -v error -show_format -show_streams F")
    w(f"python3 scripts/bench/probe.py windows F {meta('windows')} SEED")
    w("head -c BYTES mnt/…/r1.wav > /dev/null                  # 1 reader; then r1..r4 at once")
    w("ls -lR mnt/ours-ls > OUT")
    w("```")
    w("")
    w("ffmpegfs runs with `--audiosamplerate=48K` (the source rate): its default resamples "
      "to 44.1 kHz, and `--audiosamplerate=0` (keep the rate) fails in 2.13 with "
      "\"The encoder timebase is not set\". It names `X.opus` `X.opus.wav`.")
    w("")
    notes(w, "## Notes from this run")
    print("\n".join(out))


if __name__ == "__main__":
    main()
