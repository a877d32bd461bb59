#!/usr/bin/env python3
"""The conformance agent of the Python binding: answers the driver protocol of
conformance/README.md (length-prefixed JSON frames on stdin/stdout) with the `knit` package
over libknit.

    knit conformance --agent "python3 bindings/python/knit_agent.py"

What it can do (capabilities): serve as a worker of a region the runner created (`worker`;
`channels`: a handler reading the host's channel), be the host of a region whose workers the
runner or another agent starts (`host`: `host_*`, `call`, `call_batch`, `host_channel_call`,
through a pool of external workers, `knit.Pool(external=True)`), start itself as a worker
process the way a host does (`spawn`), run its own host with thread or process workers
(`pool`), validate region images through libknit's attach and typed arrays with the binding's
own decoder (`validate.region`, `validate.typed_array`), and count its resources (`stats`).
Raw peers (`raw_*`), the host commands that need byte-level control of a ring (`host_write`,
...), and the validation of rings, participant entries and function tables have no
counterpart in the C interface a binding uses: those answer `skipped`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

HERE = Path(__file__).resolve().parent
if (HERE / "knit" / "__init__.py").is_file():
    sys.path.insert(0, str(HERE))  # the package next to this file, else the installed one

import knit  # noqa: E402
from knit import payload as codec  # noqa: E402
from knit.errors import KnitError, error_for, name_of  # noqa: E402

MASK = (1 << 64) - 1
SERVE_FLAG = "--serve-from-env"
FUNCTIONS_ENV = "KNIT_AGENT_FUNCTIONS"
BEHAVIOURS = ("echo", "checksum", "fail", "sleep", "generate", "drain")
CAPABILITIES = [
    "validate.region",
    "validate.typed_array",
    "worker",
    "host",
    "channels",
    "spawn",
    "pool",
    "stats",
]
MAX_FRAME = 16 * 1024 * 1024
# The attach timeout of a claimed entry (PART-11) when the runner gives none: a worker is
# ATTACHING for microseconds, so a second is generous and keeps liveness cases in bounds.
ATTACH_TIMEOUT_S = 1.0
HOST_COMMANDS = ("host_", "call")
STATE_NAMES = ("EMPTY", "RESERVED", "ATTACHING", "ACTIVE", "DETACHED", "DEAD")


# --- payloads (README §3.1) --------------------------------------------------------------------


def payload(seed: int, length: int) -> bytes:
    """SplitMix64 words of ``seed``, little-endian, the first ``length`` bytes."""
    words = (length + 7) // 8
    np = codec.numpy()
    if np is not None and words > 64:
        with np.errstate(over="ignore"):
            i = np.arange(1, words + 1, dtype=np.uint64)
            z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        return bytes(z.astype("<u8").tobytes()[:length])
    out = bytearray()
    s = seed & MASK
    for _ in range(words):
        s = (s + 0x9E3779B97F4A7C15) & MASK
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out += struct.pack("<Q", z ^ (z >> 31))
    return bytes(out[:length])


def fnv1a(data: bytes | memoryview) -> int:
    """FNV-1a 64 over every byte."""
    h = 0xCBF29CE484222325
    for b in bytes(data):
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def digest(data: bytes | memoryview) -> str:
    return f"{fnv1a(data):016x}"


def batch_len(seed: int, i: int, lo: int, hi: int) -> int:
    """README §3.6: ``min_len + (payload(seed + i, 8) as u64 LE) mod (max_len - min_len + 1)``."""
    (word,) = struct.unpack("<Q", payload((seed + i) & MASK, 8))
    return int(lo + word % (max(hi - lo, 0) + 1))


# --- built-in behaviours (README §3.2) as raw handlers -----------------------------------------


def behaviour(spec: dict[str, Any]) -> Callable[[knit.Request], Any]:
    kind = spec.get("behaviour", spec["name"])
    if kind not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {kind}")
    ms = int(spec.get("ms", 0))
    code = int(spec.get("code", 2))

    def echo(req: knit.Request) -> Any:
        return knit.Payload(bytes(req.payload), req.content_type)

    def checksum(req: knit.Request) -> Any:
        return struct.pack("<Q", fnv1a(req.payload))

    def fail(req: knit.Request) -> Any:
        raise error_for(code, "fail")

    def sleep(req: knit.Request) -> Any:
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end:
            if req.cancelled():
                raise knit.Cancelled("cancelled while sleeping")
            time.sleep(0.0005)
        return echo(req)

    def generate(req: knit.Request) -> Any:
        if len(req.payload) < 16:
            raise knit.InvalidArgument("generate needs seed and len")
        seed, length = struct.unpack_from("<QQ", req.payload, 0)
        return payload(seed, length)

    def drain(req: knit.Request) -> Any:
        # Every message of the host's channel until its end, folded into the batch digest of
        # README §3.6; a receive error (CHANNEL_ABORTED, PEER_DIED, ...) is the call's status.
        rx = req.take_channel()
        folded = bytearray()
        i = 0
        while True:
            try:
                message = rx.recv_response()
            except knit.ChannelClosed:
                break
            folded += struct.pack("<Q", i) + struct.pack(">Q", fnv1a(message.data))
            i += 1
        return knit.Payload(digest(bytes(folded)).encode(), knit.UTF8)

    return {
        "echo": echo,
        "checksum": checksum,
        "fail": fail,
        "sleep": sleep,
        "generate": generate,
        "drain": drain,
    }[kind]


def handlers(specs: Any) -> dict[str, Any]:
    if not isinstance(specs, list):
        raise ValueError("functions must be a list")
    return {f["name"]: knit.handler(behaviour(f), raw=True) for f in specs}


# --- replies --------------------------------------------------------------------------------


def ok(**results: Any) -> dict[str, Any]:
    return {"status": "ok", **results}


def class_of(code: int) -> str:
    """The registry name, or the decimal number for a code outside the registry (CALL-7)."""
    name = name_of(code)
    return str(code) if name in ("APPLICATION", "UNKNOWN") else name


def error(code: int, detail: str) -> dict[str, Any]:
    return {"status": "error", "class": class_of(code), "code": code, "detail": detail}


def failure(e: BaseException) -> dict[str, Any]:
    if isinstance(e, KnitError):
        return error(e.code, e.message)
    return error(11, f"{type(e).__name__}: {e}")


def skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason}


class BadCommand(Exception):
    """An argument is missing or malformed: answered INVALID_ARGUMENT."""


def arg(c: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    v = c.get(key)
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is int):
        raise BadCommand(f"`{key}` is required")
    return v


# --- the agent -------------------------------------------------------------------------------


class ServeThread:
    """A worker of the runner's region serving in the background."""

    def __init__(self, region: str, slot: int, functions: dict[str, Any], spin: str | None):
        self.outcome: BaseException | None = None
        self.worker = knit.Worker(functions, region=region, slot=slot, spin=spin)
        self.thread = threading.Thread(target=self._run, name=f"serve-{slot}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as e:  # reported by wait_worker
            self.outcome = e

    def wait(self, timeout: float) -> dict[str, Any]:
        self.thread.join(timeout)
        if self.thread.is_alive():
            return error(14, "the worker still runs")
        if self.outcome is None:
            return ok(outcome="shutdown")
        return failure(self.outcome)


class Agent:
    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}
        self.serves: list[ServeThread] = []
        self.spawned: subprocess.Popen[bytes] | None = None
        self.pool: knit.Pool | None = None
        self.host: knit.Pool | None = None

    def handle(self, c: dict[str, Any]) -> dict[str, Any]:
        cmd = c.get("cmd")
        method = getattr(self, f"cmd_{cmd}", None) if isinstance(cmd, str) else None
        if method is None:
            region_level = ("host_", "raw_", "channel_")
            if isinstance(cmd, str) and cmd.startswith(region_level):
                return skipped(f"{cmd}: the C interface that the Python binding uses has none")
            return error(11, f"unknown command {cmd!r}")
        try:
            return method(c)  # type: ignore[no-any-return]
        except BadCommand as e:
            return error(11, str(e))
        except KnitError as e:
            host = isinstance(cmd, str) and cmd.startswith(HOST_COMMANDS)
            return self.host_failure(e) if host else failure(e)
        except (ValueError, TypeError, KeyError) as e:
            return error(11, f"{type(e).__name__}: {e}")

    def cmd_hello(self, c: dict[str, Any]) -> dict[str, Any]:
        return ok(
            name="knit-python",
            version=knit.__version__,
            spec_versions=["1.0"],
            capabilities=CAPABILITIES,
        )

    def cmd_put_image(self, c: dict[str, Any]) -> dict[str, Any]:
        try:
            self.images[arg(c, "name", str)] = bytes.fromhex(arg(c, "hex", str))
        except ValueError as e:
            raise BadCommand(f"hex: {e}") from e
        return ok()

    def cmd_validate(self, c: dict[str, Any]) -> dict[str, Any]:
        kind = arg(c, "kind", str)
        image = bytearray(self.images.get(arg(c, "image", str)) or b"")
        if arg(c, "image", str) not in self.images:
            raise BadCommand("no such image")
        for patch in c.get("patches") or []:
            if not (isinstance(patch, list) and len(patch) == 2 and isinstance(patch[0], int)):
                raise BadCommand("a patch is [offset, hex]")
            offset, data = patch[0], bytes.fromhex(patch[1])
            if not 0 <= offset <= 1 << 30:
                raise BadCommand("patch offset out of range")
            if offset + len(data) > len(image):
                image.extend(bytes(offset + len(data) - len(image)))
            image[offset : offset + len(data)] = data
        if kind == "region":
            return self.validate_region(bytes(image))
        if kind == "typed_array":
            try:
                d, shape, _ = codec.parse_typed_array(memoryview(bytes(image)))
            except KnitError as e:
                return ok(verdict="invalid", **{"class": class_of(e.code)}, detail=e.message)
            return ok(verdict="valid", dtype=d.code, shape=[str(n) for n in shape])
        return skipped(f"validate {kind}: the C interface has no decoder for it")

    @staticmethod
    def validate_region(image: bytes) -> dict[str, Any]:
        # The image becomes a named object (MAP-2 name, 0600) that libknit attaches to with
        # a single look at init_state: its checks, in HDR-9 order, are the verdict.
        name = "knit-" + secrets.token_hex(16)
        path = f"/dev/shm/{name}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(image)
            try:
                with knit.Region.attach(name, timeout=0) as region:
                    return ok(verdict="valid", region_len=str(region.info().region_len))
            except KnitError as e:
                return ok(verdict="invalid", **{"class": class_of(e.code)}, detail=e.message)
        finally:
            os.unlink(path)

    def cmd_serve(self, c: dict[str, Any]) -> dict[str, Any]:
        region, slot = arg(c, "region", str), arg(c, "slot", int)
        functions = handlers(c.get("functions"))
        spin = "none" if c.get("spin") == "none" else None
        self.serves.append(ServeThread(region, slot, functions, spin))
        return ok()

    def cmd_wait_worker(self, c: dict[str, Any]) -> dict[str, Any]:
        if not self.serves:
            return error(11, "no worker")
        return self.serves[-1].wait(c.get("timeout_ms", 5000) / 1000)

    def cmd_spawn_worker(self, c: dict[str, Any]) -> dict[str, Any]:
        region, slot = arg(c, "region", str), str(c.get("slot", 1))
        argv = [sys.executable, str(Path(__file__).resolve()), SERVE_FLAG]
        env = dict(os.environ)
        if c.get("via") == "args":
            argv += ["--knit-region", region, "--knit-slot", slot]
        else:
            env.update(KNIT_REGION=region, KNIT_SLOT=slot)
        self.spawned = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        return ok(pid=self.spawned.pid)

    def cmd_wait_spawned(self, c: dict[str, Any]) -> dict[str, Any]:
        if self.spawned is None:
            return error(11, "no spawned worker")
        try:
            code = self.spawned.wait(c.get("timeout_ms", 5000) / 1000)
        except subprocess.TimeoutExpired:
            return error(14, "the worker process still runs")
        self.spawned = None
        return ok(exit_code=code)

    def cmd_pool_start(self, c: dict[str, Any]) -> dict[str, Any]:
        specs = c.get("functions")
        functions = handlers(specs)  # checks the list before anything starts
        options: dict[str, Any] = {"workers": int(c.get("workers", 1))}
        if "max_message_len" in c:
            options["max_message_len"] = int(c["max_message_len"])
        if "restart" in c:
            options["restart"] = bool(c["restart"])
        if c.get("process"):
            command = [sys.executable, str(Path(__file__).resolve()), SERVE_FLAG]
            pool = knit.Pool(command, env={FUNCTIONS_ENV: json.dumps(specs)}, **options)
        else:
            pool = knit.Pool(handlers=functions, **options)
        if self.pool is not None:
            self.pool.close()
        self.pool = pool
        return ok(region=pool.info().name)

    def cmd_pool_call(self, c: dict[str, Any]) -> dict[str, Any]:
        if self.pool is None:
            return error(11, "no pool: pool_start first")
        body = payload(int(c.get("seed", 0)), int(c.get("len", 0)))
        deadline = c.get("deadline_ms")
        with self.pool.call_response(
            arg(c, "function", str),
            body,
            deadline=None if deadline is None else deadline / 1000,
        ) as r:
            return ok(content_type=r.content_type, len=len(r), digest=digest(r.data))

    def cmd_pool_workers(self, c: dict[str, Any]) -> dict[str, Any]:
        if self.pool is None:
            return error(11, "no pool: pool_start first")
        workers = [
            {"index": w.index, "ready": w.ready, "dead": w.dead, "starts": w.starts, "pid": w.pid}
            for w in self.pool.workers()
        ]
        return ok(workers=workers)

    def cmd_pool_stop(self, c: dict[str, Any]) -> dict[str, Any]:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        return ok()

    # -- host (README §3.6): a pool of external workers ---------------------------------------

    def cmd_host_create(self, c: dict[str, Any]) -> dict[str, Any]:
        p = c.get("params") or {}
        if not isinstance(p, dict):
            raise BadCommand("params is an object")

        def get(key: str, default: int) -> int:
            return int(p.get(key, default))  # u64 values may come as decimal strings

        channel_slots = get("channel_slots", 1)
        pool = knit.Pool(
            workers=get("worker_slots", 1),
            external=True,
            channels=channel_slots,
            channel_ring=get("channel_ring_cap", 4096) if channel_slots else 4096,
            inflight=get("inflight_max", 4),
            ring_size=(get("request_ring_cap", 4096), get("response_ring_cap", 4096)),
            max_message_len=get("max_message_len", 1 << 20),
            start_timeout=ATTACH_TIMEOUT_S,
        )
        self.close_host()
        self.host = pool
        return ok(region=pool.info().name)

    def host_failure(self, e: KnitError) -> dict[str, Any]:
        """README §3.6: a call ends with "the violation the host found". The pool poisons
        the region with it (ERR-2) and fails its calls with POISONED; when the finder is
        this host (participant 0, stored as 1), the violation is the region's poison code."""
        if e.code == knit.Poisoned.code and self.host is not None:
            try:
                info = self.host.info()
            except KnitError:
                return failure(e)
            if info.poisoned_by == 1 and info.poison_code not in (0, e.code):
                return error(info.poison_code, e.message)
        return failure(e)

    def host_pool(self) -> knit.Pool:
        if self.host is None:
            raise BadCommand("no region: host_create first")
        return self.host

    def cmd_host_reserve(self, c: dict[str, Any]) -> dict[str, Any]:
        return ok(epoch=self.host_pool().reserve_worker(arg(c, "slot", int)))

    def cmd_host_wait_hello(self, c: dict[str, Any]) -> dict[str, Any]:
        pool, slot = self.host_pool(), arg(c, "slot", int)
        timeout = c.get("timeout_ms", 5000) / 1000
        # LIVE-2 as the runner's reference host applies it: an entry that nobody claimed, or
        # whose claim never became ACTIVE, within the attach timeout is a worker that never
        # came. The pool times out a claimed entry itself (PART-11); an unclaimed one it
        # would wait for, so the agent takes the reservation back (PART-12).
        attach = c.get("attach_timeout_ms")
        if attach is not None and attach / 1000 < timeout:
            try:
                return ok(functions=pool.wait_worker(slot, timeout=attach / 1000))
            except knit.TimedOut:
                if STATE_NAMES[pool.participant(slot).state] == "RESERVED":
                    pool.release_worker(slot, timeout=0)
                    return error(knit.PeerDied.code, "no worker attached within the attach timeout")
                timeout -= attach / 1000
        return ok(functions=pool.wait_worker(slot, timeout=timeout))

    def cmd_call(self, c: dict[str, Any]) -> dict[str, Any]:
        pool, slot = self.host_pool(), arg(c, "slot", int)
        body = payload(int(c.get("seed", 0)), int(c.get("len", 0)))
        deadline = c.get("deadline_ms")
        with pool.submit_on(
            slot,
            arg(c, "function", str),
            knit.Payload(body, int(c.get("content_type", codec.BYTES))),
            deadline=None if deadline is None else deadline / 1000,
        ) as call:
            cancel_after = c.get("cancel_after_ms")
            if cancel_after is not None:
                try:
                    call.result_bytes(cancel_after / 1000)
                except knit.TimedOut:
                    call.cancel()  # CANCEL-1: the outcome is CANCELLED unless it just came
            data, ct = call.result_bytes()
            return ok(content_type=ct, len=len(data), digest=digest(data))

    def cmd_call_batch(self, c: dict[str, Any]) -> dict[str, Any]:
        pool, slot, function = self.host_pool(), arg(c, "slot", int), arg(c, "function", str)
        count, seed = int(c.get("count", 0)), int(c.get("seed", 0))
        lo, hi = int(c.get("min_len", 0)), int(c.get("max_len", 0))
        window = max(1, int(c.get("window", 1)))
        folded = bytearray()
        in_flight: collections.deque[tuple[int, knit.Call]] = collections.deque()

        def finish_oldest() -> None:
            i, call = in_flight.popleft()
            with call:
                data, _ = call.result_bytes()
            folded.extend(struct.pack("<Q", i) + struct.pack(">Q", fnv1a(data)))

        try:
            for i in range(count):
                while len(in_flight) >= window:
                    finish_oldest()
                body = payload((seed + i) & MASK, batch_len(seed, i, lo, hi))
                in_flight.append((i, pool.submit_on(slot, function, knit.Payload(body, 0))))
            while in_flight:
                finish_oldest()
        finally:
            for _, call in in_flight:
                call.close()
        return ok(count=count, digest=digest(bytes(folded)))

    def cmd_host_channel_call(self, c: dict[str, Any]) -> dict[str, Any]:
        pool, slot = self.host_pool(), arg(c, "slot", int)
        if pool.info().worker_slots != 1 or slot != 1:
            return skipped("a channel call pinned to one of several workers has no C function")
        for extra in ("garbage_state", "announce_twice"):
            if c.get(extra):
                return skipped(f"{extra}: a pool announces its channels correctly")
        count, seed = int(c.get("count", 10)), int(c.get("seed", 0))
        lo, hi = int(c.get("min_len", 0)), int(c.get("max_len", 64))
        pause = c.get("pause_ms", 0) / 1000
        abort_after = c.get("abort_after")
        folded = bytearray()
        sender_error: dict[str, Any] | None = None
        call, tx = pool.submit_with_channel("drain", b"")
        with call, tx:
            try:
                for i in range(count):
                    if abort_after == i:
                        tx.abort(int(c.get("abort_code", 4000)))
                        break
                    body = payload((seed + i) & MASK, batch_len(seed, i, lo, hi))
                    folded += struct.pack("<Q", i) + struct.pack(">Q", fnv1a(body))
                    tx.send(knit.Payload(body, codec.BYTES))
                    if pause:
                        time.sleep(pause)
                else:
                    tx.close()
            except KnitError as e:
                sender_error = failure(e)
            try:
                data, ct = call.result_bytes()
            except KnitError as e:
                reply = failure(e)
            else:
                reply = ok(content_type=ct, len=len(data), digest=digest(data))
                if len(data) <= 64:
                    with contextlib.suppress(UnicodeDecodeError):
                        reply["text"] = data.decode("utf-8")
        reply["verified"] = reply.get("text") == digest(bytes(folded))
        if sender_error is not None:
            reply["sender"] = sender_error
        return reply

    def cmd_host_shutdown(self, c: dict[str, Any]) -> dict[str, Any]:
        pool, slot = self.host_pool(), arg(c, "slot", int)
        entry = pool.release_worker(slot, timeout=c.get("timeout_ms", 5000) / 1000)
        return ok(state=STATE_NAMES[entry.state], epoch=entry.epoch)

    def cmd_host_state(self, c: dict[str, Any]) -> dict[str, Any]:
        entry = self.host_pool().participant(arg(c, "slot", int))
        return ok(state=STATE_NAMES[entry.state], epoch=entry.epoch)

    def cmd_host_close(self, c: dict[str, Any]) -> dict[str, Any]:
        self.close_host()
        return ok()

    def close_host(self) -> None:
        if self.host is not None:
            self.host.close()
            self.host = None

    def cmd_stats(self, c: dict[str, Any]) -> dict[str, Any]:
        fds = len(os.listdir("/proc/self/fd"))
        with open("/proc/self/maps") as f:
            mappings = sum(1 for line in f if "/dev/shm/knit-" in line or "memfd:knit" in line)
        threads = 0
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
        return ok(fds=fds, mappings=mappings, threads=threads)

    def cmd_reset(self, c: dict[str, Any]) -> dict[str, Any]:
        self.reset()
        return ok()

    def cmd_exit(self, c: dict[str, Any]) -> dict[str, Any]:
        return ok()

    def reset(self) -> None:
        self.close_host()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.spawned is not None:
            self.spawned.kill()
            self.spawned.wait()
            self.spawned = None
        for s in self.serves:
            # A worker ends on SHUTDOWN, its host's death or poisoning; the C interface cannot
            # stop one from outside, so one still serving is left to its host.
            s.thread.join(2)
        self.serves = [s for s in self.serves if s.thread.is_alive()]


# --- framing (README §2) --------------------------------------------------------------------


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack("<I", head)
    if not 1 <= n <= MAX_FRAME:
        raise OSError(f"frame length {n} out of range")
    body = stream.read(n)
    if len(body) < n:
        return None
    return body


def write_frame(stream: BinaryIO, reply: dict[str, Any]) -> None:
    body = json.dumps(reply, separators=(",", ":")).encode()
    stream.write(struct.pack("<I", len(body)) + body)
    stream.flush()


def serve_from_env() -> int:
    """This program as a worker process a host started (MAP-5)."""
    specs = json.loads(os.environ.get(FUNCTIONS_ENV) or '[{"name": "echo"}]')
    try:
        knit.Worker(handlers(specs)).run()
    except KnitError as e:
        print(f"knit_agent worker: {e}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    if SERVE_FLAG in sys.argv:
        return serve_from_env()
    # stdout carries frames only: keep a private handle on it and send everything else
    # (prints, library messages) to stderr.
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    commands = sys.stdin.buffer
    agent = Agent()
    while True:
        try:
            body = read_frame(commands)
        except OSError as e:
            print(f"knit_agent: {e}", file=sys.stderr)
            break
        if body is None:
            break
        command: Any = None
        try:
            command = json.loads(body)
            if not isinstance(command, dict):
                raise ValueError("a command is a JSON object")
            reply = agent.handle(command)
        except ValueError as e:
            reply = error(11, f"malformed command: {e}")
        reply["id"] = command.get("id") if isinstance(command, dict) else None
        write_frame(frames, reply)
        if isinstance(command, dict) and command.get("cmd") == "exit":
            break
    agent.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
