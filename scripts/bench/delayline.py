#!/usr/bin/env python3
"""A userspace stand-in for `tc netem delay D rate R` for scripts/bench/remote.sh, used
only where the kernel has no sch_netem (CONFIG_NET_SCH_NETEM unset, no modules).

    delayline.py A B DELAY_MS RATE_MBIT READY_FILE

creates two TUN devices A and B (layer 3, no packet information) and forwards every
packet read from one to the other, each direction on its own: a packet enters the
direction's link when the packets before it have left it (RATE_MBIT serialises them),
then waits DELAY_MS before it is delivered. So with A on the host and B moved into a
network namespace, a round trip takes 2 x DELAY_MS plus serialisation, as with netem
on both ends of a veth pair. The caller configures the devices (addresses, MTU, the
namespace) after READY_FILE appears; the devices go away when this process exits
(SIGTERM or SIGINT). A queue longer than LIMIT packets per direction drops (netem's
default limit is 1000 packets).

Per packet this costs a read and a write system call and a few microseconds of Python;
remote.sh sets a large MTU (fewer, bigger packets) so that the line carries hundreds of
MB/s, and measures what it carries.
"""

import collections
import fcntl
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
LIMIT = 1000
BUF = 65536 + 64
DROPPED = [0]


class Stop(Exception):
    pass


def tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    name_a, name_b = sys.argv[1], sys.argv[2]
    delay = float(sys.argv[3]) / 1000
    bytes_per_s = float(sys.argv[4]) * 1e6 / 8
    ready = sys.argv[5]
    a, b = tun(name_a), tun(name_b)

    def stop(*_):
        raise Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(ready + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(ready + ".tmp", ready)

    # per direction (keyed by the fd read from): the fd to write to, the queue of
    # (due time, packet), and when the link is free again
    out = {a: b, b: a}
    queue = {a: collections.deque(), b: collections.deque()}
    free_at = {a: 0.0, b: 0.0}
    try:
        forward(a, b, out, queue, free_at, delay, bytes_per_s)
    except Stop:
        pass
    sys.stderr.write("delayline: %d packets dropped\n" % DROPPED[0])


def forward(a, b, out, queue, free_at, delay, bytes_per_s):
    """Forwards until a signal raises Stop (at once, also out of a waiting select)."""
    while True:
        now = time.monotonic()
        due = [q[0][0] for q in queue.values() if q]
        wait = max(0.0, min(due) - now) if due else 1.0
        # select: a timeout in microseconds (poll's is rounded up to milliseconds)
        readable, _, _ = select.select([a, b], [], [], wait)
        now = time.monotonic()
        for fd in readable:
            while True:
                try:
                    pkt = os.read(fd, BUF)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    pkt = b""
                if not pkt:
                    break
                q = queue[fd]
                if len(q) >= LIMIT:
                    DROPPED[0] += 1
                    continue
                free_at[fd] = max(now, free_at[fd]) + len(pkt) / bytes_per_s
                q.append((free_at[fd] + delay, pkt))
        now = time.monotonic()
        for fd, q in queue.items():
            while q and q[0][0] <= now:
                _, pkt = q.popleft()
                try:
                    os.write(out[fd], pkt)
                except (BlockingIOError, OSError):
                    DROPPED[0] += 1


if __name__ == "__main__":
    main()
