#!/usr/bin/env python3
"""Builds a large real-traffic capture for the benchmarks: the Ethernet captures of ../shared/pcaps,
concatenated with `mergecap -a` into one classic pcap, then repeated until at least N frames, with
timestamps rewritten to advance monotonically (10 us apart), so that rates and cycles make sense.

usage: bench/make_capture.py SHARED_PCAPS_DIR OUT.pcap [MIN_FRAMES]
"""
import glob
import os
import struct
import subprocess
import sys
import tempfile

src_dir, out_path = sys.argv[1], sys.argv[2]
min_frames = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000

# Ethernet-only captures (a classic pcap holds one link type): those whose oracle says "ether".
inputs = []
for f in sorted(glob.glob(os.path.join(src_dir, "*.pcap")) + glob.glob(os.path.join(src_dir, "*.pcapng"))):
    summary = dict(
        line.rstrip("\n").split("\t", 1) for line in open(f + ".summary.tsv") if "\t" in line
    )
    if summary.get("encapsulation") == "ether":
        inputs.append(f)

with tempfile.TemporaryDirectory() as tmp:
    base = os.path.join(tmp, "base.pcap")
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", base] + inputs, check=True)
    data = open(base, "rb").read()

magic = struct.unpack("<I", data[:4])[0]
if magic == 0xA1B2C3D4:
    endian, nanos = "<", False
elif magic == 0xA1B23C4D:
    endian, nanos = "<", True
else:
    endian = ">"
    nanos = struct.unpack(">I", data[:4])[0] == 0xA1B23C4D
header = data[:24]
records = []
off = 24
while off + 16 <= len(data):
    _, _, incl, orig = struct.unpack(endian + "IIII", data[off:off + 16])
    records.append((incl, orig, data[off + 16:off + 16 + incl]))
    off += 16 + incl

repeats = -(-min_frames // len(records))
t = 1_700_000_000 * 1_000_000  # microseconds
step = 10
with open(out_path, "wb") as out:
    # Always write a little-endian microsecond pcap with the base file's link type and snaplen.
    snaplen, linktype = struct.unpack(endian + "II", header[16:24])
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
    n = 0
    for _ in range(repeats):
        for incl, orig, payload in records:
            out.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, incl, orig))
            out.write(payload)
            t += step
            n += 1
print(f"{out_path}: {n} frames from {len(inputs)} captures ({len(records)} frames) x {repeats}")
