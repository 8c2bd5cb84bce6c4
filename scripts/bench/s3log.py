#!/usr/bin/env python3
"""Counts the requests an s3s-fs server received, for scripts/bench/remote.sh.

    s3log.py DATA_DIR < SPANS > RESULTS

SPANS has one line per measured operation, "KEY<TAB>LOG<TAB>FROM<TAB>TO": KEY is
"measure/system/case", LOG an s3s-fs log, FROM and TO its size in bytes before and after
the operation. s3s-fs at RUST_LOG=s3s::service=debug logs one `s3s::service: req:
Request { method: M, uri: U, ... headers: {..., "range": "bytes=A-B", ...} }` line as
each request arrives. For each span this prints the lines ("PREFIX_measure/system/case
<TAB>count") of bench.sh's results format:

    req_KEY    requests
    get_KEY    object GETs
    list_KEY   listings (GETs of the bucket: `?list-type=`, `?prefix=`, `?delimiter=`)
    head_KEY   HEADs
    bytes_KEY  bytes the object GETs asked for: the range, clamped to the object's size
               (the file under DATA_DIR, an s3s-fs bucket being a directory), or the
               whole object without a range
    srv_KEY    seconds the server spent on them: the sum of s3s's `duration:` lines,
               each from the request's arrival to its response head (for a listing
               all of its work; an object's body is sent after)
    srvmax_KEY the longest of those durations
    par_KEY    the most requests the server was working on at once (from each
               response's time and duration): how many the client had in flight, as
               far as the server could tell

Standard library only (run with python3 -S).
"""

import datetime
import os
import re
import sys
import urllib.parse

ANSI = re.compile(r"\x1b\[[0-9;]*m")
REQ = re.compile(r"s3s::service: req: Request \{ method: (\w+), uri: (\S+),")
RANGE = re.compile(r'"range": "bytes=(\d*)-(\d*)"')
DURATION = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z .*s3s::service: "
                      r"duration: ([0-9.]+)(ns|µs|us|ms|s),")
UNIT = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def requested(uri, line, data_dir):
    path = urllib.parse.unquote(uri.split("?", 1)[0])
    try:
        size = os.stat(os.path.join(data_dir, path.lstrip("/"))).st_size
    except OSError:
        size = 0
    m = RANGE.search(line)
    if not m:
        return size
    a, b = m.group(1), m.group(2)
    if a == "":                      # suffix range: the last b bytes
        return min(int(b), size)
    a = int(a)
    end = size - 1 if b == "" else min(int(b), size - 1)
    return max(0, end - a + 1)


def count(log, start, end, data_dir):
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read(max(0, end - start)).decode("utf-8", "replace")
    n = gets = lists = heads = nbytes = 0
    server = longest = 0.0
    events = []                      # (time, +1 at a request's start, -1 at its response)
    for line in text.splitlines():
        line = ANSI.sub("", line)
        d = DURATION.search(line)
        if d:
            secs = float(d.group(2)) * UNIT[d.group(3)]
            server += secs
            longest = max(longest, secs)
            t = datetime.datetime.fromisoformat(d.group(1)).timestamp()
            events += [(t - secs, 1), (t, -1)]
            continue
        m = REQ.search(line)
        if not m:
            continue
        n += 1
        method, uri = m.group(1), m.group(2)
        path, _, query = uri.partition("?")
        bucket_only = "/" not in urllib.parse.unquote(path).strip("/")
        if method == "GET" and (bucket_only or re.search(r"(^|&)(list-type|prefix|delimiter)=", query)):
            lists += 1
        elif method == "GET":
            gets += 1
            nbytes += requested(uri, line, data_dir)
        elif method == "HEAD":
            heads += 1
    # The most requests the server was working on at once: from each response's time
    # and duration, its start (ends sort before starts at the same instant).
    inflight = most = 0
    for _, e in sorted(events):
        inflight += e
        most = max(most, inflight)
    return {"req": n, "get": gets, "list": lists, "head": heads, "bytes": nbytes,
            "srv": round(server, 6), "srvmax": round(longest, 6), "par": most}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data_dir = sys.argv[1]
    for line in sys.stdin:
        if not line.strip():
            continue
        key, log, start, end = line.rstrip("\n").split("\t")
        for what, n in count(log, int(start), int(end), data_dir).items():
            print(f"{what}_{key}\t{n}")


if __name__ == "__main__":
    main()
