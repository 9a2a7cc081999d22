#!/usr/bin/env python3
"""A FUSE file system that never answers: mounts one on TARGET and never reads /dev/fuse, so
every stat/statfs of it waits (killably) for ever, like a FUSE daemon or NFS server that hung.
Then runs each command given after `--` (split on `;;`) with a timeout and prints one JSON
line per command: {"cmd", "rc" (null after a timeout), "seconds", "stdout", "stderr"}.
Run it in a private mount namespace (`unshare -m`): the mount disappears with it.

usage: fuse_hang.py TARGET -- CMD ARGS ;; CMD ARGS ...
"""
import ctypes
import json
import os
import subprocess
import sys
import time


def main():
    target = sys.argv[1]
    rest = sys.argv[sys.argv.index("--") + 1:]
    cmds, cur = [], []
    for a in rest:
        if a == ";;":
            cmds.append(cur)
            cur = []
        else:
            cur.append(a)
    if cur:
        cmds.append(cur)
    os.makedirs(target, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/dev/fuse", os.O_RDWR)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"netmon-hang", target.encode(), b"fuse.netmonhang", 0, opts) != 0:
        print(json.dumps({"error": "mount: " + os.strerror(ctypes.get_errno())}), flush=True)
        return 3
    for cmd in cmds:
        start = time.monotonic()
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=15)
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = None, e.stdout or b"", e.stderr or b""
        print(json.dumps({
            "cmd": cmd,
            "rc": rc,
            "seconds": round(time.monotonic() - start, 3),
            "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace"),
        }), flush=True)
    # Closing the fd aborts the connection: anything still waiting gets ENOTCONN.
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
