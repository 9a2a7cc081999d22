#!/usr/bin/env python3
"""A WebSocket server for the ship tests (the `websockets` package).

Appends one JSON line per event to --log: {"t", "event": "connect"|"message", "mode", "auth",
"body"}. It pings every client every second and drops one that does not answer within 2 s.
Modes (from --mode-file, read per connection, or --mode):
  ok      log every message
  close   close every connection right after the handshake
  huge    send one 10 MB frame, then log messages
With --cert/--key it speaks TLS (wss); --host (default 127.0.0.1) is the address it listens on.
Prints READY once listening.
"""
import argparse, asyncio, json, os, ssl, time

import websockets
from websockets.asyncio.server import serve

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--log", required=True)
ap.add_argument("--mode", default="ok")
ap.add_argument("--mode-file")
ap.add_argument("--cert")
ap.add_argument("--key")
args = ap.parse_args()


def mode():
    if args.mode_file and os.path.exists(args.mode_file):
        m = open(args.mode_file).read().strip()
        if m:
            return m
    return args.mode


def log(rec):
    rec["t"] = time.time()
    with open(args.log, "a") as f:
        f.write(json.dumps(rec) + "\n")


async def handler(ws):
    m = mode()
    auth = ws.request.headers.get("Authorization")
    log({"event": "connect", "mode": m, "auth": auth,
         "ua": ws.request.headers.get("User-Agent")})
    if m == "close":
        await ws.close()
        return
    if m == "huge":
        try:
            await ws.send("x" * 10_000_000)
        except websockets.ConnectionClosed:
            return
    try:
        async for msg in ws:
            log({"event": "message", "mode": m, "auth": auth, "body": msg})
    except websockets.ConnectionClosed:
        pass


async def main():
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    async with serve(handler, args.host, args.port, ssl=ctx, max_size=None,
                     ping_interval=1, ping_timeout=2):
        print("READY", flush=True)
        await asyncio.Future()


asyncio.run(main())
