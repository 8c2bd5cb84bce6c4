#!/usr/bin/env python3
"""The Markdown section of scripts/bench/serve_load.sh from its JSON lines of runs.

    serve_load_report.py RESULTS.jsonl --mode M --command C ... > section.md

One line per run: {"system", "workload", "state", "round", "rss_kib", "cpu_s", "wrk":
{requests, duration_us, bytes, errors, latency_us: {p50, p90, p99, max, mean}}}.
Per case: median (min-max) of requests/s over the rounds, medians of p50/p99 latency,
of throughput and of peak RSS, the errors summed; for zarr-wavfs and ffmpegfs the
ratio of requests/s to the nginx baseline of the same workload in the same round, the
median over the rounds (and min-max).
"""

import argparse
import json
import statistics
import sys

WORKLOADS = {
    "seg-flac": ("5-s segment URLs, FLAC source", "seg"),
    "seg-opus": ("5-s segment URLs, Opus source", "seg"),
    "seg": ("5-s segment-sized static files", None),
    "seg-opus-small-cache": ("5-s segment URLs, Opus source, --cache-size {small}", "seg"),
    "range-flac": ("5-s Range requests of the whole WAV, FLAC source", "range-flac"),
    "range-opus": ("5-s Range requests of the whole WAV, Opus source", "range-opus"),
}
ORDER = [
    ("zarr-wavfs", "seg-flac", ""), ("zarr-wavfs", "seg-opus", ""),
    ("zarr-wavfs", "seg-opus-small-cache", ""), ("nginx", "seg", ""),
    ("zarr-wavfs", "range-flac", ""), ("nginx", "range-flac", ""),
    ("zarr-wavfs", "range-opus", ""), ("nginx", "range-opus", ""),
    ("ffmpegfs+nginx", "range-opus", "cold"), ("ffmpegfs+nginx", "range-opus", "warm"),
]


def rps(r):
    w = r["wrk"]
    return w["requests"] * 1e6 / w["duration_us"]


def spread(xs, fmt):
    m = statistics.median(xs)
    if len(xs) == 1:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(xs))}–{fmt(max(xs))})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    for k in ("mode", "command", "rev", "secs", "reps", "connections", "material-s",
              "file-len", "seg-s", "urls", "load", "cores", "cpu", "wrk", "nginx",
              "ffmpegfs", "notes", "small-cache"):
        ap.add_argument(f"--{k}", default="")
    a = ap.parse_args()
    runs = [json.loads(l) for l in open(a.results) if l.strip()]
    by = {}
    for r in runs:
        by.setdefault((r["system"], r["workload"], r["state"]), []).append(r)
    baseline = {(r["workload"], r["round"]): rps(r) for r in runs if r["system"] == "nginx"}

    out = []
    p = out.append
    p("## HTTP load: `zarr-wavfs serve` next to nginx and ffmpegfs + nginx (issue 16)")
    p("")
    mins = int(a.material_s) / 60
    p(f"`{a.command}` ({a.mode} mode) at `{a.rev}`: wrk {a.wrk}, {a.connections} "
      f"connections on 2 threads, {a.secs} s per run, {a.reps} round(s) of every case "
      f"(order reversed in odd rounds), each run on a fresh server. Material: one "
      f"{mins:g}-minute 48 kHz mono signal (scripts/bench/material.py) imported as FLAC "
      f"and, encoded with opusenc at 64 kbit/s, as Ogg Opus; both served as 16-bit WAV "
      f"files of {int(a.file_len):,} bytes. Requests: a random one of {a.urls} per "
      f"workload, the same every run: segment URLs `?start=S&end=S+{a.seg_s}` "
      f"({int(a.seg_s) * 96000 + 44:,}-byte WAVs cut on the server), or Range requests of "
      f"{int(a.seg_s) * 96000:,} bytes at random offsets of the whole file. Baselines: "
      f"nginx {a.nginx} (worker_processes auto, sendfile, access log off) serving the "
      f"extracted WAVs and the same segments as static files; for the Opus source "
      f"ffmpegfs {a.ffmpegfs} (`--desttype=wav`) with nginx over its mount, cold (fresh mount, "
      f"empty cache: it transcodes while the requests come) and warm (the same mount "
      f"once the whole transcode is cached). Peak RSS: VmHWM of the server's processes "
      f"(nginx: master + workers; ffmpegfs + nginx: both); CPU: their user + system "
      f"time in the run (for ffmpegfs warm, both figures include the cold run and the "
      f"full read before it). zarr-wavfs runs "
      f"with its default `--cache-size 256MiB` (the decoded recording, "
      f"{int(a.file_len) / 2**20:.0f} MiB, fits; one Opus case with {a.small_cache}, where "
      f"most segments have to be decoded) and no access log; its span cache starts "
      f"empty each run, page caches are warm. wrk runs on the same {a.cores}-core "
      f"machine ({a.cpu}) and takes its share of it; load average {a.load}.")
    p("")
    p("| server | workload | requests/s | vs nginx | p50 ms | p99 ms | MB/s | errors | peak RSS MiB | CPU s |")
    p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in ORDER:
        rs = by.get(key)
        if not rs:
            continue
        system, workload, state = key
        name = WORKLOADS[workload][0].format(small=a.small_cache) + (f", {state}" if state else "")
        ratio = "baseline"
        base_wl = WORKLOADS[workload][1]
        if system != "nginx" and base_wl:
            rat = [rps(r) / baseline[(base_wl, r["round"])] for r in rs
                   if (base_wl, r["round"]) in baseline]
            ratio = spread(rat, lambda x: f"{x:.2f}×") if rat else "–"
        errs = sum(sum(r["wrk"]["errors"].values()) for r in rs)
        p(f"| {system} | {name} | {spread([rps(r) for r in rs], lambda x: f'{x:,.0f}')} | {ratio} "
          f"| {statistics.median(r['wrk']['latency_us']['p50'] for r in rs) / 1e3:.1f} "
          f"| {statistics.median(r['wrk']['latency_us']['p99'] for r in rs) / 1e3:.1f} "
          f"| {statistics.median(r['wrk']['bytes'] / r['wrk']['duration_us'] for r in rs):.0f} "
          f"| {errs} "
          f"| {statistics.median(r['rss_kib'] for r in rs) / 1024:.0f} "
          f"| {statistics.median(r['cpu_s'] for r in rs):.1f} |")
    p("")
    p("requests/s: median (min–max) over the rounds; vs nginx: our (or ffmpegfs's) "
      "requests/s over nginx's for the same workload in the same round, median (min–max); "
      "p50/p99: wrk's latency percentiles, median over the rounds; errors: wrk's "
      "connect, read, write, timeout (10 s) and non-2xx counts, summed.")
    notes = [l.strip() for l in open(a.notes)] if a.notes else []
    notes = [n for n in notes if n]
    if notes:
        p("")
        for n in notes:
            p(f"- note: {n}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
