#!/usr/bin/env bash
# Remote archives (S3): the same recordings read from a local archive, from S3 on
# loopback and from S3 behind an added 20 ms round trip, next to what a user would run
# today (the bucket mounted with rclone or s3fs, ffmpegfs on top serving the Ogg Opus
# files as WAV). Writes one Markdown section, "## Remote archives (S3)", that
# scripts/bench.sh appends to its report; runs alone as well.
#
#   scripts/bench/remote.sh [--quick] [--bin PATH] [--out FILE] [--work DIR] [--reps N]
#                           [--reads N] [--secs S] [--sizes "N N"] [--keep]
#                           [--drop-caches|--no-drop-caches] [--no-latency] [--no-peers]
#
# Material: one deterministic mono 48 kHz recording (scripts/bench/material.py; 20 min,
# --quick 20 s), imported twice into one local archive: as FLAC (the default codec,
# flac/rec) and, encoded once with opusenc at 64 kbit/s, as Ogg Opus (copied byte for
# byte, opus/rec). The archive directory is then copied into the bucket directory of an
# s3s-fs server (an archive synced with a standard tool), and the .opus file into a
# bucket of its own for the peers. Two s3s-fs servers serve that one directory: one on
# loopback (127.77.N.1, a /32 route of its own), one in a
# network namespace made by this script (zwbench-PID, removed at the end) behind a link
# with 10 ms each way and 1 Gbit/s: `tc qdisc ... netem delay 10ms rate 1gbit` on both
# ends of a veth pair, or, where the kernel has no sch_netem, scripts/bench/delayline.py
# (two TUN devices and a userspace delay line; the report says which). The round trip is
# measured with ping (or TCP connects), the link's rate with one GET of a large object.
# Both routes carry `quickack 1`: s3s-fs sends a response's head and body in two
# segments without TCP_NODELAY, and delayed ACKs would otherwise stall many responses
# by 40 ms (an artifact of the test server, not of S3).
#
# Figures, each cold (a fresh mount; the archive's files, local or the server's, evicted
# from the page cache: `sync; echo 3 > /proc/sys/vm/drop_caches` in full mode as root,
# else posix_fadvise per file with scripts/bench/probe.py evict): sequential `cat` (runs
# alternate between the systems; medians, ratio to local from the same run), time to
# first byte, 4 KiB reads at random offsets (a fresh mount per read; p50/p99), the time
# from `zarr-wavfs mount` (detached: it returns once mounted) until `ls MNT` has listed
# the tree of an archive of 1,000 and 10,000 recordings (--quick: 100 and 200) in
# folders of 100 (copies of one 2-s recording and `zarr-wavfs manifest`), and the
# requests each server received per mount, per cold cat, per MB served and per cold
# read, with how many it had in flight at once and its own time (s3s-fs logs every
# request at RUST_LOG=s3s::service=debug; scripts/bench/s3log.py counts them). Targets (issue text): cold sequential over 20 ms RTT >= 0.8 x local;
# cold 4 KiB read p99 <= 4 round trips + the local p99; mount of 10,000 recordings <= 3 s.
#
# Needs: fusermount3 and /dev/fuse, python3 (numpy and scipy for the material), s3s-fs
# (scripts/setup.sh installs it into /var/cache/zarr-wavfs), opusenc (else the Opus rows
# and the peers are skipped). The 20 ms rows need root, ip and a kernel with network
# namespaces (skipped with a note otherwise). Peers (rclone, s3fs, ffmpegfs; installed
# by scripts/setup.sh) are skipped with a note when missing. Never fails for a missing
# optional part: it writes the section with a note instead.

# Functions run through `timed`, traps and background jobs look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail
export LC_ALL=C

HELPERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HELPERS/../.." && pwd)

LOG_TAG=remote
# shellcheck source=scripts/bench/common.sh
. "$HELPERS/common.sh"

# --- options -----------------------------------------------------------------------------
QUICK=0 BIN="" OUT="" WORK="" REPS="" READS="" SECS="" SIZES="" KEEP=0 DROP="" LATENCY=1 WANT_PEERS=1
while [ $# -gt 0 ]; do
    if common_option "$@"; then shift "$OPT_SHIFT"; continue; fi
    case $1 in
        --bin) BIN=${2:?--bin needs a path}; shift ;;
        --bin=*) BIN=${1#*=} ;;
        --reps) REPS=${2:?--reps needs a number}; shift ;;
        --reps=*) REPS=${1#*=} ;;
        --reads) READS=${2:?--reads needs a number}; shift ;;
        --reads=*) READS=${1#*=} ;;
        --secs) SECS=${2:?--secs needs a number}; shift ;;
        --secs=*) SECS=${1#*=} ;;
        --sizes) SIZES=${2:?--sizes needs numbers}; shift ;;
        --sizes=*) SIZES=${1#*=} ;;
        --no-latency) LATENCY=0 ;;
        --no-peers) WANT_PEERS=0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

# --- sizes of the two modes --------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
    MODE=quick
    SECS=${SECS:-20}           # the recording, seconds
    REPS=${REPS:-2}            # cold cats per system
    TTFB_REPS=1                # cold first reads per system
    PEER_REPS=1                # cold cats through a peer stack
    READS=${READS:-3}          # cold 4 KiB reads per system (a fresh mount each)
    PEER_READS=1               # cold 4 KiB reads through a peer stack
    S3FS_WAN_REPS=1 S3FS_WAN_READS=1
    SIZES=${SIZES:-100 200}    # recordings in the mount-time archives
    MOUNT_REPS=1               # mounts per archive and link
    ONE_PEER=1                 # only the first peer stack found (rclone, else s3fs)
    PINGS=5 GETS=1             # round trips timed, GETs of the link's rate
    DROP=${DROP:-0}
else
    MODE=full
    SECS=${SECS:-1200}
    REPS=${REPS:-5}
    TTFB_REPS=$REPS
    PEER_REPS=3
    # s3fs + ffmpegfs over 20 ms RTT takes minutes per pass over a 20-min file (about
    # 1,400 HEAD and LIST requests per MB, one round trip each): one cat, two reads.
    S3FS_WAN_REPS=1 S3FS_WAN_READS=2
    READS=${READS:-50}
    PEER_READS=10
    SIZES=${SIZES:-1000 10000}
    MOUNT_REPS=5
    ONE_PEER=0
    PINGS=20 GETS=3
    DROP=${DROP:-1}
fi
PER_FOLDER=100                 # recordings per folder in the mount-time archives
SEED_S=2                       # length of the recording copied into them
BITRATE_K=64                   # opusenc, as in bench.sh
DELAY_MS=10                    # each way: 20 ms round trip
RATE_MBIT=1000
SEED=7                         # random offsets
BUCKET=zwbench                 # the archives
# The peers' .opus file, in a bucket of its own: s3s-fs answers a HEAD of a "folder"
# (rclone's first request for zwbench/peer) with 500, which rclone retries for minutes.
PEER_BUCKET=zwpeer
LS_BUCKET=zwls
KEY=zwbench-key SECRET=zwbench-secret-key
read -r -a SIZES <<<"$SIZES"
for n in "$REPS" "$READS" "${SIZES[@]}"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $n"; done
[[ $SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--secs must be a number"

# --- tools -------------------------------------------------------------------------------
S3S_FS=${ZARR_WAVFS_S3S_FS:-${ZARR_WAVFS_CACHE:-/var/cache/zarr-wavfs}/s3s-fs-0.14.1/bin/s3s-fs}

if [ -z "$OUT" ]; then OUT=/dev/stdout; fi
# skip_all REASON: the section says why nothing was measured, and the script ends well.
skip_all() {
    log "skipped: $1"
    { echo "## Remote archives (S3)"; echo; echo "Not measured: $1."; echo; } >"$OUT"
    exit 0
}
[ -x "$S3S_FS" ] || skip_all "s3s-fs not found at $S3S_FS (scripts/setup.sh installs it)"
for t in fusermount3 mountpoint python3 curl; do have "$t" || skip_all "$t is missing"; done
[ -e /dev/fuse ] || skip_all "/dev/fuse is missing"
"$PY" -c 'import numpy, scipy' 2>/dev/null || skip_all "python3 needs numpy and scipy for the material"

CODECS=(flac)
if have opusenc; then CODECS+=(opus); else note "opusenc missing: no Opus recording, no peers"; fi

PEERS=()
if [ "$WANT_PEERS" = 1 ] && [ ${#CODECS[@]} -gt 1 ]; then
    if ! have ffmpegfs; then
        note "ffmpegfs not installed (scripts/setup.sh installs it): no peer stacks (rclone/s3fs + ffmpegfs)"
    else
        if have rclone; then PEERS+=(rclone); else note "rclone not installed (scripts/setup.sh installs it): rclone + ffmpegfs skipped"; fi
        if [ "$ONE_PEER" = 1 ] && [ ${#PEERS[@]} -gt 0 ]; then
            note "quick mode: one peer stack only (rclone + ffmpegfs; s3fs + ffmpegfs in full mode)"
        elif have s3fs; then
            PEERS+=(s3fs)
        else
            note "s3fs not installed (scripts/setup.sh installs it): s3fs + ffmpegfs skipped"
        fi
    fi
fi

# --- binary --------------------------------------------------------------------------------
if [ -z "$BIN" ]; then
    log "building the release binary (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) >&2
    BIN=$ROOT/target/release/zarr-wavfs
fi
[ -x "$BIN" ] || die "no executable at $BIN"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

# --- work directories ----------------------------------------------------------------------
work_dir remote "$ROOT/target/bench-work/remote"
# DATA is the servers' root: bucket BUCKET (the archive, remade every run), PEER_BUCKET
# (the peers' file) and LS_BUCKET (the mount-time archives: kept between runs while this
# binary imports the seed recording to the same bytes, since making 10,000 recordings'
# files, and deleting them, takes minutes on a disk mounted with `discard`).
MAT=$WORK/material RUN=$WORK/run DATA=$WORK/s3
MNTS=$RUN/mnt LOGS=$RUN/logs

# Everything this script starts: FUSE mounts (mountpoint -> daemon pid), servers, the
# delay line, the namespace.
declare -A PID_OF=() S3_PID=() S3_LOG=() ENDPOINT=() TRACKED=()
MOUNT_ORDER=()                 # mountpoints in the order first mounted (cleanup: reverse)
NS="" VETH="" DELAYLINE_PID="" LO_ROUTE=""
LINGER=()                      # detached daemons unmounted but maybe not yet exited

cleanup() {
    local rc=$? i m pid
    set +e
    trap - EXIT INT TERM
    for ((i = ${#MOUNT_ORDER[@]} - 1; i >= 0; i--)); do
        m=${MOUNT_ORDER[$i]}
        stop_daemon "$m" "${PID_OF[$m]:-}" 5
    done
    # The servers and the delay line take a second or so each to go: all at once.
    local rest=("${LINGER[@]}" "${S3_PID[@]}" ${DELAYLINE_PID:+"$DELAYLINE_PID"})
    for pid in "${rest[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${rest[@]}"; do kill_wait "$pid"; done
    [ -n "$VETH" ] && ip link del "$VETH" 2>/dev/null
    [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
    [ -n "$LO_ROUTE" ] && ip route del local "$LO_ROUTE" dev lo table local 2>/dev/null
    if [ "$TEMP_WORK" = 1 ]; then
        rm -rf "$WORK"
    elif [ "$KEEP" = 0 ]; then
        rm -rf "$RUN" "${DATA:?}/$BUCKET" "${DATA:?}/$PEER_BUCKET"
    fi
    [ "$rc" -ne 0 ] && log "failed (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$RUN" "${DATA:?}/$BUCKET" "${DATA:?}/$PEER_BUCKET"
mkdir -p "$MAT" "$RUN" "$MNTS" "$DATA/$BUCKET" "$DATA/$LS_BUCKET" "$LOGS"
RESULTS=$RUN/results.tsv META=$RUN/meta.tsv
: >"$RESULTS"; : >"$META"
check_drop_caches

# ==============================================================================================
# 1. Material and archives
# ==============================================================================================
log "mode $MODE: work dir $WORK, section to $OUT"
meta mode "$MODE"
declare -A SECS_OF=([rec]=$SECS [seed]=$SEED_S)
gen=()
for name in rec seed; do
    if [ -f "$MAT/$name.wav" ] && [ "$(cat "$MAT/$name.key" 2>/dev/null)" = "$(material_key "${SECS_OF[$name]}" 1)" ]; then
        log "material $name: reusing $MAT/$name.wav"
    else
        rm -f "$MAT/$name.wav" "$MAT/$name.opus" "$MAT/$name.key"
        gen+=("${SECS_OF[$name]}" 1 "$MAT/$name.wav")
    fi
done
if [ ${#gen[@]} -gt 0 ]; then
    log "material: generating (${gen[*]})"
    "$PY" "$HELPERS/material.py" "${gen[@]}"
fi
for name in rec seed; do
    if [ ! -f "$MAT/$name.key" ]; then
        if have opusenc; then opusenc --quiet --bitrate "$BITRATE_K" "$MAT/$name.wav" "$MAT/$name.opus"; fi
        material_key "${SECS_OF[$name]}" 1 >"$MAT/$name.key"
    fi
done

LOCAL=$RUN/archive
for c in "${CODECS[@]}"; do
    src=$MAT/rec.wav
    [ "$c" = opus ] && src=$MAT/rec.opus
    log "import $c"
    timed "import_s/local/$c" "$BIN" import "$LOCAL" "$src" --into "$c" >>"$LOGS/import.log" 2>&1
done
[ -f "$LOCAL/.zarr-wavfs-manifest.json" ] || note "the import left no manifest in the local archive"
for c in "${CODECS[@]}"; do
    info=$("$BIN" info "$LOCAL" "$c/rec")
    rec "wav_bytes/-/$c" "$(awk '/^WAV size served:/ { print $4 }' <<<"$info")"
    rec "stored_bytes/-/$c" "$(du -sb "$LOCAL/$c/rec" | cut -f1)"
    rec "objects/-/$c" "$(find "$LOCAL/$c/rec" -type f | wc -l)"
done
wav_bytes() { awk -F'\t' -v k="wav_bytes/-/$1" '$1 == k { print $2 }' "$RESULTS"; }
# The bucket: a copy of the archive (as `aws s3 sync` would leave it), the .opus file
# for the peers, the WAV for the link's rate.
cp -a "$LOCAL" "$DATA/$BUCKET/main"
if [ ${#CODECS[@]} -gt 1 ]; then
    mkdir -p "$DATA/$PEER_BUCKET"
    cp "$MAT/rec.opus" "$DATA/$PEER_BUCKET/rec.opus"
fi
rec "peer_bytes/-/opus" "$(stat -c %s "$MAT/rec.opus" 2>/dev/null || echo 0)"
mkdir -p "$DATA/$BUCKET/link"
ln "$MAT/rec.wav" "$DATA/$BUCKET/link/rec.wav" 2>/dev/null || cp "$MAT/rec.wav" "$DATA/$BUCKET/link/rec.wav"

# Archives of many recordings: one 2-s FLAC import copied into folders of PER_FOLDER
# (the first folder by copying the recording, the others by copying that folder), then
# the manifest. The local mounts read the bucket's directory too. An archive left by an
# earlier run is reused when it was made from the same import (compared byte for byte
# with a fresh one); the manifest is written again in any case.
SEED_ARCH=$RUN/seed-archive
"$BIN" import "$SEED_ARCH" "$MAT/seed.wav" --into f000 >>"$LOGS/import.log" 2>&1
same_seed() { # ARCHIVE: made from the same import as SEED_ARCH
    cmp -s "$SEED_ARCH/zarr.json" "$1/zarr.json" && cmp -s "$SEED_ARCH/f000/zarr.json" "$1/f000/zarr.json" &&
        diff -r -q "$SEED_ARCH/f000/seed" "$1/f000/r000" >/dev/null 2>&1
}
for n in "${SIZES[@]}"; do
    a=$DATA/$LS_BUCKET/ls-$n
    if [ "$(cat "$WORK/ls-$n.done" 2>/dev/null)" = "$n $PER_FOLDER" ] && same_seed "$a"; then
        log "archive of $n recordings: reusing $a"
    else
        log "archive of $n recordings: making it"
        rm -rf "$a" "$WORK/ls-$n.done"
        mkdir -p "$a/f000"
        cp "$SEED_ARCH/zarr.json" "$a/"
        cp "$SEED_ARCH/f000/zarr.json" "$a/f000/"
        per=$PER_FOLDER
        [ "$n" -lt "$per" ] && per=$n
        for ((r = 0; r < per; r++)); do cp -r "$SEED_ARCH/f000/seed" "$a/f000/$(printf 'r%03d' "$r")"; done
        folders=$(((n + per - 1) / per))
        for ((f = 1; f < folders; f++)); do cp -al "$a/f000" "$a/$(printf 'f%03d' "$f")"; done
        extra=$((folders * per - n)) # n not a multiple of PER_FOLDER: the last folder smaller
        for ((r = per - extra; r < per; r++)); do rm -rf "${a:?}/$(printf 'f%03d' $((folders - 1)))/$(printf 'r%03d' "$r")"; done
        echo "$n $PER_FOLDER" >"$WORK/ls-$n.done"
    fi
    "$BIN" manifest "$a" >>"$LOGS/import.log" 2>&1 || note "zarr-wavfs manifest $a failed"
done

# ==============================================================================================
# 2. Servers and the link
# ==============================================================================================
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
LINKS=(lo)                     # S3 links measured: lo, and wan when it can be made
declare -A LINK_TITLE=([local]="local" [lo]="S3 loopback" [wan]="S3 $((2 * DELAY_MS)) ms RTT")

start_s3() { # LINK HOST PORT [NETNS]: an s3s-fs on HOST:PORT serving DATA, logging requests
    local link=$1 host=$2 port=$3 i out=$LOGS/s3-$1.log pre=()
    [ -n "${4:-}" ] && pre=(ip netns exec "$4")
    # ip netns exec and env exec the server: $! is the server itself.
    "${pre[@]}" env RUST_LOG=s3s_fs=info,s3s::service=debug "$S3S_FS" --host "$host" --port "$port" \
        --access-key "$KEY" --secret-key "$SECRET" "$DATA" >"$out" 2>&1 </dev/null &
    S3_PID[$link]=$!
    S3_LOG[$link]=$out
    for ((i = 0; i < 1000; i++)); do
        if sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -q "running at http://$host:$port"; then
            ENDPOINT[$link]=http://$host:$port
            return 0
        fi
        kill -0 "${S3_PID[$link]}" 2>/dev/null || break
        sleep 0.02
    done
    log "s3s-fs ($link) did not start: $(tail -3 "$out")"
    kill_wait "${S3_PID[$link]}"
    unset "S3_PID[$link]"
    return 1
}
free_port() { # HOST: a port free there a moment ago
    "$PY" -S -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}
QUICKACK_WAN=0

# s3s-fs writes a response's head and its body in two writes without TCP_NODELAY: with
# the client's delayed ACKs, many responses then wait 40 ms for the second segment (a
# property of this test server; nginx, MinIO or AWS S3 do not do it, and a mount from
# nginx shows no such stalls). The routes to both servers carry `quickack 1`, so the
# client acknowledges at once: the loopback server listens on an address of its own,
# 127.77.N.1, whose /32 local route has it (removed at the end).
LO_HOST=127.0.0.1 LO_ROUTE=""
if [ "$(id -u)" -eq 0 ] && have ip; then
    a=127.77.$(($$ % 250 + 1)).1
    if ip route add local "$a/32" dev lo table local quickack 1 2>/dev/null; then LO_HOST=$a LO_ROUTE=$a/32; fi
fi
if [ -z "$LO_ROUTE" ]; then
    note "no route with quickack for the loopback server (needs root and ip): many of its responses may wait 40 ms for a delayed ACK (s3s-fs does not set TCP_NODELAY)"
fi
meta quickack_lo "$([ -n "$LO_ROUTE" ] && echo 1 || echo 0)"
started=0
for _ in 1 2 3; do
    if start_s3 lo "$LO_HOST" "$(free_port "$LO_HOST")"; then started=1; break; fi
done
[ "$started" = 1 ] || skip_all "s3s-fs did not start on $LO_HOST (see its log)"

# The 20 ms link: a namespace of our own, a veth pair with netem on both ends, or the
# userspace delay line over TUN devices where there is no netem.
SUBNET=10.201.$(($$ % 250 + 1))
WAN_HOST=$SUBNET.1 WAN_PEER=$SUBNET.2 WAN_HOW=""
setup_wan() {
    [ "$LATENCY" = 1 ] || { note "--no-latency: the ${LINK_TITLE[wan]} rows are skipped"; return 1; }
    [ "$(id -u)" -eq 0 ] || { note "not root: no network namespace, the ${LINK_TITLE[wan]} rows are skipped"; return 1; }
    have ip || { note "ip (iproute2) missing: the ${LINK_TITLE[wan]} rows are skipped"; return 1; }
    if ip -4 addr show | grep -q "inet $SUBNET\."; then
        note "$SUBNET.0/24 is in use here: the ${LINK_TITLE[wan]} rows are skipped"; return 1
    fi
    if ! ip netns add "zwbench-$$" 2>"$LOGS/netns.err"; then
        note "cannot make a network namespace ($(head -1 "$LOGS/netns.err")): the ${LINK_TITLE[wan]} rows are skipped"
        return 1
    fi
    NS=zwbench-$$
    ip -n "$NS" link set lo up
    local h=zwh$$ n=zwn$$ i
    CWND=()
    if have tc && ip link add "$h" type veth peer name "$n" netns "$NS" 2>>"$LOGS/netns.err"; then
        VETH=$h
        if tc qdisc add dev "$h" root netem delay "${DELAY_MS}ms" rate "${RATE_MBIT}mbit" limit 10000 2>>"$LOGS/netns.err" &&
            ip netns exec "$NS" tc qdisc add dev "$n" root netem delay "${DELAY_MS}ms" rate "${RATE_MBIT}mbit" limit 10000 2>>"$LOGS/netns.err"; then
            WAN_HOW=netem
            ip addr add "$WAN_HOST/24" dev "$h"
            ip link set "$h" up
            ip -n "$NS" addr add "$WAN_PEER/24" dev "$n"
            ip -n "$NS" link set "$n" up
        else
            ip link del "$h" 2>/dev/null
            VETH=""
        fi
    fi
    if [ -z "$WAN_HOW" ]; then
        # No netem (e.g. CONFIG_NET_SCH_NETEM unset and no modules): delayline.py.
        if [ ! -c /dev/net/tun ]; then
            note "no tc netem ($(grep -m1 -i error "$LOGS/netns.err" || echo 'tc missing')) and no /dev/net/tun: the ${LINK_TITLE[wan]} rows are skipped"
            return 1
        fi
        rm -f "$RUN/delayline.ready"
        "$PY" -S "$HELPERS/delayline.py" "$h" "$n" "$DELAY_MS" "$RATE_MBIT" "$RUN/delayline.ready" \
            2>"$LOGS/delayline.log" &
        DELAYLINE_PID=$!
        for ((i = 0; i < 250; i++)); do [ -f "$RUN/delayline.ready" ] && break; sleep 0.02; done
        if [ ! -f "$RUN/delayline.ready" ]; then
            note "neither tc netem nor the userspace delay line works here ($(tail -1 "$LOGS/delayline.log")): the ${LINK_TITLE[wan]} rows are skipped"
            return 1
        fi
        # A large MTU keeps the packet rate within what Python forwards; an initial
        # congestion window of one such segment (16 KB) is close to the usual 10 x 1460 B.
        ip link set "$n" netns "$NS"
        ip addr add "$WAN_HOST" peer "$WAN_PEER" dev "$h"
        ip link set "$h" mtu 16000 up
        ip -n "$NS" addr add "$WAN_PEER" peer "$WAN_HOST" dev "$n"
        ip -n "$NS" link set "$n" mtu 16000 up
        CWND=(initcwnd 1)
        WAN_HOW=delayline
        note "the kernel has no tc netem ($(grep -m1 -i error "$LOGS/netns.err" || echo 'tc missing')): the ${LINK_TITLE[wan]} link is scripts/bench/delayline.py, a userspace delay line between two TUN devices (MTU 16000), ${DELAY_MS} ms each way at ${RATE_MBIT} Mbit/s"
    fi
    # The host's route to the server: quickack (see the loopback server), and with the
    # delay line's large MTU an initial window of one segment.
    if ip route replace "$WAN_PEER/32" dev "$h" src "$WAN_HOST" quickack 1 "${CWND[@]}" 2>>"$LOGS/netns.err"; then
        QUICKACK_WAN=1
    else
        note "no quickack route to the namespace: many s3s-fs responses may wait 40 ms for a delayed ACK"
    fi
    if [ ${#CWND[@]} -gt 0 ]; then
        ip -n "$NS" route replace "$WAN_HOST/32" dev "$n" src "$WAN_PEER" "${CWND[@]}" 2>>"$LOGS/netns.err" ||
            note "could not set the initial congestion window of the namespace's route"
    fi
    start_s3 wan "$WAN_PEER" 9000 "$NS" || { note "s3s-fs did not start in the namespace: the ${LINK_TITLE[wan]} rows are skipped"; return 1; }
    LINKS+=(wan)
}
setup_wan || true
meta wan_how "${WAN_HOW:-none}"
meta quickack_wan "$QUICKACK_WAN"

rtt_ms() { # HOST PORT: the round trip in ms and how it was measured: ping (mean), else TCP connects to PORT (median)
    if have ping && ping -c 1 -W 2 "$1" >/dev/null 2>&1; then
        ping -c "$PINGS" -i 0.1 -W 2 "$1" 2>/dev/null | awk -F'[/ =]+' -v n="$PINGS" '/^rtt/ { print $7 " ping, mean of " n }'
    else
        "$PY" -S -c '
import socket, statistics, sys, time
ts = []
for _ in range(10):
    t = time.perf_counter()
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    ts.append(time.perf_counter() - t)
    time.sleep(0.05)
print("%.3f TCP connect, median of 10" % (1000 * statistics.median(ts)))' "$1" "$2"
    fi
}
get_rate() { # LINK: MB/s of one GET of the WAV object (the server's file evicted first)
    "${PROBE[@]}" evict "$DATA/$BUCKET/link/rec.wav"
    curl -s --max-time 120 -o /dev/null -w '%{speed_download}\n' --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$KEY:$SECRET" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
        "${ENDPOINT[$1]}/$BUCKET/link/rec.wav" | awk '{ printf "%.1f\n", $1 / 1e6 }'
}
for l in "${LINKS[@]}"; do
    host=${ENDPOINT[$l]#http://}
    if ! read -r ms how < <(rtt_ms "${host%:*}" "${host##*:}"); then ms="" how="not measured"; fi
    rec "rtt_ms/$l/-" "$ms"
    meta "rtt_how_$l" "$how"
    for ((r = 0; r < GETS; r++)); do rec "get_mbs/$l/-" "$(get_rate "$l")"; done
    log "link $l: RTT $ms ms ($how), one GET $(awk -F'\t' -v k="get_mbs/$l/-" '$1 == k { v = $2 } END { print v }' "$RESULTS") MB/s"
done
rec "get_bytes/-/-" "$(stat -c %s "$MAT/rec.wav")"

# Requests: the span of the server's log that an operation wrote (its size before and
# after), counted at the end by scripts/bench/s3log.py (req_KEY, get_KEY, ... results).
logpos() { stat -c %s "${S3_LOG[$1]}"; }
SPANS=$RUN/spans.tsv
: >"$SPANS"
rec_requests() { # KEY LINK FROM
    printf '%s\t%s\t%s\t%s\n' "$1" "${S3_LOG[$2]}" "$3" "$(logpos "$2")" >>"$SPANS"
}

# ==============================================================================================
# 3. Mounts
# ==============================================================================================
unmount() { # MNT [nowait]: unmount, and wait for the daemon to exit (unless nowait)
    local m=$1 pid
    pid=${PID_OF[$m]:-}
    if [ -n "$pid" ] && [ "${2:-}" = nowait ]; then
        stop_daemon "$m"
        LINGER+=("$pid")
    else
        stop_daemon "$m" "$pid"
    fi
    unset "PID_OF[$m]"
}
track() { # MNT PID
    PID_OF[$1]=$2
    if [ -z "${TRACKED[$1]:-}" ]; then TRACKED[$1]=1; MOUNT_ORDER+=("$1"); fi
}
# link_env LINK: the environment for zarr-wavfs on LINK (an S3 endpoint or none).
link_env() {
    if [ "$1" = local ]; then ZW_ENV=(-u AWS_ENDPOINT_URL); else ZW_ENV=("AWS_ENDPOINT_URL=${ENDPOINT[$1]}"); fi
}
address() { # LINK BUCKET/PREFIX LOCAL-PATH: the archive's address for zarr-wavfs on LINK
    if [ "$1" = local ]; then echo "$3"; else echo "s3://$2"; fi
}

# A system is SYSTEM-LINK: ours-local, ours-lo, ours-wan, rclone-lo, s3fs-wan, ...
# Ours: one mount of the main archive (flac/rec.wav and opus/rec.wav); a peer: the
# peers' bucket through rclone or s3fs, and ffmpegfs on top (rec.opus.wav).
mnt_of() { echo "$MNTS/$1"; }
file_of() { # SYSTEM CODEC
    case $1 in
        ours-*) echo "$MNTS/$1/$2/rec.wav" ;;
        *) echo "$MNTS/$1-wav/rec.opus.wav" ;;
    esac
}
link_of() { echo "${1#*-}"; }
backing_of() { # SYSTEM CODEC: the files behind it (for eviction)
    case $1 in
        ours-local) echo "$LOCAL/$2" ;;
        ours-*) echo "$DATA/$BUCKET/main/$2" ;;
        *) echo "$DATA/$PEER_BUCKET" ;;
    esac
}

rclone_env() { # LINK: rclone's remote zw$LINK from the environment
    local r
    r=$(tr '[:lower:]' '[:upper:]' <<<"zw$1")
    export "RCLONE_CONFIG_${r}_TYPE=s3" "RCLONE_CONFIG_${r}_PROVIDER=Other" \
        "RCLONE_CONFIG_${r}_ENDPOINT=${ENDPOINT[$1]}" "RCLONE_CONFIG_${r}_ACCESS_KEY_ID=$KEY" \
        "RCLONE_CONFIG_${r}_SECRET_ACCESS_KEY=$SECRET" "RCLONE_CONFIG_${r}_REGION=us-east-1"
}
: >"$RUN/rclone.conf"
printf '%s:%s\n' "$KEY" "$SECRET" >"$RUN/s3fs.passwd"
chmod 600 "$RUN/s3fs.passwd"

mount_system() { # SYSTEM: a fresh mount (peers: fresh, empty caches)
    local s=$1 link m c
    link=$(link_of "$s")
    m=$(mnt_of "$s")
    case $s in
        ours-*)
            mkdir -p "$m"
            link_env "$link"
            env "${ZW_ENV[@]}" "$BIN" mount "$(address "$link" "$BUCKET/main" "$LOCAL")" "$m" -f \
                --log "$LOGS/$s.log" -o timeout=30 >>"$LOGS/$s.stderr" 2>&1 &
            track "$m" $!
            wait_mounted "$m" $!
            ;;
        *)
            c=$RUN/cache/$s
            rm -rf "$c"
            mkdir -p "$c/vfs" "$c/ffmpegfs" "$m-s3" "$m-wav"
            case ${s%%-*} in
                rclone)
                    rclone_env "$link"
                    # AWS_CA_BUNDLE (if set) makes rclone 1.60 fail on a plain-http endpoint.
                    env -u AWS_CA_BUNDLE rclone mount "zw$link:$PEER_BUCKET" "$m-s3" --config "$RUN/rclone.conf" --read-only \
                        --vfs-cache-mode full --cache-dir "$c/vfs" --log-file "$LOGS/$s-rclone.log" \
                        >>"$LOGS/$s.stderr" 2>&1 &
                    ;;
                s3fs)
                    s3fs "$PEER_BUCKET" "$m-s3" -f -o "ro,url=${ENDPOINT[$link]},use_path_request_style,endpoint=us-east-1,passwd_file=$RUN/s3fs.passwd" \
                        >>"$LOGS/$s.stderr" 2>&1 &
                    ;;
            esac
            track "$m-s3" $!
            wait_mounted "$m-s3" $! || return 1
            ffmpegfs -f --desttype=wav --audiosamplerate=48K --cachepath="$c/ffmpegfs" \
                --logfile="$LOGS/$s-ffmpegfs.log" "$m-s3" "$m-wav" >>"$LOGS/$s.stderr" 2>&1 &
            track "$m-wav" $!
            wait_mounted "$m-wav" $!
            ;;
    esac
}
unmount_system() { # SYSTEM
    local m
    m=$(mnt_of "$1")
    case $1 in
        ours-*) unmount "$m" ;;
        *) unmount "$m-wav"; unmount "$m-s3" ;;
    esac
}

# cold_run SYSTEM CODEC KEY CMD...: evict, a fresh mount (its requests: req_mount/...),
# CMD, unmount; the requests from the mount's end to the daemon's exit go to KEY. The
# many cold reads (KEY read) evict the files behind the system only, as bench.sh does,
# even where the other runs drop the whole page cache.
cold_run() {
    local s=$1 c=$2 key=$3 link p0 p1
    shift 3
    link=$(link_of "$s")
    if [ "$key" = read ]; then
        cold_cache --per-file "$(backing_of "$s" "$c")"
    else
        cold_cache "$(backing_of "$s" "$c")"
    fi
    p0=0 p1=0
    if [ "$link" != local ]; then p0=$(logpos "$link"); fi
    if ! mount_system "$s"; then
        log "failed: mount of $s"
        case $key in
            seq) rec "failed/seq_s/$s/$c" 1 ;;
            ttfb) rec "failed/ttfb_s/$s/$c" 1 ;;
            read) rec "failed/cold_read_s/$s/$c" 1 ;;
        esac
        unmount_system "$s"
        return 0
    fi
    if [ "$link" != local ]; then p1=$(logpos "$link"); rec_requests "mount/$s/$c" "$link" "$p0"; fi
    "$@"
    unmount_system "$s"
    if [ "$link" != local ]; then rec_requests "$key/$s/$c" "$link" "$p1"; fi
    return 0
}

SYSTEMS=()                     # "SYSTEM CODEC"
for c in "${CODECS[@]}"; do
    for l in local "${LINKS[@]}"; do SYSTEMS+=("ours-$l $c"); done
done
for p in "${PEERS[@]}"; do
    for l in "${LINKS[@]}"; do SYSTEMS+=("$p-$l opus"); done
done
is_peer() { case $1 in ours-*) return 1 ;; *) return 0 ;; esac; }
runs_of() { # SYSTEM: cold cats (and first-byte reads) of SYSTEM, out of REPS
    case $1 in
        ours-*) echo "$REPS" ;;
        s3fs-wan) echo "$S3FS_WAN_REPS" ;;
        *) echo "$PEER_REPS" ;;
    esac
}
reads_of() { # SYSTEM
    case $1 in
        ours-*) echo "$READS" ;;
        s3fs-wan) echo "$S3FS_WAN_READS" ;;
        *) echo "$PEER_READS" ;;
    esac
}

# ==============================================================================================
# 4. Cold sequential cat (runs alternate between the systems), time to first byte
# ==============================================================================================
seq_cat() { # SYSTEM CODEC
    local f
    f=$(file_of "$1" "$2")
    timed "seq_s/$1/$2" cat_null "$f"
    rec "st_size/$1/$2" "$(stat -c %s "$f" 2>/dev/null || echo 0)"
}
ttfb() { # SYSTEM CODEC
    local t
    if t=$("${PROBE[@]}" ttfb "$(file_of "$1" "$2")"); then rec "ttfb_s/$1/$2" "${t%% *}"; else rec "failed/ttfb_s/$1/$2" 1; fi
}
log "cold sequential cat x$REPS (peers x$PEER_REPS), alternating: ${SYSTEMS[*]}"
for ((r = 0; r < REPS; r++)); do
    for sc in "${SYSTEMS[@]}"; do
        read -r s c <<<"$sc"
        if [ "$r" -ge "$(runs_of "$s")" ]; then continue; fi
        cold_run "$s" "$c" seq seq_cat "$s" "$c"
    done
done
log "time to first byte x$TTFB_REPS (peers x$PEER_REPS)"
for ((r = 0; r < TTFB_REPS; r++)); do
    for sc in "${SYSTEMS[@]}"; do
        read -r s c <<<"$sc"
        if [ "$r" -ge "$(runs_of "$s")" ] || [ "$r" -ge "$TTFB_REPS" ]; then continue; fi
        cold_run "$s" "$c" ttfb ttfb "$s" "$c"
    done
done

# ==============================================================================================
# 5. Cold 4 KiB reads at random offsets, a fresh mount per read
# ==============================================================================================
pread_one() { # SYSTEM CODEC OFFSET
    local o t total b
    if read -r o t total b < <("${PROBE[@]}" pread "$(file_of "$1" "$2")" "$3"); then
        rec "cold_open_s/$1/$2" "$o"
        rec "cold_read_s/$1/$2" "$t"
        rec "cold_total_s/$1/$2" "$total"
        [ "$b" = 4096 ] || rec "short_reads/$1/$2" 1
    else
        rec "failed/cold_read_s/$1/$2" 1
    fi
}
for c in "${CODECS[@]}"; do
    "${PROBE[@]}" offsets "$(wav_bytes "$c")" "$READS" "$SEED" >"$RUN/offsets-$c"
done
log "cold 4 KiB reads: $READS per system (peers $PEER_READS), a fresh mount each"
for sc in "${SYSTEMS[@]}"; do
    read -r s c <<<"$sc"
    n=$(reads_of "$s")
    while read -r off; do
        cold_run "$s" "$c" read pread_one "$s" "$c" "$off"
    done < <(head -n "$n" "$RUN/offsets-$c")
done

# ==============================================================================================
# 6. Time to mount archives of many recordings
# ==============================================================================================
# Detached: `zarr-wavfs mount` returns once the mount is ready; then `ls` of its root.
daemon_of() { pgrep -f -- "$BIN mount .* $1( |\$)" | head -1; }
mount_ls() { # LINK N
    local m=$MNTS/ls-$1
    link_env "$1"
    env "${ZW_ENV[@]}" "$BIN" mount "$(address "$1" "$LS_BUCKET/ls-$2" "$DATA/$LS_BUCKET/ls-$2")" "$m" --log "$LOGS/ls-$1-$2.log" \
        -o timeout=30 >>"$LOGS/ls-$1.stderr" 2>&1 && ls "$m" >/dev/null
}
for n in "${SIZES[@]}"; do
    log "mount of $n recordings, then ls: x$MOUNT_REPS per link"
    for ((r = 0; r < MOUNT_REPS; r++)); do
        for l in local "${LINKS[@]}"; do
            m=$MNTS/ls-$l
            mkdir -p "$m"
            cold_cache "$DATA/$LS_BUCKET/ls-$n"
            p0=0
            if [ "$l" != local ]; then p0=$(logpos "$l"); fi
            timed "mount_ls_s/ours-$l/$n" mount_ls "$l" "$n"
            if mountpoint -q "$m"; then
                track "$m" "$(daemon_of "$m")"
                if [ "$r" = 0 ]; then rec "entries/ours-$l/$n" "$(find "$m" -name '*.wav' | wc -l)"; fi
            fi
            # A detached daemon exits 1-2 s after its unmount (a foreground one at once):
            # not waited for here, it is idle by then (the requests up to its unmount
            # are counted; it makes none after).
            unmount "$m" nowait
            if [ "$l" != local ]; then rec_requests "mountls/ours-$l/$n" "$l" "$p0"; fi
        done
    done
done
rec "per_folder/-/-" "$PER_FOLDER"
for pid in "${LINGER[@]}"; do
    for ((i = 0; i < 500; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
    kill -0 "$pid" 2>/dev/null && note "a detached daemon ($pid) still ran 5 s after its unmount"
done

# ==============================================================================================
# 7. The section
# ==============================================================================================
meta secs "$SECS"
meta reps "$REPS"
meta ttfb_reps "$TTFB_REPS"
meta peer_reps "$PEER_REPS"
meta reads "$READS"
meta peer_reads "$PEER_READS"
meta s3fs_wan_reps "$S3FS_WAN_REPS"
meta s3fs_wan_reads "$S3FS_WAN_READS"
meta mount_reps "$MOUNT_REPS"
meta sizes "${SIZES[*]}"
meta per_folder "$PER_FOLDER"
meta seed_s "$SEED_S"
meta delay_ms "$DELAY_MS"
meta rate_mbit "$RATE_MBIT"
meta drop_caches "$DROP"
meta codecs "${CODECS[*]}"
meta peers "${PEERS[*]:-}"
meta links "${LINKS[*]}"
meta s3s_fs "$("$S3S_FS" --version 2>&1 | head -1)"
have rclone && meta rclone "$(rclone version 2>/dev/null | head -1)"
have s3fs && meta s3fs "$(s3fs --version 2>&1 | head -1)"
have ffmpegfs && meta ffmpegfs "$(ffmpegfs --version 2>&1 | grep -m1 FFMPEGFS)"
for n in "${NOTES[@]}"; do meta note "$n"; done
"$PY" -S "$HELPERS/s3log.py" "$DATA" <"$SPANS" >>"$RESULTS"
"$PY" "$HELPERS/remote_report.py" "$RESULTS" "$META" >"$RUN/section.md"
cat "$RUN/section.md" >"$OUT"
log "section written to $OUT"
[ "$KEEP" = 1 ] && log "results kept in $RUN"
exit 0
