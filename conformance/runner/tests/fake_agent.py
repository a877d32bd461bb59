#!/usr/bin/env python3
"""A deliberately broken agent for the runner's own tests. argv[1] is the way it is broken:

  skip-all           answers hello, then `skipped` to every command
  hang-on-validate   never answers a `validate`
  crash-on-validate  exits when it reads a `validate`
  wrong-verdict      calls every image valid
  silent             never answers at all (not even hello)
"""
import json
import struct
import sys

MODE = sys.argv[1]


def read():
    head = sys.stdin.buffer.read(4)
    if len(head) < 4:
        sys.exit(0)
    (n,) = struct.unpack("<I", head)
    return json.loads(sys.stdin.buffer.read(n))


def write(obj):
    body = json.dumps(obj).encode()
    sys.stdout.buffer.write(struct.pack("<I", len(body)) + body)
    sys.stdout.buffer.flush()


while True:
    cmd = read()
    if MODE == "silent":
        continue
    name = cmd.get("cmd")
    reply = {"id": cmd["id"], "status": "ok"}
    if name == "hello":
        reply.update(name="fake", version="0", spec_versions=["1.0"],
                     capabilities=["validate.region", "validate.ring", "worker", "host", "stats"])
    elif name in ("put_image", "reset", "exit", "stats"):
        pass
    elif MODE == "skip-all":
        reply = {"id": cmd["id"], "status": "skipped", "reason": "fake agent"}
    elif name == "validate" and MODE == "hang-on-validate":
        continue
    elif name == "validate" and MODE == "crash-on-validate":
        sys.exit(3)
    elif name == "validate" and MODE == "wrong-verdict":
        reply["verdict"] = "valid"
        reply["region_len"] = "13376"
    else:
        reply = {"id": cmd["id"], "status": "error", "class": "INVALID_ARGUMENT", "code": 11, "detail": "fake"}
    write(reply)
    if name == "exit":
        sys.exit(0)
