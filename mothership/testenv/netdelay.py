"""Added latency for a machine's link, where the kernel has no netem.

Kernels built without `sch_netem` (this project's CI machine among them) still have
netfilter's userspace queue. The machine's iptables send every packet that crosses its
`eth0` to queue 0 (`--queue-bypass`: with nobody bound, packets pass undelayed), and this
process, started in the machine's network namespace and cgroup, holds each packet's
verdict for the delay before accepting it. Only metadata is copied to userspace, so a
packet costs one small message each way.

Packets keep their order (one constant delay, released first in first out), which is what
a long link does; jitter and reordering are not modelled. When the kernel's queue is full
the packet passes undelayed (fail-open) instead of being dropped, so a burst never turns
the delay into loss the caller did not ask for.

Run as `python -m mothership.testenv.netdelay --delay-ms N` inside the namespace;
`machines.set_latency` does that and installs the rules.
"""

from __future__ import annotations

import argparse
import collections
import errno
import select
import socket
import struct
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQA_CFG_F_FAIL_OPEN = 0x1
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NF_ACCEPT = 1
QUEUE = 0
QUEUE_MAXLEN = 65536
READY = "netdelay: bound"


def attribute(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to four bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def message(kind: int, queue: int, attributes: bytes, seq: int, flags: int = 0) -> bytes:
    """An nfnetlink queue message: netlink header, nfgenmsg (queue in network order), body."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attributes
    header = struct.pack(
        "=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, NLM_F_REQUEST | flags, seq, 0
    )
    return header + body


def verdict(queue: int, packet_id: int, seq: int) -> bytes:
    header = attribute(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
    return message(NFQNL_MSG_VERDICT, queue, header, seq)


def packet_ids(data: bytes) -> list[int]:
    """The ids of the queued packets announced in one datagram (other messages skipped)."""
    ids: list[int] = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16 or offset + length > len(data):
            break  # malformed or cut short: nothing more to trust
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at = offset + 20  # netlink header + nfgenmsg
            end = offset + length
            while at + 4 <= end:
                alen, akind = struct.unpack_from("=HH", data, at)
                if alen < 4:
                    break
                if akind & 0x7FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", data, at + 4)[0])
                    break
                at += (alen + 3) & ~3
        offset += (length + 3) & ~3
    return ids


def _check_ack(sock: socket.socket) -> None:
    data = sock.recv(65536)
    (kind,) = struct.unpack_from("=H", data, 4)
    if kind == NLMSG_ERROR:
        (code,) = struct.unpack_from("=i", data, 16)
        if code:
            raise OSError(-code, f"nfqueue config refused: {errno.errorcode.get(-code, code)}")


def bind(queue: int = QUEUE) -> socket.socket:
    """A netlink socket bound to `queue` in this process's network namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: bursts fit
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    config = [
        attribute(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)),
        attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
        attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)),
        attribute(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
        + attribute(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
    ]
    for seq, attrs in enumerate(config, start=1):
        sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, seq, NLM_F_ACK))
        _check_ack(sock)
    return sock


def serve(sock: socket.socket, delay: float, queue: int = QUEUE) -> None:
    """Accept every packet `delay` seconds after the kernel queued it, in order."""
    held: collections.deque[tuple[float, int]] = collections.deque()
    seq = 100
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            now = time.monotonic()
            for packet_id in packet_ids(sock.recv(1 << 20)):
                held.append((now + delay, packet_id))
        now = time.monotonic()
        while held and held[0][0] <= now:
            seq = (seq + 1) & 0xFFFFFFFF
            sock.send(verdict(queue, held.popleft()[1], seq))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="delay per packet")
    args = parser.parse_args(argv)
    sock = bind()
    print(READY, flush=True)
    serve(sock, args.delay_ms / 1000)


if __name__ == "__main__":
    main()
