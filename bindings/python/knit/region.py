"""Inspecting a region by name (what ``knit inspect`` shows): its validated header and
participant entries, without joining it as a participant."""

from __future__ import annotations

import ctypes
from ctypes import byref, c_void_p

from ._closing import Closing
from ._lib import ParticipantInfo, RegionInfo, lib, seconds_to_ns
from ._status import check
from .errors import InvalidArgument
from .states import ParticipantState, RegionState, participant_state, region_state


class Region(Closing):
    """A mapped region, for inspection. ``Region.attach(name)`` validates the header as an
    attaching participant does (HDR-9 order: ``knit.BadMagic``, ``knit.UnsupportedVersion``,
    ``knit.BadChecksum``, ``knit.BadLayout``, ``knit.Poisoned``, ...)."""

    __slots__ = ("_h",)

    def __init__(self, handle: int) -> None:
        self._h: int | None = handle

    @classmethod
    def attach(cls, name: str, timeout: float | None = None) -> Region:
        """Maps the region ``name`` (``knit-`` and 32 hex digits), waiting at most ``timeout``
        seconds (None: the protocol's 1 s; 0: one look) for its host to finish it."""
        region = c_void_p()
        wait = 0 if timeout == 0 else seconds_to_ns(timeout)
        check(lib.knit_region_attach(name.encode("utf-8"), wait, byref(region)))
        return cls(region.value or 0)

    def _handle(self) -> int:
        if self._h is None:
            raise InvalidArgument("this region handle was closed")
        return self._h

    def info(self) -> RegionState:
        """The header (validated when attached) and the live poison state."""
        i = RegionInfo(struct_size=ctypes.sizeof(RegionInfo))
        check(lib.knit_region_get_info(self._handle(), byref(i)))
        return region_state(i)

    def participant(self, index: int) -> ParticipantState:
        """Participant entry ``index`` (0 the host), read once and validated
        (``knit.BadParticipant`` for garbage)."""
        p = ParticipantInfo(struct_size=ctypes.sizeof(ParticipantInfo))
        check(lib.knit_region_get_participant(self._handle(), index, byref(p)))
        return participant_state(p)

    def close(self) -> None:
        """Unmaps the region (its name stays: it belongs to the host)."""
        h, self._h = self._h, None
        if h is not None:
            lib.knit_region_free(h)
