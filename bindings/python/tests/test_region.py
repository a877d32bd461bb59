"""Inspecting regions by name: the header and entries of a live pool's region, and images
refused in the order of HDR-9."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import knit


@contextmanager
def shm_image(data: bytes) -> Iterator[str]:
    """A named object in /dev/shm (MAP-2 name, 0600) holding ``data``."""
    name = "knit-" + secrets.token_hex(16)
    path = f"/dev/shm/{name}"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, data)
        os.close(fd)
        yield name
    finally:
        os.unlink(path)


def test_a_live_region_reads_like_its_pool(rust_pool: knit.Pool) -> None:
    info = rust_pool.info()
    with knit.Region.attach(info.name) as region:
        assert region.info() == info
        host = region.participant(0)
        assert (host.role, host.state, host.pid) == (1, 3, os.getpid())
        assert region.participant(1).pid == rust_pool.worker(1).pid
        with pytest.raises(knit.InvalidArgument):
            region.participant(99)


def test_names_outside_map_2_are_refused() -> None:
    for name in ["/etc/passwd", "knit-XYZ", "knit-" + "0" * 31, "../knit-" + "0" * 32]:
        with pytest.raises(knit.InvalidArgument):
            knit.Region.attach(name, timeout=0)


def test_images_are_refused_in_hdr_9_order() -> None:
    with shm_image(b"\0" * 0x100) as name, pytest.raises(knit.RegionTooSmall):
        knit.Region.attach(name, timeout=0)
    blank = bytearray(0x1000)
    with shm_image(bytes(blank)) as name, pytest.raises(knit.NotReady):
        knit.Region.attach(name, timeout=0)  # init_state BLANK, one look
    ready = bytearray(blank)
    ready[0x100] = 2  # init_state READY, magic still zero
    with shm_image(bytes(ready)) as name, pytest.raises(knit.BadMagic):
        knit.Region.attach(name, timeout=0)
