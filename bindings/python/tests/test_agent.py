"""The conformance agent (knit_agent.py): the payload generator and digest of
conformance/README.md §3.1 against its check values, and the framing of §2."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
from conftest import HERE

sys.path.insert(0, str(HERE.parent))
import knit_agent

AGENT = [sys.executable, str(HERE.parent / "knit_agent.py")]


@pytest.mark.parametrize("numpy", [False, True])
def test_payload_and_digest_check_values(numpy: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if numpy:
        pytest.importorskip("numpy")
    else:
        monkeypatch.setattr(knit_agent.codec, "numpy", lambda: None)
    assert knit_agent.payload(0, 8) == struct.pack("<Q", 0xE220A8397B1DCDAF)
    assert knit_agent.payload(1, 12).hex() == "c15c0289ec2d0a9167ec8e65"
    assert knit_agent.digest(knit_agent.payload(1, 16)) == "56e6a4c0e205423a"
    assert knit_agent.digest(knit_agent.payload(7, 1000)) == "bac5b7f22df668eb"
    assert knit_agent.digest(b"") == "cbf29ce484222325"
    assert knit_agent.digest(b"a") == "af63dc4c8601ec8c"


def frame(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack("<I", len(body)) + body


def replies(data: bytes) -> list[dict[str, object]]:
    out = []
    while data:
        (n,) = struct.unpack_from("<I", data)
        out.append(json.loads(data[4 : 4 + n]))
        data = data[4 + n :]
    return out


def test_the_agent_answers_every_frame_in_order() -> None:
    typed = struct.pack("<HHI2Q", 10, 2, 0, 2, 3) + bytes(24)
    commands = b"".join(
        [
            frame({"id": 1, "cmd": "hello", "suite": "0.1.0", "spec": "1.0"}),
            struct.pack("<I", 5) + b"{nope",  # malformed: INVALID_ARGUMENT, keeps going
            frame({"id": 3, "cmd": "put_image", "name": "t", "hex": typed.hex()}),
            frame({"id": 4, "cmd": "validate", "kind": "typed_array", "image": "t"}),
            frame(
                {
                    "id": 5,
                    "cmd": "validate",
                    "kind": "typed_array",
                    "image": "t",
                    "patches": [[0, "6300"]],
                }
            ),
            frame({"id": 6, "cmd": "raw_attach", "region": "knit-0", "slot": 1}),
            frame({"id": 7, "cmd": "no_such_command"}),
            frame({"id": 8, "cmd": "exit"}),
        ]
    )
    run = subprocess.run(AGENT, input=commands, capture_output=True, timeout=60, check=True)
    r = replies(run.stdout)
    assert [x["id"] for x in r] == [1, None, 3, 4, 5, 6, 7, 8]
    assert r[0]["name"] == "knit-python" and "worker" in r[0]["capabilities"]  # type: ignore[operator]
    assert "host" in r[0]["capabilities"]  # type: ignore[operator]
    assert r[1]["class"] == "INVALID_ARGUMENT"
    assert r[3] == {"id": 4, "status": "ok", "verdict": "valid", "dtype": 10, "shape": ["2", "3"]}
    assert (r[4]["verdict"], r[4]["class"]) == ("invalid", "INVALID_ARGUMENT")  # dtype 99
    assert r[5]["status"] == "skipped"  # raw peers have no C counterpart
    assert (r[6]["status"], r[6]["class"]) == ("error", "INVALID_ARGUMENT")
    assert r[7]["status"] == "ok"
