#!/usr/bin/env python3
"""An HTTP server for the ship tests, written on raw sockets so it can also misbehave.

Every request it reads is appended to --log as one JSON line: {"t", "mode", "method", "path",
"headers" (lower-case names), "body" (text), "conn" (the connection's number, from 1)}. The behaviour comes from --mode-file (read on every
connection, so a test can switch it while running) or --mode:
  ok            200 with a small JSON body
  status:N      that status with a short text body (e.g. status:500, status:404)
  429:S         429 with Retry-After: S
  reply:JSON    200 with that JSON body (key registration)
  silent        read the request, never answer
  drip          a status line, then one header byte every 0.2 s, forever
  endless       a complete 200 head without length, then one body byte every 0.2 s, forever
  huge          200 with a 100 MB body
  garbage       random bytes instead of HTTP, then close
  close         read the request, close the connection without an answer
  chunkbomb     500, chunked, then 64 KiB of "fffffffffffffffe" size lines, then silence
  continue      "100 Continue" heads, as fast as the client reads, forever; when the client
                hangs up, logs {"ended": "continue", "sent": bytes written before}
  echo302       302 whose Location (and body) echo the request's Authorization header
  echo:S:N      status S; reason phrase and body are "invalid token: <Authorization>" cut at N
  retry:S:T     status S with Retry-After: T
  pingflood     a WebSocket upgrade (101), then ping frames as fast as they go, never reading
With --cert/--key it speaks TLS. With --keep-alive, `ok` and `status:N` replies keep the
connection open for the client's next request (unless it asked for `Connection: close`);
otherwise every reply says `Connection: close` and the connection is closed. Prints READY once
listening.
"""
import argparse, base64, hashlib, json, os, socket, ssl, sys, threading, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--host", default="127.0.0.1", help="address to listen on (tests: loopback or a namespace's)")
ap.add_argument("--log", required=True)
ap.add_argument("--mode", default="ok")
ap.add_argument("--mode-file")
ap.add_argument("--cert")
ap.add_argument("--key")
ap.add_argument("--keep-alive", action="store_true")
args = ap.parse_args()
conns = 0
lock = threading.Lock()
ctx = None
if args.cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)


def mode():
    if args.mode_file and os.path.exists(args.mode_file):
        m = open(args.mode_file).read().strip()
        if m:
            return m
    return args.mode


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path = lines[0].split(" ")[:2]
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return method, path, headers, body[:n]


def answer(conn, status, body, extra="", keep=False):
    reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "X")
    close = "" if keep else "Connection: close\r\n"
    conn.sendall(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}{close}\r\n".encode() + body
    )


def wait_for_close(conn):
    conn.settimeout(1.0)
    while True:
        try:
            if not conn.recv(4096):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def handle(conn, number):
    try:
        if ctx:
            conn = ctx.wrap_socket(conn, server_side=True)
        while serve_one(conn, number):
            pass
    except (OSError, ssl.SSLError, ValueError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def serve_one(conn, number):
    """Answers one request; True when the connection stays open for another."""
    m = mode()
    req = read_request(conn)
    if req is None:
        return False
    method, path, headers, body = req
    rec = {"t": time.time(), "mode": m, "method": method, "path": path,
           "headers": headers, "body": body.decode("utf-8", "replace"), "conn": number}
    with lock, open(args.log, "a") as f:
        f.write(json.dumps(rec) + "\n")
    keep = args.keep_alive and headers.get("connection", "").lower() != "close"
    if m == "ok":
        answer(conn, 200, b'{"status":"ok"}', keep=keep)
        return keep
    elif m.startswith("status:"):
        answer(conn, int(m[7:]), b'{"error":"as configured"}', keep=keep)
        return keep
    elif m.startswith("429:"):
        answer(conn, 429, b'{"error":"slow down"}', f"Retry-After: {m[4:]}\r\n")
    elif m.startswith("reply:"):
        answer(conn, 200, m[6:].encode())
    elif m == "silent":
        wait_for_close(conn)
    elif m == "drip":
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        while True:
            conn.sendall(b"a")
            time.sleep(0.2)
    elif m == "endless":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        while True:
            conn.sendall(b"b")
            time.sleep(0.2)
    elif m == "huge":
        size = 100 * 1000 * 1000
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        block = b"x" * 65536
        sent = 0
        while sent < size:
            conn.sendall(block)
            sent += len(block)
    elif m == "chunkbomb":
        conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"fffffffffffffffe\r\n" * (65536 // 18))
        wait_for_close(conn)
    elif m == "continue":
        block = b"HTTP/1.1 100 Continue\r\n\r\n" * 2000
        sent = 0
        try:
            while True:
                conn.sendall(block)
                sent += len(block)
        finally:
            with lock, open(args.log, "a") as f:
                f.write(json.dumps({"t": time.time(), "ended": m, "sent": sent}) + "\n")
    elif m == "echo302":
        auth = urllib.parse.quote(headers.get("authorization", ""))
        body = f"moved to /login?h={auth}".encode()
        conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/login?h={auth}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    elif m.startswith("echo:"):
        _, status, n = m.split(":")
        text = ("invalid token: " + headers.get("authorization", ""))[: int(n)]
        body = text.encode()
        conn.sendall(f"HTTP/1.1 {status} {text}\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
    elif m.startswith("retry:"):
        _, status, t = m.split(":")
        answer(conn, int(status), b'{"error":"later"}', f"Retry-After: {t}\r\n")
    elif m == "pingflood":
        accept = base64.b64encode(hashlib.sha1(
            (headers.get("sec-websocket-key", "") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()
        ).digest()).decode()
        conn.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode())
        ping = b"\x89\x7d" + b"p" * 125
        while True:
            conn.sendall(ping * 64)
    elif m == "garbage":
        conn.sendall(os.urandom(3000))
    elif m == "close":
        pass
    return False


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((args.host, args.port))
srv.listen(64)
print("READY", flush=True)
while True:
    c, _ = srv.accept()
    conns += 1
    threading.Thread(target=handle, args=(c, conns), daemon=True).start()
