#!/usr/bin/env python3
"""A cloud-side consumer of Weir's uplink: standard library only (MQTT 3.1.1 over a socket).

Reads the record lanes of every gateway (`<prefix>/+/alerts`, `…/predictions`,
`…/aggregates`) from a broker, decodes single records and batches (JSON or binary, raw
DEFLATE or not; see docs/wire-format.md), drops duplicates by `id` (delivery is at least
once), and checks that each gateway's sequence numbers have no gaps. It is the shape of the
first stage of any stream pipeline (an MQTT→Kafka bridge, a Flink source): partition by
`gateway`, deduplicate by `id`, order by `seq` within a lane.

    python3 examples/consumer/uplink_consumer.py --port 1883 --count 100

Prints each new record as a JSON line (unless --quiet), then one summary line:
    {"summary": {"gw-17": {"records": 100, "duplicates": 3, "first": 1, "last": 100,
                           "missing": [], "jumps": []}}}
and exits 0, or 1 when a gateway's sequence has a gap. A jump of a million or more is not a
loss: the agent skips ids after an unclean shutdown or a quarantined outbox (reported in
`jumps`). Records the agent evicted under its outbox bound are real gaps, also counted in its
`weir_outbox_evicted_total`.

The session is persistent (clean session off, a fixed --client-id) at QoS 1, so records
published while the consumer is away are queued for it by the broker.
"""

import argparse
import json
import socket
import struct
import sys
import time
import zlib

JUMP = 1_000_000


def encode_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class Mqtt:
    """Just enough MQTT 3.1.1 for a QoS 1 subscriber."""

    def __init__(self, host, port, client_id, clean, keep_alive=30):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.keep_alive = keep_alive
        self.last_sent = time.monotonic()
        flags = 0x02 if clean else 0x00
        body = string("MQTT") + bytes([4, flags]) + struct.pack("!H", keep_alive) + string(client_id)
        self.send(0x10, body)
        kind, payload = self.read()
        if kind != 0x20 or payload[1] != 0:
            raise RuntimeError(f"connection refused: {payload!r}")

    def send(self, header, body):
        self.sock.sendall(bytes([header]) + encode_length(len(body)) + body)
        self.last_sent = time.monotonic()

    def exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return bytes(buf)

    def read(self):
        header = self.exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = self.exact(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        return header, self.exact(length)

    def subscribe(self, filters):
        body = struct.pack("!H", 1) + b"".join(string(f) + b"\x01" for f in filters)
        self.send(0x82, body)

    def messages(self, deadline):
        """Yields (topic, payload) until `deadline`, acknowledging QoS 1 publishes."""
        self.sock.settimeout(1)
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_sent > self.keep_alive / 2:
                self.send(0xC0, b"")  # PINGREQ
            try:
                header, body = self.read()
            except socket.timeout:
                continue
            kind = header & 0xF0
            if kind == 0x90:
                print("subscribed", file=sys.stderr, flush=True)
            elif kind == 0x30:
                qos = (header >> 1) & 3
                (n,) = struct.unpack("!H", body[:2])
                topic, rest = body[2 : 2 + n].decode(), body[2 + n :]
                if qos:
                    pkid, rest = rest[:2], rest[2:]
                    # Acknowledged once handed on: a crash before this makes the broker resend.
                    yield topic, rest
                    self.send(0x40, pkid)
                else:
                    yield topic, rest


def decode(msg):
    """A message's records: a single JSON record or a batch (docs/wire-format.md)."""
    if msg[:1] == b"{":
        return [json.loads(msg)]
    body = zlib.decompress(msg[2:], -15) if msg[1] == 1 else msg[2:]
    if msg[0] == 2:
        return json.loads(body)
    pos = 0

    def varint():
        nonlocal pos
        v = shift = 0
        while True:
            b = body[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    def text():
        nonlocal pos
        n = varint()
        pos += n
        return body[pos - n : pos].decode()

    def value():
        nonlocal pos
        tag = body[pos]
        pos += 1
        if tag < 3:
            return [None, False, True][tag]
        if tag == 3:
            z = varint()
            return (z >> 1) ^ -(z & 1)
        if tag == 4:
            pos += 8
            return struct.unpack("<d", body[pos - 8 : pos])[0]
        if tag == 5:
            return text()
        if tag == 6:
            return [value() for _ in range(varint())]
        return {text(): value() for _ in range(varint())}

    gateway, records = text(), []
    for _ in range(varint()):
        seq = varint()
        records.append({"id": f"{gateway}:{seq}", "seq": seq, "gateway": gateway, **value()})
    return records


def gaps(seqs):
    """(missing ranges, restart jumps) between the lowest and highest seq seen."""
    missing, jumps = [], []
    ordered = sorted(seqs)
    for a, b in zip(ordered, ordered[1:]):
        if b - a > 1:
            (jumps if b - a >= JUMP else missing).append([a + 1, b - 1])
    return missing, jumps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default="weir", help="the gateways' uplink.topic_prefix")
    p.add_argument("--client-id", default="weir-consumer")
    p.add_argument("--clean", action="store_true", help="a clean session (nothing queued)")
    p.add_argument("--count", type=int, help="stop after this many distinct records")
    p.add_argument("--seconds", type=float, default=60, help="stop after this long")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    args = p.parse_args()

    deadline = time.monotonic() + args.seconds
    seen, duplicates, distinct = {}, {}, 0
    while time.monotonic() < deadline and not (args.count and distinct >= args.count):
        try:
            mqtt = Mqtt(args.host, args.port, args.client_id, args.clean)
            lanes = ("alerts", "predictions", "aggregates")
            mqtt.subscribe([f"{args.prefix}/+/{lane}" for lane in lanes])
            for topic, payload in mqtt.messages(deadline):
                for record in decode(payload):
                    gw, seq = record["gateway"], record["seq"]
                    if record["id"] != f"{gw}:{seq}":
                        raise ValueError(f"{topic}: id {record['id']} is not gateway:seq")
                    if seq in seen.setdefault(gw, set()):
                        duplicates[gw] = duplicates.get(gw, 0) + 1
                        continue
                    seen[gw].add(seq)
                    distinct += 1
                    if not args.quiet:
                        print(json.dumps(record), flush=True)
                if args.count and distinct >= args.count:
                    break
        except OSError as e:
            # The broker restarted or the link dropped: the persistent session keeps what
            # was published meanwhile; connect again.
            print(f"reconnecting: {e}", file=sys.stderr, flush=True)
            time.sleep(0.5)
    summary, ok = {}, True
    for gw, seqs in sorted(seen.items()):
        missing, jumps = gaps(seqs)
        ok &= not missing
        summary[gw] = {
            "records": len(seqs),
            "duplicates": duplicates.get(gw, 0),
            "first": min(seqs),
            "last": max(seqs),
            "missing": missing,
            "jumps": jumps,
        }
    print(json.dumps({"summary": summary}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
