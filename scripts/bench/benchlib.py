"""What the report scripts of scripts/bench/ share (report.py, ab_report.py,
remote_report.py): reading results and metadata, and formatting figures.

RESULTS.tsv has one line per run or read, "measure/system/case<TAB>value", optionally
"<TAB>pair" (ab.sh: the A/B pair or offset it belongs to); META.tsv "key<TAB>value"
lines. Standard library only.
"""

import math
import statistics
from collections import defaultdict

R = defaultdict(list)   # "measure/system/case" -> [float], in run order
P = defaultdict(dict)   # "measure/system/case" -> {pair: float}
M = defaultdict(list)   # meta key -> [str]


def load(results, meta):
    for line in open(results):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2:
            continue
        try:
            value = float(parts[1])
        except ValueError:
            continue
        R[parts[0]].append(value)
        if len(parts) > 2 and parts[2] != "-":
            P[parts[0]][int(parts[2])] = value
    for line in open(meta):
        if "\t" in line:
            k, val = line.rstrip("\n").split("\t", 1)
            M[k].append(val)


def meta(k, default="?"):
    return M[k][-1] if M.get(k) else default


def v(measure, system="-", case="-"):
    return R.get(f"{measure}/{system}/{case}", [])


def med(measure, system="-", case="-"):
    x = v(measure, system, case)
    return statistics.median(x) if x else None


def pct(values, q):
    """Nearest-rank percentile: the smallest value with at least q of them at or below."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def failed(measure, system, case):
    return len(v(f"failed/{measure}", system, case))


def num(x, digits=None):
    if x is None:
        return "–"
    if digits is None:
        a = abs(x)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3 if a >= 0.01 else 4
    return f"{x:,.{digits}f}"


def spread(xs, scale=1.0, digits=None):
    """median (min–max) of xs times scale; a single value alone."""
    if not xs:
        return "–"
    xs = [x * scale for x in xs]
    if len(xs) == 1:
        return num(xs[0], digits)
    return f"{num(statistics.median(xs), digits)} ({num(min(xs), digits)}–{num(max(xs), digits)})"


def runs(measure, system, case, scale=1.0, invert=None):
    """spread of the runs, times `scale`; `invert`: invert/value instead (a rate from
    times). A failure count is added when some runs failed."""
    x = v(measure, system, case)
    f = failed(measure, system, case)
    if not x:
        return f"failed ×{f}" if f else "–"
    text = spread([invert / t for t in x]) if invert is not None else spread(x, scale)
    return text + (f", {f} failed" if f else "")


def row(cells):
    return "| " + " | ".join(cells) + " |"


def notes(w, heading):
    """The run's notes (meta key "note") as a list under heading, through w."""
    if M.get("note"):
        w(heading)
        w("")
        for n in M["note"]:
            w(f"- {n}")
        w("")
