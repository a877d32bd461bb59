"""The exception classes mirror the registry of spec/09 §9.1 and libknit's own names."""

from __future__ import annotations

import pickle

import pytest

import knit
from knit import errors
from knit._lib import lib


def test_every_registry_code_has_the_library_s_name() -> None:
    for code, cls in errors.registry().items():
        assert lib.knit_status_name(code).decode() == cls.name, code
        assert issubclass(cls, knit.KnitError)
    assert len(errors.registry()) == 31


@pytest.mark.parametrize(
    ("code", "cls", "base"),
    [
        (1, knit.UnknownFunction, knit.CallError),
        (4, knit.Cancelled, knit.CallError),
        (6, knit.PeerDied, knit.LivenessError),
        (10, knit.ChannelAborted, knit.ChannelError),
        (107, knit.Poisoned, knit.AttachError),
        (200, knit.BadPosition, knit.ProtocolViolation),
    ],
)
def test_codes_map_to_classes(code: int, cls: type, base: type) -> None:
    e = errors.error_for(code, "why")
    assert type(e) is cls and isinstance(e, base) and e.code == code and e.message == "why"


def test_application_and_unknown_codes_keep_their_number() -> None:
    app = errors.error_for(4242, "mine")
    assert isinstance(app, knit.ApplicationError) and app.code == 4242
    assert lib.knit_status_name(4242).decode() == "APPLICATION"
    odd = errors.error_for(70_000, "?")  # CALL-7: not a registry code, delivered raw
    assert type(odd) is knit.KnitError and odd.code == 70_000 and odd.name == "UNKNOWN"


def test_errors_survive_pickling() -> None:
    e = pickle.loads(pickle.dumps(knit.PeerDied("gone")))
    assert type(e) is knit.PeerDied and e.message == "gone"
