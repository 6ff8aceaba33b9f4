"""Rollout rules (edge/core/rollout.py) with plain values: what an uploaded
image must be, the order its files go in, waves, and how many ended rollouts
are remembered."""

from __future__ import annotations

import base64
import json

import pytest

from edge.core.errors import Rejected
from edge.core.rollout import (
    KEEP_ROLLOUTS,
    DeviceProgress,
    Image,
    Rollout,
    busy_devices,
    forget_ended,
    plan_waves,
)


def _upload(files: dict[str, bytes], listed: list[str] | None = None,
            signed: bool = True) -> dict[str, object]:
    man = {"version": "1.2.0", "board": "unix",
           "files": {p: "sha" for p in (listed if listed is not None else files)}}
    out = {**files, "manifest.json": json.dumps(man).encode()}
    if signed:
        out["manifest.sig"] = b"sig"
    return {"files": {p: base64.b64encode(b).decode() for p, b in out.items()}}


def test_a_signed_image_is_taken_and_sent_manifest_last() -> None:
    img = Image.from_upload(_upload({"lib/b.mpy": b"bb", "apps/a.mpy": b"a"}))
    assert (img.version, img.board) == ("1.2.0", "unix")
    assert img.order() == ["apps/a.mpy", "lib/b.mpy", "manifest.json", "manifest.sig"]
    assert img.size == 3 + len(img.files["manifest.json"]) + 3


@pytest.mark.parametrize(("upload", "why"), [
    (_upload({"a.mpy": b"a"}, signed=False), "not signed"),
    (_upload({"a.mpy": b"a"}, listed=["a.mpy", "b.mpy"]), "not uploaded"),
    (_upload({"a.mpy": b"a", "evil.mpy": b"x"}, listed=["a.mpy"]), "does not list"),
    (_upload({"../etc/x": b"a"}), "bad path"),
    ({"files": "nope"}, "is {"),
])
def test_an_image_that_is_not_what_was_signed_is_refused(upload: dict[str, object],
                                                          why: str) -> None:
    with pytest.raises(Rejected) as e:
        Image.from_upload(upload)
    assert e.value.reason == "bad_image" and why in str(e.value)


def test_waves_busy_devices_and_what_is_remembered() -> None:
    assert plan_waves(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    assert plan_waves(["a", "b"], 0) == [["a"], ["b"]]
    with pytest.raises(Rejected):
        plan_waves([], 1)
    img = Image("1", "unix", {})
    running = Rollout(1, img, [["a"]], 60.0, devices={"a": DeviceProgress()})
    rollouts = {1: running}
    assert busy_devices(rollouts, ["a", "b"]) == ["a"]
    for i in range(2, KEEP_ROLLOUTS + 7):
        rollouts[i] = Rollout(i, img, [["x"]], 60.0, state="done")
    forget_ended(rollouts)
    assert len(rollouts) == KEEP_ROLLOUTS + 1 and 1 in rollouts  # the running one stays
