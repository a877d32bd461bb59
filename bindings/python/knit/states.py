"""What inspection returns: a pool's workers, a region's header and participant entries."""

from __future__ import annotations

from dataclasses import dataclass

from ._lib import ParticipantInfo, RegionInfo, WorkerInfo


@dataclass(frozen=True)
class WorkerState:
    """The state of one worker of a pool (``knit_worker_info``)."""

    index: int
    pid: int
    ready: bool
    dead: bool
    outstanding: int
    starts: int


@dataclass(frozen=True)
class RegionState:
    """A pool's region header and poison state (``knit_region_info``)."""

    name: str
    major: int
    minor: int
    worker_slots: int
    channel_slots: int
    inflight_max: int
    request_ring_cap: int
    response_ring_cap: int
    channel_ring_cap: int
    poison_code: int
    poisoned_by: int
    region_len: int
    max_message_len: int


@dataclass(frozen=True)
class ParticipantState:
    """One participant entry of a pool's region (``knit_participant_info``)."""

    index: int
    state: int
    role: int
    pid: int
    epoch: int
    start_time: int
    heartbeat_ns: int
    impl_name: str


def worker_state(w: WorkerInfo) -> WorkerState:
    """From ``knit_worker_info``."""
    return WorkerState(w.index, w.pid, w.ready, w.dead, w.outstanding, w.starts)


def region_state(i: RegionInfo) -> RegionState:
    """From ``knit_region_info``."""
    return RegionState(
        i.name.decode("utf-8", "replace"),
        i.major,
        i.minor,
        i.worker_slots,
        i.channel_slots,
        i.inflight_max,
        i.request_ring_cap,
        i.response_ring_cap,
        i.channel_ring_cap,
        i.poison_code,
        i.poisoned_by,
        i.region_len,
        i.max_message_len,
    )


def participant_state(p: ParticipantInfo) -> ParticipantState:
    """From ``knit_participant_info``."""
    return ParticipantState(
        p.index,
        p.state,
        p.role,
        p.pid,
        p.epoch,
        p.start_time,
        p.heartbeat_ns,
        p.impl_name.decode("utf-8", "replace"),
    )
