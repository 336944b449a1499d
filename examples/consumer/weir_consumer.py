#!/usr/bin/env python3
"""A small cloud-side consumer of Weir's uplink: what a bridge into Kafka or Flink does first.

It subscribes (QoS 1, persistent session) to every gateway's lanes and status on an MQTT
broker, decodes each message (single JSON records, JSON batches and binary batches; see
docs/wire-format.md), checks each record against its JSON Schema (docs/schemas/), drops
duplicates by `id`, and at the end reports per gateway whether the sequence has gaps.

    pip install paho-mqtt jsonschema
    python3 examples/consumer/weir_consumer.py --port 1883 --schemas docs/schemas --print

Weir delivers at least once: a record whose PUBACK was lost is sent again after a reconnect
or a restart, so a consumer must deduplicate by `id` ("<gateway>:<seq>"). `seq` increases
across a gateway's lanes and restarts; alerts are sent before aggregates, so records arrive
in order within a lane, not across lanes. A gap in `seq` is a record that never arrived: one
evicted by the gateway's outbox bound (counted there as `weir_outbox_evicted_total`), or, of
about a million, the jump after an unclean shutdown (ids are never reused). Here the seen ids
are kept in a set for the report; a long-running consumer keeps, per gateway, the highest `seq`
below which everything arrived plus the few above it.

Readiness: "subscribed" is printed on standard error once the broker has acknowledged the
subscriptions. The summary is one JSON object on the last line of standard output.
"""

import argparse
import json
import pathlib
import struct
import sys
import threading
import time
import zlib

import paho.mqtt.client as mqtt
from jsonschema import Draft202012Validator

LANES = ("alerts", "predictions", "aggregates")


def decode(msg: bytes) -> list:
    """The records in one uplink message (docs/wire-format.md)."""
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

    def string():
        nonlocal pos
        n = varint()
        pos += n
        return body[pos - n:pos].decode()

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
            return struct.unpack("<d", body[pos - 8:pos])[0]
        if tag == 5:
            return string()
        if tag == 6:
            return [value() for _ in range(varint())]
        return {string(): value() for _ in range(varint())}

    gateway, records = string(), []
    for _ in range(varint()):
        seq = varint()
        records.append({"id": f"{gateway}:{seq}", "seq": seq, "gateway": gateway, **value()})
    return records


class Consumer:
    def __init__(self, schemas, print_records):
        self.validators = {
            p.name.removesuffix(".schema.json"): Draft202012Validator(json.loads(p.read_text()))
            for p in sorted(pathlib.Path(schemas).glob("*.schema.json"))
        } if schemas else {}
        self.print_records = print_records
        self.lock = threading.Lock()
        self.seen = {}  # gateway -> set of seq
        self.last_in_lane = {}  # (gateway, lane) -> last seq
        self.kinds = {}
        self.records = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.invalid = []
        self.status = {}

    def check(self, kind, obj):
        v = self.validators.get(kind)
        if self.validators and v is None:
            return [f"no schema for kind {kind!r}"]
        return [f"{'/'.join(map(str, e.path)) or '.'}: {e.message}" for e in v.iter_errors(obj)] if v else []

    def on_message(self, topic, payload):
        parts = topic.split("/")
        lane = parts[-1]
        with self.lock:
            if lane == "status":
                try:
                    status = json.loads(payload)
                except ValueError as e:
                    self.invalid.append({"topic": topic, "errors": [f"not JSON: {e}"]})
                    return
                errors = self.check("status", status)
                if errors:
                    self.invalid.append({"topic": topic, "errors": errors})
                self.status[parts[-2]] = status
                self.kinds["status"] = self.kinds.get("status", 0) + 1
                print(f"status {parts[-2]} {status.get('status')} {status.get('reason', '')}",
                      file=sys.stderr, flush=True)
                return
            try:
                records = decode(payload)
            except (ValueError, IndexError, struct.error, zlib.error) as e:
                self.invalid.append({"topic": topic, "errors": [f"undecodable: {e}"]})
                return
            for r in records:
                errors = self.check(r.get("kind"), r)
                if errors:
                    self.invalid.append({"id": r.get("id"), "errors": errors})
                    continue
                seen = self.seen.setdefault(r["gateway"], set())
                if r["seq"] in seen:
                    self.duplicates += 1
                    print(f"duplicate {r['id']}", file=sys.stderr, flush=True)
                    continue
                seen.add(r["seq"])
                key = (r["gateway"], lane)
                if r["seq"] < self.last_in_lane.get(key, 0):
                    self.out_of_order += 1  # a resend after a reconnect
                self.last_in_lane[key] = max(r["seq"], self.last_in_lane.get(key, 0))
                self.records += 1
                self.kinds[r["kind"]] = self.kinds.get(r["kind"], 0) + 1
                if self.print_records:
                    print(json.dumps(r), flush=True)

    def summary(self):
        with self.lock:
            gaps = {}
            for gw, seqs in self.seen.items():
                s = sorted(seqs)
                gaps[gw] = [[a + 1, b - 1] for a, b in zip(s, s[1:]) if b > a + 1]
            return {
                "records": self.records,
                "duplicates": self.duplicates,
                "out_of_order": self.out_of_order,
                "kinds": self.kinds,
                "invalid": self.invalid,
                "gaps": gaps,
                "first_seq": {gw: min(s) for gw, s in self.seen.items() if s},
                "last_seq": {gw: max(s) for gw, s in self.seen.items() if s},
                "status": self.status,
            }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--prefix", default="weir", help="the gateways' uplink.topic_prefix")
    ap.add_argument("--client-id", default="weir-consumer")
    ap.add_argument("--schemas", help="a directory of <kind>.schema.json files to check records against")
    ap.add_argument("--until-kinds", default="", help="stop once every one of these kinds (comma-separated) was seen")
    ap.add_argument("--min-records", type=int, default=0, help="... and at least this many distinct records")
    ap.add_argument("--timeout", type=float, default=0, help="stop after this many seconds (0: run until interrupted)")
    ap.add_argument("--print", action="store_true", help="print each new record as a JSON line")
    ap.add_argument("--stop-on-eof", action="store_true",
                    help="stop when standard input closes (for a supervisor or a test)")
    args = ap.parse_args()

    consumer = Consumer(args.schemas, args.print)
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id,
                         clean_session=False)
    topics = [(f"{args.prefix}/+/{lane}", 1) for lane in LANES + ("status",)]
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics)
    client.on_subscribe = lambda c, u, mid, rcs, p: (print("subscribed", file=sys.stderr, flush=True),
                                                     subscribed.set())
    client.on_message = lambda c, u, m: consumer.on_message(m.topic, m.payload)
    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()
    want = {k for k in args.until_kinds.split(",") if k}
    deadline = time.monotonic() + args.timeout if args.timeout else None
    eof = threading.Event()
    if args.stop_on_eof:
        threading.Thread(target=lambda: (sys.stdin.read(), eof.set()), daemon=True).start()
    try:
        while (deadline is None or time.monotonic() < deadline) and not eof.is_set():
            s = consumer.summary()
            if want and want <= set(s["kinds"]) and s["records"] >= args.min_records:
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    client.loop_stop()
    client.disconnect()
    s = consumer.summary()
    print(json.dumps(s), flush=True)
    sys.exit(0 if not s["invalid"] and not any(s["gaps"].values()) else 1)


if __name__ == "__main__":
    main()
