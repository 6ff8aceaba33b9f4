"""What the benchmarks' simulated docks do, shared: a dock is a list of slots,
"L" (a bike, locked) or "E" (empty); a rider rents or returns at one of them."""

from __future__ import annotations

import random


def rent_or_return(slots: list[str], rng: random.Random) -> tuple[int, str]:
    """A rider at this dock takes a bike or brings one back (half and half, as
    far as the dock allows); updates `slots`, returns (slot, "rented"|"returned")."""
    if "L" in slots and (rng.random() < 0.5 or "E" not in slots):
        k, ev, new = slots.index("L"), "rented", "E"
    else:
        k, ev, new = slots.index("E"), "returned", "L"
    slots[k] = new
    return k, ev


def event(i: int, seq: int, slot: int, ev: str) -> dict[str, object]:
    """Dock d<i>'s event message (wire/message.py `ev`), bike named by dock and slot."""
    return {"t": "ev", "dev": f"d{i:04d}", "epoch": "e", "seq": seq, "ev": ev, "slot": slot,
            "bike": f"0B{i:04X}{slot:04X}"}
