#!/usr/bin/env bash
# HTTP load benchmark of `zarr-wavfs serve` (issue 16): many connections at once over
# random segment URLs and random Range requests, next to the same bytes served as plain
# files by nginx (the static-file ceiling) and, for the Ogg Opus source, by ffmpegfs
# (its WAV view of the .opus file) with nginx on top.
#
#   scripts/bench/serve_load.sh [--quick] [--bin PATH] [--out FILE] [--work DIR]
#                               [--secs N] [--reps N] [--connections N] [--minutes M]
#                               [--keep]
#
# Material (deterministic, scripts/bench/material.py as scripts/bench.sh makes it): one
# 48 kHz mono signal of --minutes (full 10, quick 0.5), imported twice into one archive:
# from WAV as FLAC (site/flac.wav) and, encoded once with opusenc at 64 kbit/s, as Ogg
# Opus byte for byte (site/opus.wav). Both served WAVs are 16-bit mono, so their files
# and segments have the same sizes.
#
# Workloads, each run by wrk (-t2, --connections, default 64, for --secs, default 20;
# scripts/bench/serve_load.lua picks a random request of a fixed list per request, same
# seeds every run):
#   * seg-flac, seg-opus: `GET /site/REC.wav?start=S&end=S+5` (a complete 5-s WAV cut
#     on the server; 400 random S, millisecond precision). Baseline: nginx serving 400
#     static WAV files of the same size (cut from the extracted WAVs), "seg".
#   * seg-opus-small-cache: seg-opus with --cache-size a quarter of the decoded
#     recording, so that most segments are decoded for the request (with the default
#     256 MiB the whole decoded recording fits, and the cache soon answers everything).
#   * range-flac, range-opus: `GET /site/REC.wav` with `Range: bytes=a-(a+L-1)`, L the
#     bytes of 5 s (480,000), a random over the whole file. Baseline: nginx with the
#     same requests over the WAVs that `extract` writes.
#   * ffmpegfs range-opus: the same kind of Range requests to nginx over an ffmpegfs
#     mount (--desttype=wav) of the .opus file, over the WAV size it reports. "cold" is a
#     fresh mount with an empty cache (ffmpegfs transcodes as the requests come);
#     "warm" the same mount right after, once the transcode is cached.
# Every run gets a fresh server (fresh mount for ffmpegfs cold), so each peak RSS is its
# own: VmHWM of /proc/PID/status when wrk is done (nginx: master plus workers; ffmpegfs:
# ffmpegfs plus nginx), and the CPU time it used (utime + stime). zarr-wavfs runs without
# -v (no access log) and nginx with access_log off, worker_processes auto, sendfile on.
# Page caches are warm (the archive and the static files were just written); our span
# cache starts empty each run.
# Rounds (--reps, full 3, quick 1) run every case once, the order reversed in odd rounds,
# so that the machine's drift hits all; the report gives the median (min-max) of
# requests/s and the medians of p50/p99 latency and peak RSS, and the ratio of our
# requests/s to the baseline's in the same round (median over rounds). Note that wrk
# runs on the same machine as the server (2 threads) and takes its share of the cores.
#
# Output: a Markdown section (## HTTP load ...) to --out (default target/bench-serve.md)
# to splice into docs/BENCHMARKS.md; the raw runs as JSON lines beside it
# (OUT.jsonl). Nothing is asserted. --quick: 30-s material, 2-s runs, 1 round, 40 URLs
# per list, a temp work dir; under a minute.
#
# Needs: wrk, nginx (/usr/sbin/nginx), python3 with numpy and scipy, opusenc, curl; for
# the ffmpegfs case also ffmpegfs, fusermount3 and /dev/fuse (skipped with a note when
# missing). scripts/setup.sh installs them all.

# Functions run through traps look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail
export LC_ALL=C

HELPERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HELPERS/../.." && pwd)

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
log() { printf '[serve-load %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- options -----------------------------------------------------------------------------
COMMAND="scripts/bench/serve_load.sh${*:+ $(printf '%q ' "$@")}"
COMMAND=${COMMAND% }
QUICK=0 BIN="" OUT="" WORK="" SECS="" REPS="" CONNS=64 KEEP=0 MINUTES=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --bin) BIN=${2:?--bin needs a path}; shift ;;
        --bin=*) BIN=${1#*=} ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        --out=*) OUT=${1#*=} ;;
        --work) WORK=${2:?--work needs a directory}; shift ;;
        --work=*) WORK=${1#*=} ;;
        --secs) SECS=${2:?--secs needs a number}; shift ;;
        --secs=*) SECS=${1#*=} ;;
        --reps) REPS=${2:?--reps needs a number}; shift ;;
        --reps=*) REPS=${1#*=} ;;
        --connections) CONNS=${2:?--connections needs a number}; shift ;;
        --connections=*) CONNS=${1#*=} ;;
        --minutes) MINUTES=${2:?--minutes needs a number}; shift ;;
        --minutes=*) MINUTES=${1#*=} ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    MODE=quick SECS=${SECS:-2} REPS=${REPS:-1} MINUTES=${MINUTES:-0.5} URLS=40
else
    MODE=full SECS=${SECS:-20} REPS=${REPS:-3} MINUTES=${MINUTES:-10} URLS=400
fi
for v in SECS REPS CONNS; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v,,} must be a positive number"; done
SEG_S=5                        # seconds of each segment, and of each Range request
RATE=48000
BITRATE_K=64
CACHE_SIZE=256MiB              # serve's --cache-size (its default)
# A cache smaller than the decoded Opus recording, so that most segments decode: about a
# quarter of it (the decoded recording is MINUTES * 5.5 MiB).
SMALL_CACHE=$(python3 -c "print(max(1, round(${MINUTES:-10} * 5.5 / 4)))")MiB
SEED=16

# --- tools -------------------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }
NOTES=()
note() { log "note: $*"; NOTES+=("$*"); }
NGINX=/usr/sbin/nginx
for t in wrk opusenc python3 curl; do have "$t" || die "$t is required (scripts/setup.sh installs it)"; done
[ -x "$NGINX" ] || die "$NGINX is required (scripts/setup.sh installs nginx-light)"
PY=$(python3 -c 'import sys; print(sys.executable)')
HAVE_FFMPEGFS=1
if ! have ffmpegfs || ! have fusermount3 || [ ! -e /dev/fuse ]; then
    HAVE_FFMPEGFS=0
    note "ffmpegfs, fusermount3 or /dev/fuse missing: the ffmpegfs + nginx case is skipped"
fi

BUILT=0
if [ -z "$BIN" ]; then
    BUILT=1
    log "building the release binary (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) >&2
    BIN=$ROOT/target/release/zarr-wavfs
fi
[ -x "$BIN" ] || die "no executable at $BIN"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
GIT_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'no git')
# A given binary may come from another tree: say which one it is.
[ "$BUILT" = 1 ] || GIT_REV="$GIT_REV (tree; binary $BIN, sha256 $(sha256sum "$BIN" | cut -c1-12))"

# --- work directories ------------------------------------------------------------------------
TEMP_WORK=0
if [ -z "$WORK" ]; then
    if [ "$MODE" = quick ]; then
        WORK=$(mktemp -d "${TMPDIR:-/tmp}/zarr-wavfs-serve-load.XXXXXX"); TEMP_WORK=1
    else
        WORK=$ROOT/target/bench-work
    fi
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
MAT=$WORK/serve-load-material RUN=$WORK/serve-load-run
OUT=${OUT:-$ROOT/target/bench-serve.md}
mkdir -p "$(dirname "$OUT")"
RESULTS=$OUT.jsonl

declare -A CHILD=()            # pid -> what, every server this script started
FF_MNT=""                      # the ffmpegfs mount point while mounted

cleanup() {
    local rc=$? pid
    set +e
    trap - EXIT INT TERM
    [ -n "$FF_MNT" ] && mountpoint -q "$FF_MNT" && fusermount3 -u "$FF_MNT"
    for pid in "${!CHILD[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if [ "$KEEP" = 1 ]; then
        log "kept $RUN"
    else
        rm -rf "$RUN"
        [ "$TEMP_WORK" = 1 ] && rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
rm -rf "$RUN"
mkdir -p "$MAT" "$RUN"/{static/site,static/seg,lists,logs}

# --- material, archive, static files -----------------------------------------------------------
SECONDS_OF=$("$PY" -c "print(round($MINUTES * 60))")
KEY="$SECONDS_OF-$BITRATE_K"
if [ ! -f "$MAT/$KEY/flac.wav" ] || [ ! -f "$MAT/$KEY/opus.opus" ]; then
    log "making $SECONDS_OF s of material and encoding it to Opus"
    rm -rf "${MAT:?}/$KEY" "$MAT/$KEY.tmp"; mkdir -p "$MAT/$KEY.tmp"
    "$PY" "$HELPERS/material.py" "$SECONDS_OF" 1 "$MAT/$KEY.tmp/flac.wav"
    opusenc --quiet --bitrate "$BITRATE_K" "$MAT/$KEY.tmp/flac.wav" "$MAT/$KEY.tmp/opus.opus"
    mv "$MAT/$KEY.tmp" "$MAT/$KEY"
fi
ARCH=$RUN/arch.zarr
log "importing into $ARCH"
"$BIN" import "$ARCH" "$MAT/$KEY/flac.wav" --into site --codec flac >"$RUN/logs/import.log" 2>&1 ||
    die "import flac: $(cat "$RUN/logs/import.log")"
"$BIN" import "$ARCH" "$MAT/$KEY/opus.opus" --into site >>"$RUN/logs/import.log" 2>&1 ||
    die "import opus: $(cat "$RUN/logs/import.log")"
for r in flac opus; do
    "$BIN" extract "$ARCH" "site/$r" -o "$RUN/static/site/$r.wav" 2>>"$RUN/logs/import.log" ||
        die "extract site/$r: $(cat "$RUN/logs/import.log")"
done
FILE_LEN=$(stat -c %s "$RUN/static/site/flac.wav")
[ "$FILE_LEN" = "$(stat -c %s "$RUN/static/site/opus.wav")" ] || die "the two WAVs differ in size"

# The request lists (one per workload) and the static segment files, from one seeded draw.
log "writing $URLS requests per workload and the static segment files"
"$PY" - "$RUN" "$URLS" "$SEG_S" "$RATE" "$SEED" <<'EOF'
import random, struct, sys
run, urls, seg_s, rate, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
lists = {k: [] for k in ("seg-flac", "seg-opus", "seg-static", "range-flac", "range-opus")}
for rec in ("flac", "opus"):
    data = open(f"{run}/static/site/{rec}.wav", "rb").read()
    assert data[36:40] == b"data", "expected a plain 44-byte WAV header"
    frames = struct.unpack("<I", data[40:44])[0] // 2
    secs = frames / rate
    length = int(seg_s * rate) * 2                       # bytes of 5 s of 16-bit mono
    for i in range(urls):
        s = round(rnd.uniform(0, secs - seg_s), 3)
        lists[f"seg-{rec}"].append(f"/site/{rec}.wav?start={s:.3f}&end={s + seg_s:.3f}")
        # the same span as a static file: what `extract --start --end` would write
        a, b = round(s * rate), round((s + seg_s) * rate)
        body = data[44 + 2 * a:44 + 2 * b]
        head = (b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVEfmt "
                + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
                + b"data" + struct.pack("<I", len(body)))
        open(f"{run}/static/seg/{rec}-{i}.wav", "wb").write(head + body)
        lists["seg-static"].append(f"/seg/{rec}-{i}.wav")
        a = rnd.randrange(0, len(data) - length)
        lists[f"range-{rec}"].append(f"/site/{rec}.wav\tbytes={a}-{a + length - 1}")
for k, v in lists.items():
    open(f"{run}/lists/{k}.txt", "w").write("\n".join(v) + "\n")
EOF

# --- servers ---------------------------------------------------------------------------------
PORT="" SERVER_PIDS=()
start_ours() { # [CACHE_SIZE]
    local out=$RUN/logs/ours.out
    : >"$out"
    "$BIN" serve "$ARCH" --listen 127.0.0.1:0 --cache-size "${1:-$CACHE_SIZE}" \
        >"$out" 2>>"$RUN/logs/ours.stderr" &
    local pid=$!
    CHILD[$pid]=ours SERVER_PIDS=("$pid")
    local i
    for i in $(seq 100); do
        PORT=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$out")
        [ -n "$PORT" ] && return 0
        kill -0 "$pid" 2>/dev/null || die "serve exited: $(tail -5 "$RUN/logs/ours.stderr")"
        sleep 0.1
    done
    die "serve did not start in 10 s"
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_nginx() { # ROOT
    local d=$RUN/nginx i
    rm -rf "$d"; mkdir -p "$d"
    PORT=$(free_port)
    cat >"$d/nginx.conf" <<EOF
daemon off;
user $(id -un);
worker_processes auto;
pid "$d/nginx.pid";
error_log "$d/error.log" notice;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path "$d/client_body";
    proxy_temp_path "$d/proxy";
    fastcgi_temp_path "$d/fastcgi";
    uwsgi_temp_path "$d/uwsgi";
    scgi_temp_path "$d/scgi";
    types { audio/wav wav; }
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$PORT;
        root "$1";
        location / { }
    }
}
EOF
    "$NGINX" -c "$d/nginx.conf" 2>>"$RUN/logs/nginx.stderr" &
    local pid=$!
    CHILD[$pid]=nginx SERVER_PIDS+=("$pid")
    for i in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
        kill -0 "$pid" 2>/dev/null || die "nginx exited: $(cat "$d/error.log")"
        sleep 0.1
    done
    die "nginx did not start in 10 s"
}
start_ffmpegfs() {
    local src=$RUN/ff-src
    FF_MNT=$RUN/ff-mnt
    mkdir -p "$src" "$FF_MNT"
    ln -sf "$MAT/$KEY/opus.opus" "$src/opus.opus"
    rm -rf "$RUN/ff-cache"
    ffmpegfs -f --desttype=wav --audiosamplerate=48K --cachepath="$RUN/ff-cache" \
        --logfile="$RUN/logs/ffmpegfs.log" "$src" "$FF_MNT" >>"$RUN/logs/ffmpegfs.stderr" 2>&1 &
    local pid=$! i
    CHILD[$pid]=ffmpegfs SERVER_PIDS=("$pid")
    for i in $(seq 100); do
        mountpoint -q "$FF_MNT" && [ -e "$FF_MNT/opus.opus.wav" ] && return 0
        kill -0 "$pid" 2>/dev/null || die "ffmpegfs exited: $(tail -5 "$RUN/logs/ffmpegfs.stderr")"
        sleep 0.1
    done
    die "ffmpegfs did not mount in 10 s"
}
stop_servers() { # the last started first (nginx before the ffmpegfs under it)
    local i pid
    for ((i = ${#SERVER_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${SERVER_PIDS[i]}
        if [ "${CHILD[$pid]}" = ffmpegfs ] && mountpoint -q "$FF_MNT"; then
            fusermount3 -u "$FF_MNT" || kill "$pid" 2>/dev/null || true
        else
            kill "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        unset "CHILD[$pid]"
    done
    SERVER_PIDS=()
}
# Peak RSS (KiB, VmHWM) and CPU seconds of the servers' processes and their children.
usage_of() {
    local pid kids hwm=0 ticks=0 p v
    local all=()
    for pid in "${SERVER_PIDS[@]}"; do
        all+=("$pid")
        kids=$(pgrep -P "$pid" || true)
        for p in $kids; do all+=("$p"); done
    done
    for p in "${all[@]}"; do
        v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
        hwm=$((hwm + ${v:-0}))
        v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        ticks=$((ticks + ${v:-0}))
    done
    echo "$hwm $("$PY" -c "print($ticks / $(getconf CLK_TCK))")"
}

# The first request of a list, to check the server answers it as expected.
check_first() { # LIST EXPECTED_STATUS EXPECTED_BYTES
    local line path range got
    line=$(head -1 "$1")
    path=${line%%$'\t'*} range=""
    [[ $line == *$'\t'* ]] && range=${line#*$'\t'}
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' ${range:+-H "Range: $range"} \
        --max-time 60 "http://127.0.0.1:$PORT$path")
    [ "$got" = "$2 $3" ] || die "http://127.0.0.1:$PORT$path${range:+ ($range)}: got '$got', expected '$2 $3'"
}

# One run's figures for the log.
SUMMARY_PY='
import json, sys
w = json.loads(sys.argv[1])
rps = w["requests"] * 1e6 / w["duration_us"]
p50, p99 = w["latency_us"]["p50"] / 1e3, w["latency_us"]["p99"] / 1e3
errors = sum(w["errors"].values())
print(f"{rps:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors")
'
run_wrk() { # SYSTEM WORKLOAD LIST ROUND [STATE]
    local out=$RUN/logs/wrk-$1-$2-$4${5:+-$5}.txt json use
    SERVE_LOAD_TARGETS=$3 SERVE_LOAD_SEED=$SEED \
        timeout $((SECS + 60)) wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 10s \
        -s "$HELPERS/serve_load.lua" "http://127.0.0.1:$PORT/" >"$out" 2>&1 ||
        die "wrk failed: $(cat "$out")"
    use=$(usage_of)
    json=$(sed -n 's/^JSON //p' "$out")
    [ -n "$json" ] || die "no result from wrk: $(cat "$out")"
    printf '{"system": "%s", "workload": "%s", "state": "%s", "round": %d, "rss_kib": %s, "cpu_s": %s, "wrk": %s}\n' \
        "$1" "$2" "${5:-}" "$4" "${use% *}" "${use#* }" "$json" >>"$RESULTS"
    log "$1 $2${5:+ ($5)} round $4: $("$PY" -c "$SUMMARY_PY" "$json"), peak RSS $((${use% *} / 1024)) MiB"
}

SEG_LEN=$((44 + SEG_S * RATE * 2)) RANGE_LEN=$((SEG_S * RATE * 2))
case_ours() { # WORKLOAD ROUND
    local list=$1
    case $1 in
        *-small-cache) start_ours "$SMALL_CACHE"; list=${1%-small-cache} ;;
        *) start_ours ;;
    esac
    case $1 in
        seg-*) check_first "$RUN/lists/$list.txt" 200 "$SEG_LEN" ;;
        range-*) check_first "$RUN/lists/$list.txt" 206 "$RANGE_LEN" ;;
    esac
    run_wrk zarr-wavfs "$1" "$RUN/lists/$list.txt" "$2"
    stop_servers
}
case_nginx() { # WORKLOAD ROUND
    start_nginx "$RUN/static"
    case $1 in
        seg) check_first "$RUN/lists/seg-static.txt" 200 "$SEG_LEN"
             run_wrk nginx seg "$RUN/lists/seg-static.txt" "$2" ;;
        range-*) check_first "$RUN/lists/$1.txt" 206 "$RANGE_LEN"
                 run_wrk nginx "$1" "$RUN/lists/$1.txt" "$2" ;;
    esac
    stop_servers
}
case_ffmpegfs() { # ROUND: cold (fresh mount, empty cache), then warm on the same mount
    start_ffmpegfs
    local size list=$RUN/lists/range-ffmpegfs.txt
    start_nginx "$FF_MNT"
    size=$(stat -c %s "$FF_MNT/opus.opus.wav")
    "$PY" - "$size" "$RANGE_LEN" "$URLS" "$SEED" >"$list" <<'EOF'
import random, sys
size, length, urls, seed = map(int, sys.argv[1:])
rnd = random.Random(seed + 1)
for _ in range(urls):
    a = rnd.randrange(0, size - length)
    print(f"/opus.opus.wav\tbytes={a}-{a + length - 1}")
EOF
    run_wrk ffmpegfs+nginx range-opus "$list" "$1" cold
    # warm: the whole transcode in ffmpegfs's cache first
    timeout 600 cat "$FF_MNT/opus.opus.wav" >/dev/null
    run_wrk ffmpegfs+nginx range-opus "$list" "$1" warm
    stop_servers
}

CASES=("ours seg-flac" "nginx seg" "ours seg-opus" "ours seg-opus-small-cache" "ours range-flac" "nginx range-flac"
       "ours range-opus" "nginx range-opus")
[ "$HAVE_FFMPEGFS" = 1 ] && CASES+=("ffmpegfs")
: >"$RESULTS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "$MODE run: ${#CASES[@]} cases x $REPS rounds, $CONNS connections, $SECS s each"
for ((round = 0; round < REPS; round++)); do
    order=("${CASES[@]}")
    if ((round % 2 == 1)); then
        order=(); for ((i = ${#CASES[@]} - 1; i >= 0; i--)); do order+=("${CASES[i]}"); done
    fi
    for c in "${order[@]}"; do
        # shellcheck disable=SC2086 # "system workload" splits into two arguments
        set -- $c
        "case_$1" "${2:-$round}" "$round"
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
printf '%s\n' ${NOTES[@]+"${NOTES[@]}"} >"$RUN/notes.txt"

"$PY" "$HELPERS/serve_load_report.py" "$RESULTS" \
    --mode "$MODE" --command "$COMMAND" --rev "$GIT_REV" --secs "$SECS" --reps "$REPS" \
    --connections "$CONNS" --material-s "$SECONDS_OF" --file-len "$FILE_LEN" --seg-s "$SEG_S" \
    --urls "$URLS" --load "$LOAD_START -> $LOAD_END" --cores "$(nproc)" \
    --cpu "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)" \
    --wrk "$(wrk --version 2>&1 | head -1 | cut -d' ' -f2)" \
    --nginx "$("$NGINX" -v 2>&1 | sed 's/.*version: nginx.//')" \
    --ffmpegfs "$(dpkg-query -W -f='${Version}' ffmpegfs 2>/dev/null || echo '(version unknown)')" \
    --small-cache "$SMALL_CACHE" \
    --notes "$RUN/notes.txt" \
    >"$OUT"
log "report: $OUT (raw runs: $RESULTS)"
cat "$OUT"
