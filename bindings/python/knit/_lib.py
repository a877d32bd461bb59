"""Finding and loading libknit, and the C declarations of include/knit.h used by the binding.

ctypes, not cffi: it is in the standard library, needs no compiler when the package is
installed, releases the GIL around every foreign call (a blocking ``knit_call`` never stalls
other Python threads) and takes the GIL back in callbacks that the library makes from its own
threads (ticket readiness, handlers of thread workers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_size_t,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# The C ABI this binding was written against (knit.h: KNIT_VERSION_MAJOR / _MINOR).
ABI_MAJOR = 0
ABI_MINOR = 1

FOREVER = (1 << 64) - 1
REGION_NAME_CAPACITY = 40
IMPL_NAME_CAPACITY = 33

SPIN_BALANCED = 0
SPIN_LOWEST_LATENCY = 1
SPIN_NONE = 2
SPIN_ITERATIONS = 3

BACKPRESSURE_WAIT = 0
BACKPRESSURE_ERROR = 1


class LibraryNotFound(ImportError):
    """libknit could not be found or does not match this binding."""


# --- structs (same layout as knit.h) ---------------------------------------------------------


class Request(Structure):
    """`knit_request`: what a handler receives; valid only during the handler call."""

    _fields_ = [
        ("payload", c_void_p),
        ("payload_len", c_size_t),
        ("content_type", c_uint32),
        ("worker_slot", c_uint32),
        ("request_id", c_uint64),
        ("deadline_ns", c_uint64),
    ]


class RegionInfo(Structure):
    """`knit_region_info`."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("major", c_uint16),
        ("minor", c_uint16),
        ("worker_slots", c_uint32),
        ("channel_slots", c_uint32),
        ("inflight_max", c_uint32),
        ("request_ring_cap", c_uint32),
        ("response_ring_cap", c_uint32),
        ("channel_ring_cap", c_uint32),
        ("poison_code", c_uint32),
        ("poisoned_by", c_uint32),
        ("region_len", c_uint64),
        ("max_message_len", c_uint64),
        ("required_features", c_uint64),
        ("optional_features", c_uint64),
        ("name", c_char * REGION_NAME_CAPACITY),
    ]


class WorkerInfo(Structure):
    """`knit_worker_info`."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("index", c_uint32),
        ("pid", c_uint32),
        ("ready", c_bool),
        ("dead", c_bool),
        ("outstanding", c_uint64),
        ("starts", c_uint64),
    ]


class ParticipantInfo(Structure):
    """`knit_participant_info`."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("index", c_uint32),
        ("state", c_uint32),
        ("role", c_uint32),
        ("pid", c_uint32),
        ("epoch", c_uint32),
        ("start_time", c_uint64),
        ("heartbeat_ns", c_uint64),
        ("impl_name", c_char * IMPL_NAME_CAPACITY),
    ]


# --- callback types ----------------------------------------------------------------------------

HANDLER_FN = CFUNCTYPE(c_uint32, c_void_p, POINTER(Request), c_void_p)
FREE_FN = CFUNCTYPE(None, c_void_p)
BORROW_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)
FILL_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)
READY_FN = CFUNCTYPE(None, c_void_p)
WRITE_FN = CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_size_t)

_H = c_void_p  # every opaque handle
_PH = POINTER(c_void_p)  # an out-parameter for a handle

# name: (restype, argtypes). Every status-returning function returns a u32 knit_status.
_S = c_uint32
_PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "knit_last_error_message": (c_char_p, []),
    "knit_last_error_code": (_S, []),
    "knit_status_name": (c_char_p, [c_uint32]),
    "knit_version": (c_uint32, []),
    "knit_version_string": (c_char_p, []),
    "knit_protocol_version": (_S, [POINTER(c_uint16), POINTER(c_uint16)]),
    "knit_monotonic_ns": (c_uint64, []),
    "knit_handle_count": (c_size_t, []),
    "knit_config_new": (_S, [_PH]),
    "knit_config_free": (_S, [_H]),
    "knit_config_set_workers": (_S, [_H, c_uint32]),
    "knit_config_set_threads": (_S, [_H, _H]),
    "knit_config_set_process": (_S, [_H, POINTER(c_char_p), POINTER(c_char_p)]),
    "knit_config_set_spin": (_S, [_H, c_uint32, c_uint32]),
    "knit_config_set_ring_sizes": (_S, [_H, c_uint32, c_uint32]),
    "knit_config_set_channels": (_S, [_H, c_uint32, c_uint32]),
    "knit_config_set_inflight": (_S, [_H, c_uint32]),
    "knit_config_set_max_message_len": (_S, [_H, c_uint64]),
    "knit_config_set_default_deadline": (_S, [_H, c_uint64]),
    "knit_config_set_restart": (_S, [_H, c_bool]),
    "knit_config_set_backpressure": (_S, [_H, c_uint32]),
    "knit_config_set_start_timeout": (_S, [_H, c_uint64]),
    "knit_config_set_shutdown_timeout": (_S, [_H, c_uint64]),
    "knit_config_set_external": (_S, [_H, c_bool]),
    "knit_reply_set": (_S, [_H, c_void_p, c_size_t, c_uint32]),
    "knit_reply_alloc": (_S, [_H, c_size_t, c_uint32, _PH]),
    "knit_reply_error": (_S, [_H, c_uint32, c_char_p]),
    "knit_reply_write_in_place": (_S, [_H, c_size_t, c_uint32, WRITE_FN, c_void_p]),
    "knit_request_is_cancelled": (_S, [POINTER(Request), POINTER(c_bool)]),
    "knit_request_open_channel": (_S, [POINTER(Request), _PH]),
    "knit_request_take_channel": (_S, [POINTER(Request), _PH]),
    "knit_handlers_new": (_S, [_PH]),
    "knit_handlers_add": (_S, [_H, c_char_p, HANDLER_FN, c_void_p, FREE_FN]),
    "knit_handlers_add_streaming": (_S, [_H, c_char_p, HANDLER_FN, c_void_p, FREE_FN]),
    "knit_handlers_add_in_place": (_S, [_H, c_char_p, HANDLER_FN, c_void_p, FREE_FN]),
    "knit_handlers_free": (_S, [_H]),
    "knit_worker_from_env": (_S, [_PH]),
    "knit_worker_new": (_S, [c_char_p, c_uint32, _PH]),
    "knit_worker_handle": (_S, [_H, c_char_p, HANDLER_FN, c_void_p, FREE_FN]),
    "knit_worker_handle_streaming": (_S, [_H, c_char_p, HANDLER_FN, c_void_p, FREE_FN]),
    "knit_worker_handle_in_place": (_S, [_H, c_char_p, HANDLER_FN, c_void_p, FREE_FN]),
    "knit_worker_add_handlers": (_S, [_H, _H]),
    "knit_worker_set_spin": (_S, [_H, c_uint32, c_uint32]),
    "knit_worker_run": (_S, [_H]),
    "knit_worker_free": (_S, [_H]),
    "knit_pool_start": (_S, [_H, _PH]),
    "knit_pool_shutdown": (_S, [_H]),
    "knit_pool_free": (_S, [_H]),
    "knit_pool_get_info": (_S, [_H, POINTER(RegionInfo)]),
    "knit_pool_get_worker": (_S, [_H, c_uint32, POINTER(WorkerInfo)]),
    "knit_pool_get_participant": (_S, [_H, c_uint32, POINTER(ParticipantInfo)]),
    "knit_pool_wait_worker": (_S, [_H, c_uint32, c_uint64]),
    "knit_pool_worker_functions": (_S, [_H, c_uint32, c_void_p, c_size_t, POINTER(c_size_t)]),
    "knit_pool_release_worker": (_S, [_H, c_uint32, c_uint64]),
    "knit_pool_reserve_worker": (_S, [_H, c_uint32, POINTER(c_uint32)]),
    "knit_call_on": (_S, [_H, c_uint32, c_char_p, c_void_p, c_size_t, c_uint32, c_uint64, _PH]),
    "knit_call_async_on": (
        _S,
        [_H, c_uint32, c_char_p, c_void_p, c_size_t, c_uint32, c_uint64, _PH],
    ),
    "knit_call": (_S, [_H, c_char_p, c_void_p, c_size_t, c_uint32, c_uint64, _PH]),
    "knit_call_loan": (_S, [_H, c_char_p, c_size_t, c_uint32, FILL_FN, c_void_p, _PH]),
    "knit_call_borrow": (_S, [_H, c_char_p, c_void_p, c_size_t, c_uint32, BORROW_FN, c_void_p]),
    "knit_response_get": (_S, [_H, POINTER(c_void_p), POINTER(c_size_t), POINTER(c_uint32)]),
    "knit_response_free": (_S, [_H]),
    "knit_call_async": (_S, [_H, c_char_p, c_void_p, c_size_t, c_uint32, c_uint64, _PH]),
    "knit_ticket_poll": (_S, [_H, POINTER(c_bool)]),
    "knit_ticket_wait": (_S, [_H, c_uint64, _PH]),
    "knit_wait_any": (_S, [POINTER(c_void_p), c_size_t, c_uint64, POINTER(c_size_t)]),
    "knit_ticket_cancel": (_S, [_H]),
    "knit_ticket_free": (_S, [_H]),
    "knit_ticket_on_complete": (_S, [_H, READY_FN, c_void_p]),
    "knit_sender_send": (_S, [_H, c_void_p, c_size_t, c_uint32]),
    "knit_sender_try_send": (_S, [_H, c_void_p, c_size_t]),
    "knit_sender_close": (_S, [_H]),
    "knit_sender_abort": (_S, [_H, c_uint32]),
    "knit_sender_free": (_S, [_H]),
    "knit_call_with_channel": (
        _S,
        [_H, c_char_p, c_void_p, c_size_t, c_uint32, c_uint64, _PH, _PH],
    ),
    "knit_ticket_channel": (_S, [_H, _PH]),
    "knit_receiver_recv": (_S, [_H, _PH]),
    "knit_receiver_abort": (_S, [_H, c_uint32]),
    "knit_receiver_free": (_S, [_H]),
    "knit_region_create": (_S, [_H, _PH]),
    "knit_region_attach": (_S, [c_char_p, c_uint64, _PH]),
    "knit_region_get_info": (_S, [_H, POINTER(RegionInfo)]),
    "knit_region_get_participant": (_S, [_H, c_uint32, POINTER(ParticipantInfo)]),
    "knit_region_free": (_S, [_H]),
}

_LIB_NAMES = ("libknit.so", "libknit.dylib", "knit.dll")


def _repo_root() -> Path | None:
    """The Knit checkout this package sits in (when it runs from the source tree)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "scripts" / "build-c").is_file() and (parent / "knit-ffi").is_dir():
            return parent
    return None


def candidates() -> list[Path]:
    """Where libknit is looked for, in order (after ``KNIT_LIB``)."""
    found: list[Path] = []
    bundled = Path(__file__).resolve().parent / "_native"
    found += [bundled / n for n in _LIB_NAMES]
    root = _repo_root()
    if root is not None:
        targets = []
        if os.environ.get("CARGO_TARGET_DIR"):
            targets.append(Path(os.environ["CARGO_TARGET_DIR"]))
        targets.append(root / "target")
        for t in targets:
            for profile in ("release", "debug"):
                found += [t / "knit-c" / profile / "lib" / n for n in _LIB_NAMES]
                found += [t / profile / n for n in _LIB_NAMES]
    return found


def _locate() -> str:
    """The path (or loader name) of libknit: KNIT_LIB, the bundled copy, the source tree's
    build output, then the system's library path."""
    env = os.environ.get("KNIT_LIB")
    if env:
        p = Path(env)
        if p.is_dir():
            for n in _LIB_NAMES:
                if (p / n).is_file():
                    return str(p / n)
            raise LibraryNotFound(f"KNIT_LIB={env} is a directory without {_LIB_NAMES[0]}")
        if not p.is_file():
            raise LibraryNotFound(f"KNIT_LIB={env} does not exist")
        return str(p)
    for c in candidates():
        if c.is_file():
            return str(c)
    system = ctypes.util.find_library("knit")
    if system:
        return system
    looked = "\n  ".join(str(c) for c in candidates())
    raise LibraryNotFound(
        "libknit not found. Set KNIT_LIB to libknit.so, build it with scripts/build-c, or "
        f"install it where the loader looks. Looked in:\n  {looked}"
    )


def _load() -> ctypes.CDLL:
    path = _locate()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise LibraryNotFound(f"cannot load {path}: {e}") from e
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError as e:
            raise LibraryNotFound(f"{path} lacks {name}: an older libknit?") from e
        fn.restype = restype
        fn.argtypes = argtypes
    version = lib.knit_version()
    major, minor = version >> 16, (version >> 8) & 0xFF
    if major != ABI_MAJOR or minor < ABI_MINOR:
        raise LibraryNotFound(
            f"{path} is libknit {lib.knit_version_string().decode()}; this binding needs "
            f"{ABI_MAJOR}.{ABI_MINOR} or a later {ABI_MAJOR}.x"
        )
    lib.path = path  # type: ignore[attr-defined]
    return lib


lib = _load()


def last_error() -> tuple[int, str]:
    """The status and message of the latest failed call on this thread."""
    code = lib.knit_last_error_code()
    raw = lib.knit_last_error_message()
    return code, raw.decode("utf-8", "replace") if raw else ""


def monotonic_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds (the clock of deadlines)."""
    return int(lib.knit_monotonic_ns())


def seconds_to_ns(seconds: float | None) -> int:
    """A duration in seconds as the library's nanoseconds (None: no bound)."""
    if seconds is None:
        return FOREVER
    if seconds != seconds or seconds < 0:  # NaN or negative
        raise ValueError(f"a duration must be a non-negative number of seconds, not {seconds}")
    ns = int(seconds * 1e9)
    return min(max(ns, 1), FOREVER - 1)


def is_little_endian() -> bool:
    """Whether this machine stores integers as the protocol does (CONV-2)."""
    return sys.byteorder == "little"


__all__ = ["LibraryNotFound", "last_error", "lib", "monotonic_ns", "seconds_to_ns"]
