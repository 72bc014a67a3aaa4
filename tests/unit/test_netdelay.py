"""The netlink messages of the latency delayer, byte by byte (the kernel half is tested with
real machines in tests/integration/test_machines.py)."""

from __future__ import annotations

import socket
import struct

from mothership.testenv import netdelay


def _packet_message(packet_id: int, extra_first: bool = False) -> bytes:
    attrs = b""
    if extra_first:  # an attribute of another kind before the header, odd length
        attrs += netdelay.attribute(9, b"abc")
    attrs += netdelay.attribute(netdelay.NFQA_PACKET_HDR, struct.pack("!IHB", packet_id, 0x0800, 1))
    return netdelay.message(netdelay.NFQNL_MSG_PACKET, 0, attrs, seq=0)


def test_attributes_are_padded_to_four_bytes_and_keep_their_length() -> None:
    attr = netdelay.attribute(5, b"abcde")
    assert len(attr) == 12
    assert struct.unpack_from("=HH", attr) == (9, 5)
    assert attr[4:9] == b"abcde" and attr[9:] == b"\0\0\0"


def test_a_message_carries_its_length_subsystem_and_queue_in_network_order() -> None:
    msg = netdelay.message(netdelay.NFQNL_MSG_CONFIG, 7, b"\1\2\3\4", seq=42, flags=4)
    length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq) == (len(msg), (3 << 8) | 2, 1 | 4, 42)
    assert struct.unpack_from("!H", msg, 18)[0] == 7


def test_packet_ids_are_read_from_every_message_of_a_datagram() -> None:
    data = _packet_message(1) + _packet_message(0xDEADBEEF, extra_first=True) + _packet_message(3)
    assert netdelay.packet_ids(data) == [1, 0xDEADBEEF, 3]


def test_messages_that_are_not_packets_are_skipped_and_truncation_stops_parsing() -> None:
    ack = struct.pack("=IHHII", 36, netdelay.NLMSG_ERROR, 0, 1, 0) + b"\0" * 20
    data = ack + _packet_message(5)
    assert netdelay.packet_ids(data) == [5]
    assert netdelay.packet_ids(data[:-3]) == []  # the last message cut short
    assert netdelay.packet_ids(struct.pack("=IH", 4, 0) + b"\0" * 12) == []


def test_a_verdict_accepts_the_packet_by_id() -> None:
    msg = netdelay.verdict(0, 99, seq=1)
    kind = struct.unpack_from("=H", msg, 4)[0]
    assert kind == (3 << 8) | netdelay.NFQNL_MSG_VERDICT
    assert struct.unpack_from("!II", msg, 24) == (netdelay.NF_ACCEPT, 99)
    assert socket.ntohs(struct.unpack_from("=H", msg, 18)[0]) == 0
