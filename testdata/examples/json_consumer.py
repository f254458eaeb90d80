#!/usr/bin/env python3
"""A third-party sysmon consumer in 60 lines: reads the sysmon.v1+json stream.

sysmon producers connect out to their consumer and offer two WebSocket
subprotocols: the compact binary "sysmon.v1" and "sysmon.v1+json". A consumer
that only speaks JSON accepts the second and gets the same messages as JSON
objects (pkg/wire/SPEC.md). This one prints one line per sample and
acknowledges each batch, so the producer drops it from its spool.

    python3 json_consumer.py --port 8443 --cert server.crt --key server.key --ca cacert.pem

Needs only the stock `websockets` library (Debian: python3-websockets).
"""
import argparse
import asyncio
import json
import ssl
import sys

import websockets


async def session(ws, path=None):
    node = None
    async for raw in ws:
        msg = json.loads(raw)
        kind = msg.get("type")
        if kind == "hello":
            node = msg["node"]
            # last_seq: the highest batch of this stream we already hold.
            await ws.send(json.dumps({"type": "welcome", "consumer_version": "example", "last_seq": 0}))
        elif kind == "batch":
            for s in msg.get("samples", []):
                procs = [p for p in s.get("procs", []) if p["pid"] >= 0]
                top = max(procs, key=lambda p: p["cpu_pct"], default=None)
                mem = s.get("memory") or {}
                print(json.dumps({
                    "node": node, "seq": msg["seq"], "ts": s["ts"],
                    "mem_total": mem.get("total"), "procs": len(procs),
                    "top_comm": top and top["comm"], "top_cpu_pct": top and top["cpu_pct"],
                }), flush=True)
            # Acknowledge only what is stored; here, printed.
            await ws.send(json.dumps({"type": "ack", "seq": msg["seq"]}))
        # Unknown message types are skipped, as the spec asks.


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--cert"), ap.add_argument("--key"), ap.add_argument("--ca")
    args = ap.parse_args()
    ctx = None
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.load_verify_locations(args.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: producers present client certificates
    async with websockets.serve(session, args.host, args.port, ssl=ctx, subprotocols=["sysmon.v1+json"]):
        print("listening", file=sys.stderr, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
