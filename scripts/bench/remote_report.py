#!/usr/bin/env python3
"""Turns the measurements of scripts/bench/remote.sh into its Markdown section,
"## Remote archives (S3)", which scripts/bench.sh appends to its report.

    remote_report.py RESULTS.tsv META.tsv > SECTION.md

RESULTS.tsv has "measure/system/case<TAB>value" lines, one per run, read or mount
(systems: ours-local, ours-lo, ours-wan, rclone-lo, s3fs-wan, ...; cases: the codec,
or the number of recordings); META.tsv "key<TAB>value" lines. Runs are summarised as
median (min–max), reads as nearest-rank percentiles of all reads. Nothing here measures
anything.
"""

import statistics
import sys

from benchlib import failed, load, med, meta, notes, num, pct, row, runs, v

OUT = []
w = OUT.append


LINK_TITLE = {"local": "local", "lo": "S3 loopback"}
PEER_TITLE = {"rclone": "rclone mount + ffmpegfs", "s3fs": "s3fs + ffmpegfs"}


def title(system):
    sysname, link = system.split("-", 1)
    lt = LINK_TITLE.get(link, f"S3 {2 * int(meta('delay_ms', '10'))} ms RTT")
    return lt if sysname == "ours" else f"{PEER_TITLE.get(sysname, sysname)}, {lt}"


def seq_ratio(system, case):
    """Throughput as a share of local: local's time ÷ this system's, per run (runs
    alternate, so run r of each saw the same state of the machine); the median. Peers
    run fewer times: their first runs are paired with local's first runs."""
    a, b = v("seq_s", "ours-local", case), v("seq_s", system, case)
    if not a or not b:
        return None
    return statistics.median([x / y for x, y in zip(a, b)])


def table(case, systems):
    wav = med("wav_bytes", "-", case)
    stored = med("stored_bytes", "-", case)
    w(row(["figure"] + [title(s) for s in systems]))
    w(row(["---"] + ["--:"] * len(systems)))

    def line(label, fn):
        w(row([label] + [fn(s) for s in systems]))

    # (labels unlike those of bench.sh's tables, which tests/bench_script.rs looks for)
    line("cold `cat` of the whole WAV, s", lambda s: runs("seq_s", s, case))
    line("cold sequential, WAV MB/s", lambda s: num(wav / 1e6 / med("seq_s", s, case))
         if wav and med("seq_s", s, case) else "–")
    def share(s):
        if s == "ours-local":
            return "1.00" if v("seq_s", s, case) else "–"
        x = seq_ratio(s, case)
        return num(x, 2) if x is not None else "–"

    line("cold sequential, throughput ÷ local (median of the paired runs)", share)
    line("st_size ÷ the WAV served locally", lambda s: num(min(v("st_size", s, case)) / wav, 3)
         if v("st_size", s, case) and wav and s.startswith("ours") else "–")
    line("time to first byte (open + read 64 KiB), ms", lambda s: runs("ttfb_s", s, case, 1e3))
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        line(f"cold 4 KiB read {name} (open + pread), ms",
             lambda s, q=q: num(pct(v("cold_total_s", s, case), q) * 1e3)
             if v("cold_total_s", s, case) else "–")
    line("cold 4 KiB read p99 of the pread alone, ms",
         lambda s: num(pct(v("cold_read_s", s, case), 0.99) * 1e3)
         if v("cold_read_s", s, case) else "–")
    rtt = med("rtt_ms", "wan")

    def trips(s):
        x, loc = v("cold_total_s", s, case), v("cold_total_s", "ours-local", case)
        if not s.endswith("-wan") or not x or not loc or not rtt:
            return "–"
        return num((pct(x, 0.5) - pct(loc, 0.5)) * 1e3 / rtt, 1)

    line("cold 4 KiB read p50 over local's, in round trips", trips)
    line("cold 4 KiB reads (fresh mount each)", lambda s: str(len(v("cold_total_s", s, case)))
         + (f", {failed('cold_read_s', s, case)} failed" if failed("cold_read_s", s, case) else "")
         + (f", {len(v('short_reads', s, case))} short" if v("short_reads", s, case) else ""))

    def reqs(measure):
        def cell(s):
            if s.endswith("-local"):
                return "–"
            n = med(f"req_{measure}", s, case)
            if n is None:
                return "–"
            parts = [f"{num(med(f'{k}_{measure}', s, case), 0)} {k.upper()}"
                     for k in ("get", "list", "head") if med(f"{k}_{measure}", s, case)]
            return f"{num(n, 0)}" + (f" ({', '.join(parts)})" if parts and len(parts) > 1 or
                                     parts and not parts[0].endswith("GET") else "")
        return cell

    line("requests per mount", reqs("mount"))
    line("requests per cold `cat` (after the mount)", reqs("seq"))
    line("s3s-fs's own time during the cold `cat` (sum over its requests), s",
         lambda s: "–" if s.endswith("-local") or med("srv_seq", s, case) is None
         else num(med("srv_seq", s, case)))
    line("most requests in flight at once during the cold `cat` / a cold read (as s3s-fs "
         "saw them; medians)", lambda s: "–" if s.endswith("-local") or med("par_seq", s, case) is None
         else f"{num(med('par_seq', s, case), 0)} / {num(med('par_read', s, case), 0)}")
    line("requests per MB served by the cold `cat`",
         lambda s: "–" if s.endswith("-local") or med("req_seq", s, case) is None or not wav
         else num(med("req_seq", s, case) / (wav / 1e6), 2))
    line("bytes fetched by the cold `cat` ÷ bytes stored",
         lambda s: "–" if s.endswith("-local") or med("bytes_seq", s, case) is None
         else num(med("bytes_seq", s, case) /
                  (stored if s.startswith("ours") else med("peer_bytes", "-", "opus") or stored), 2))
    line("requests per cold 4 KiB read (after the mount)", reqs("read"))
    line("requests per time-to-first-byte read (after the mount)", reqs("ttfb"))
    w("")


def main():
    load(sys.argv[1], sys.argv[2])
    quick = meta("mode") == "quick"
    links = meta("links", "lo").split()
    codecs = meta("codecs", "flac").split()
    peers = meta("peers", "").split()
    rtt_ms = {l: med("rtt_ms", l) for l in links}
    delay = int(meta("delay_ms", "10"))
    LINK_TITLE["wan"] = f"S3 {2 * delay} ms RTT"
    secs = float(meta("secs", "0"))

    w("## Remote archives (S3)")
    w("")
    if quick:
        w("Quick mode: toy sizes (a "
          f"{num(secs, 0)}-s recording, {meta('reps')} runs, {meta('reads')} cold reads, "
          f"archives of {' and '.join(meta('sizes').split())} recordings); the figures are "
          "not meaningful and the targets are checked only for form.")
        w("")
    how = meta("wan_how", "none")
    if how == "netem":
        link_text = (f"a veth pair with `tc qdisc add dev … root netem delay {delay}ms rate "
                     f"{meta('rate_mbit')}mbit limit 10000` on both ends")
    elif how == "delayline":
        link_text = (f"`scripts/bench/delayline.py` (this kernel has no `sch_netem`): two "
                     f"TUN devices, MTU 16000, and a userspace delay line of {delay} ms each "
                     f"way at {meta('rate_mbit')} Mbit/s, which also costs CPU time on this "
                     "machine (a few µs of Python per packet)")
    else:
        link_text = None
    mins = secs / 60
    w(f"One mono 48 kHz recording of {num(mins, 0) + ' min' if secs >= 60 else num(secs, 0) + ' s'} "
      f"(scripts/bench/material.py), imported into one archive twice: as FLAC (the default "
      "codec, `flac/rec`) and, encoded once with opusenc at 64 kbit/s, as Ogg Opus (copied "
      "byte for byte, `opus/rec`). The same archive is read from its local directory, from "
      f"{meta('s3s_fs')} on the loopback interface serving a copy of the directory (as `aws s3 sync` "
      "would leave it)"
      + (f", and from a second s3s-fs serving that copy from a network namespace made for "
         f"the run, behind {link_text}" if "wan" in links and link_text else "")
      + ". Cold: every run starts with a fresh mount and the archive's files (local, or "
      "the server's) out of the page cache ("
      + ("`sync; echo 3 > /proc/sys/vm/drop_caches`; for the many cold reads `probe.py "
         "evict`, posix_fadvise(DONTNEED) per file, as in bench.sh" if meta("drop_caches") == "1"
         else "`probe.py evict`: posix_fadvise(DONTNEED) per file")
      + f"). Sequential: median (min–max) of {meta('reps')} runs"
      + (f" ({meta('peer_reps')} through the peer stacks)" if peers else "")
      + ", the systems taking turns; reads: one fresh mount per read, "
      f"{meta('reads')} per system" + (f" ({meta('peer_reads')} through the peer stacks, "
                                        "which transcode from the start of the file up to "
                                        "the offset)" if peers else "")
      + (f"; s3fs + ffmpegfs over {2 * delay} ms RTT: {meta('s3fs_wan_reps')} run(s) and "
         f"{meta('s3fs_wan_reads')} read(s), each a pass of minutes (its HEAD and LIST "
         "requests, one round trip each)" if "s3fs" in peers and "wan" in links else "")
      + ". Requests are those the server logged (s3s-fs at `RUST_LOG=s3s::service=debug`, "
      "counted by `scripts/bench/s3log.py`); bytes fetched are the ranges the GETs asked "
      "for.")
    w("")
    qa = [LINK_TITLE[l] for l in links if meta(f"quickack_{l}", "0") == "1"]
    w("s3s-fs writes a response's head and body in two writes without `TCP_NODELAY`; with "
      "the client's delayed ACKs many responses would then wait 40 ms for their second "
      "segment, an artifact of this test server (a mount served by nginx shows none). "
      + (f"The client's routes to the servers ({', '.join(qa)}) carry `quickack 1`, which "
         "removes it." if qa else "No route with `quickack 1` could be set here (not "
         "root?): the S3 figures include those stalls.")
      + (" The peers' `.opus` file is in a bucket of its own: s3s-fs answers a HEAD of a "
         "\"folder\" key with 500, which rclone retries for minutes." if peers else ""))
    w("")
    if peers:
        w("The peers are what a user would run today: a bucket holding the `.opus` file "
          "mounted with " + " or ".join(f"`{p}`" for p in peers)
          + ", and ffmpegfs on top serving each as WAV (`--desttype=wav "
          "--audiosamplerate=48K`, a fresh cache per mount; rclone with `--vfs-cache-mode "
          "full` and a fresh cache directory). They read the same Ogg Opus stream as the "
          "Opus rows.")
        w("")

    gb = med("get_bytes")
    w(row(["link", "round trip, ms", f"one GET of the {num(gb / 1e6 if gb else None, 1)} MB WAV "
           "(curl, the server's file cold), MB/s"]))
    w(row(["---", "--:", "--:"]))
    for l in links:
        w(row([LINK_TITLE[l], f"{num(rtt_ms[l], 3)} ({meta('rtt_how_' + l)})",
               runs("get_mbs", l, "-")]))
    w("")

    for c in codecs:
        wav, stored = med("wav_bytes", "-", c), med("stored_bytes", "-", c)
        name = "FLAC (the default codec)" if c == "flac" else "Ogg Opus, 64 kbit/s"
        w(f"**{name}**: WAV served {num(wav / 1e6, 1)} MB; stored {num(stored / 1e6, 2)} MB "
          f"in {num(med('objects', '-', c), 0)} objects.")
        w("")
        systems = [f"ours-{l}" for l in ["local"] + links]
        if c == "opus":
            systems += [f"{p}-{l}" for p in peers for l in links]
        systems = [s for s in systems if v("seq_s", s, c) or failed("seq_s", s, c)
                   or v("cold_total_s", s, c)]
        table(c, systems)

    sizes = [int(x) for x in meta("sizes", "").split()]
    if sizes:
        w(f"**Time to mount** an archive of many recordings (copies of one {meta('seed_s')}-s "
          f"FLAC recording in folders of {meta('per_folder')}, with its manifest): from "
          "the start of `zarr-wavfs mount ARCHIVE MNT` (detached: it returns once mounted) "
          f"to the end of `ls MNT`, median (min–max) of {meta('mount_reps')} cold mounts, and "
          "the requests each mount made (mount and `ls`), how many of them s3s-fs worked on "
          "at once, and the time it spent on them (its own `duration`s: s3s-fs lists a "
          "prefix by walking every file below it, so the listing of the archive's root "
          "costs as much as a walk of the whole archive, where S3 answers from an index; "
          "these rows measure s3s-fs as much as the mount).")
        w("")
        cols = ["local"] + links
        w(row(["recordings"] + [f"{LINK_TITLE[l]}, s" for l in cols]
              + [f"requests, {LINK_TITLE[l]}" for l in links] + ["entries listed"]))
        w(row(["--:"] * (1 + len(cols) + len(links)) + ["---"]))
        for n in sizes:
            ents = sorted({int(x) for l in cols for x in v("entries", f"ours-{l}", str(n))})
            cells = []
            for l in links:
                r = med("req_mountls", f"ours-{l}", str(n))
                if r is None:
                    cells.append("–")
                    continue
                g, ls_ = med("get_mountls", f"ours-{l}", str(n)), med("list_mountls", f"ours-{l}", str(n))
                srv = med("srv_mountls", f"ours-{l}", str(n))
                top = med("srvmax_mountls", f"ours-{l}", str(n))
                par = max(v("par_mountls", f"ours-{l}", str(n)) or [0])
                cells.append(f"{num(r, 0)} ({num(g, 0)} GET, {num(ls_, 0)} LIST; up to "
                             f"{num(par, 0)} at once; s3s-fs {num(srv)} s in all, the "
                             f"longest {num(top)} s)")
            w(row([f"{n:,}"] + [runs("mount_ls_s", f"ours-{l}", str(n)) for l in cols] + cells
                  + [", ".join(f"{e:,}" for e in ents) or "–"]))
        w("")

    # --- targets ----------------------------------------------------------------------
    def verdict(ok):
        return "**yes**" if ok else "**no**"

    w("**Targets** (" + ("quick mode: toy sizes, for form only" if quick else "issue text")
      + "):")
    w("")
    w(row(["target (remote archives)", "measured", "met?"]))
    w(row(["---", "--:", ":-:"]))
    any_target = False
    if "wan" in links:
        rtt = rtt_ms["wan"]
        for c in codecs:
            x = seq_ratio("ours-wan", c)
            if x is not None:
                any_target = True
                # What the emulated link itself allows: the stored bytes at the rate of
                # one GET over it, against the local cat.
                rate, loc = med("get_mbs", "wan"), med("seq_s", "ours-local", c)
                stored = med("stored_bytes", "-", c)
                bound = ""
                if rate and loc and stored:
                    t_link = stored / (rate * 1e6)
                    bound = (f" (one GET over this link moves the {num(stored / 1e6, 1)} MB "
                             f"stored in {num(t_link)} s: at most "
                             f"{min(1.0, loc / t_link):.2f} × local)")
                w(row([f"cold sequential over {2 * delay} ms RTT ≥ 0.8 × local ({c})" + bound,
                       f"{x:.2f} ×", verdict(x >= 0.8)]))
        for c in codecs:
            p = v("cold_total_s", "ours-wan", c)
            loc = v("cold_total_s", "ours-local", c)
            if p and loc and rtt is not None:
                any_target = True
                lim = 4 * rtt + pct(loc, 0.99) * 1e3
                w(row([f"cold 4 KiB read p99 (open + pread) ≤ 4 round trips + the local p99 "
                       f"({c}): 4 × {num(rtt, 1)} + {num(pct(loc, 0.99) * 1e3)} = {num(lim)} ms",
                       f"{num(pct(p, 0.99) * 1e3)} ms", verdict(pct(p, 0.99) * 1e3 <= lim)]))
    if sizes:
        n = max(sizes)
        for l in reversed(links):
            x = med("mount_ls_s", f"ours-{l}", str(n))
            if x is not None:
                any_target = True
                label = f"mount of {n:,} recordings ≤ 3 s, {LINK_TITLE[l]}"
                if n != 10000:
                    label += " (the target is for 10,000)"
                w(row([label, f"{num(x)} s", verdict(x <= 3.0)]))
    if not any_target:
        w(row(["(nothing measured that a target applies to)", "–", "–"]))
    w("")

    w("```sh")
    w("export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=us-east-1 "
      "AWS_ENDPOINT_URL=http://HOST:PORT")
    w("s3s-fs --host HOST --port PORT --access-key … --secret-key … $WORK/s3   # "
      "RUST_LOG=s3s_fs=info,s3s::service=debug")
    w("zarr-wavfs import $RUN/archive rec.wav --into flac; zarr-wavfs import $RUN/archive "
      "rec.opus --into opus")
    w("cp -a $RUN/archive $WORK/s3/zwbench/main")
    w("zarr-wavfs mount s3://zwbench/main MNT -f --log LOG -o timeout=30   # or $RUN/archive")
    w("cat MNT/flac/rec.wav > /dev/null")
    w("python3 scripts/bench/probe.py ttfb MNT/flac/rec.wav")
    w("python3 scripts/bench/probe.py pread MNT/flac/rec.wav OFFSET")
    w("zarr-wavfs manifest $WORK/s3/zwls/ls-N   # the local mounts read that directory too")
    w("zarr-wavfs mount s3://zwls/ls-N MNT --log LOG -o timeout=30 && ls MNT")
    if "rclone" in peers:
        w("rclone mount zwlo:zwpeer MNT-S3 --read-only --vfs-cache-mode full "
          "--cache-dir NEW   # RCLONE_CONFIG_ZWLO_TYPE=s3 …_PROVIDER=Other …_ENDPOINT=…")
    if "s3fs" in peers:
        w("s3fs zwpeer MNT-S3 -f -o ro,url=http://HOST:PORT,use_path_request_style,"
          "endpoint=us-east-1,passwd_file=F")
    if peers:
        w("ffmpegfs -f --desttype=wav --audiosamplerate=48K --cachepath=NEW MNT-S3 MNT   "
          "# then MNT/rec.opus.wav")
    w("```")
    w("")
    notes(w, "Notes from this part of the run:")
    print("\n".join(OUT))


if __name__ == "__main__":
    main()
