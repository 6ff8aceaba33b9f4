"""The edge's rollouts (edge/app/ota.py) with plain values: stand-in devices
answer the "ota" commands through the one door (edge/app/links.py) as the
firmware's updater does, in the message model (enter update mode and come
back with a hello, take chunks at the offset they hold, check, boot the new
image or refuse it, confirm). The real updater under MicroPython is
tests/firmware/test_ota.py."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from edge.app.links import DeviceLinks
from edge.app.ota import CHUNK, Ota
from edge.core.errors import Rejected
from edge.core.messages import Hello, Result
from edge.core.metrics import Metrics
from edge.core.ports import ReplyBy
from edge.core.registry import Registry
from edge.core.rollout import Image
from tests.conftest import run

IMAGE = Image("2.0", "unix", {"lib/a.mpy": bytes(range(256)) * 5, "main.py": b"import a\n",
                              "manifest.json": b"{}", "manifest.sig": b"sig"})


class Updater:
    """One device's updater: what it holds of each file, its firmware version."""

    def __init__(self, dev: str, links: DeviceLinks, ota: Ota, refuses: bool = False,
                 forgets_at: int | None = None) -> None:
        self.dev, self.links, self.ota = dev, links, ota
        self.fw, self.mode = "1.0", "app"
        self.refuses = refuses  # its bootloader refuses the image: back on 1.0
        self.forgets_at = forgets_at  # restarts a file once it holds this many bytes
        self.files: dict[str, bytearray] = {}
        self.chunks = 0
        links.heard(dev, ReplyBy(self.reply))

    def _hello(self, ota: str) -> None:
        hello = Hello(self.dev, "dock", self.fw, 4, 2, "e1", ota, 0)
        asyncio.get_running_loop().call_soon(self.ota.on_hello, hello)

    async def reply(self, msg: dict[str, Any]) -> None:
        if msg.get("op") != "ota":
            return self.links.answered(Result(self.dev, msg["id"], True, ""))
        path, err = msg.get("path", ""), ""
        if path == "" and self.mode == "app":
            self.mode = "receiving"
            self._hello("receiving")  # rebooted into update mode
        elif path == "*":
            self.mode = "app"
            self.fw = "1.0" if self.refuses else IMAGE.version
            self._hello("rejected" if self.refuses else "trial")
        elif path not in ("", "+"):
            have = self.files.setdefault(path, bytearray())
            if self.forgets_at is not None and len(have) >= self.forgets_at:
                have.clear()
                self.forgets_at = None
            if msg["off"] != len(have):
                err = f"offset {len(have)}"
            else:
                have += base64.b64decode(msg["data"])
                self.chunks += 1
        self.links.answered(Result(self.dev, msg["id"], not err, err))


def _rig(**devices: dict[str, Any]) -> tuple[Ota, dict[str, Updater], list[asyncio.Task[Any]]]:
    links = DeviceLinks(Metrics())
    tasks: list[asyncio.Task[Any]] = []
    ota = Ota(links, Registry({d: "s1" for d in devices}, 90.0, ()),
              lambda coro, name: tasks.append(asyncio.create_task(coro, name=name)))
    return ota, {d: Updater(d, links, ota, **kw) for d, kw in devices.items()}, tasks


def test_a_rollout_sends_every_file_confirms_and_stops_at_a_refused_wave() -> None:
    async def main() -> None:
        ota, devs, tasks = _rig(d1={}, d2={"refuses": True}, d3={})
        r = ota.start(IMAGE, ["d1", "d2", "d3"], wave=1, deadline_s=5.0)
        with pytest.raises(Rejected, match="already updating"):
            ota.start(IMAGE, ["d3"], wave=1)
        await asyncio.gather(*tasks)
        assert {d: p.state for d, p in r.devices.items()} == {
            "d1": "confirmed", "d2": "failed", "d3": "skipped"}
        assert r.state == "stopped" and r.wave == 2
        assert r.devices["d2"].error == "came back on 1.0: rejected"
        d1 = devs["d1"]
        assert d1.fw == "2.0" and {p: bytes(b) for p, b in d1.files.items()} == IMAGE.files
        assert r.devices["d1"].sent == IMAGE.size
        assert devs["d3"].files == {}  # never touched
        assert r.image.files == {}  # let go once ended
    run(main())


def test_a_device_that_lost_part_of_a_file_is_resumed_where_it_stands() -> None:
    async def main() -> None:
        ota, devs, tasks = _rig(d1={"forgets_at": 2 * CHUNK})
        r = ota.start(IMAGE, ["d1"], wave=1, deadline_s=5.0)
        await asyncio.gather(*tasks)
        assert r.state == "done" and r.devices["d1"].state == "confirmed"
        assert {p: bytes(b) for p, b in devs["d1"].files.items()} == IMAGE.files
        assert r.devices["d1"].sent == IMAGE.size  # progress went back, then on
        assert devs["d1"].chunks == 6 + 2  # 6 chunks in the image; the two it lost, again
    run(main())


def test_a_rollout_names_an_unknown_device_before_it_starts() -> None:
    async def main() -> None:
        ota, _, tasks = _rig(d1={})
        with pytest.raises(Rejected, match="d9"):
            ota.start(IMAGE, ["d1", "d9"], wave=1)
        assert tasks == [] and ota.rollouts == {}
    run(main())
