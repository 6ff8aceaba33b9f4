"""Typed messages (edge/core/messages.py): parsed once from the codec's
checked dicts, and written back into them, with plain values."""

from __future__ import annotations

import pytest
from wire import message

from edge.core import messages as m


def test_every_device_message_parses_to_its_class() -> None:
    hello = m.decode(b'{"t":"hello","dev":"d1","kind":"dock","fw":"1.0","slots":4,"boot":3,'
                     b'"epoch":"e1","ctr":70}')
    assert hello == m.Hello("d1", "dock", "1.0", 4, 3, "e1", "", 70)
    ev = m.decode(b'{"t":"ev","dev":"d1","epoch":"e1","seq":5,"ev":"rented","slot":2,'
                  b'"bike":"0B01"}')
    assert ev == m.Event("d1", "e1", 5, "rented", 2, "0B01", None)
    st = m.decode(b'{"t":"state","dev":"d1","boot":3,"n":9,"slots":"LLEU","mem":20480}')
    assert st == m.State("d1", 3, 9, "LLEU", 20480)
    res = m.decode(b'{"t":"res","dev":"d1","id":7,"ok":false,"err":"stale_ctr","ctr":128}')
    assert res == m.Result("d1", 7, False, "stale_ctr", None, 128)
    assert m.decode(b'{"t":"status","dev":"d1","online":false,"boot":2}') == \
        m.Status("d1", False, 2)
    tok = "0" * 32
    assert m.decode(('{"t":"lookup","dev":"k1","id":1,"token":"%s"}' % tok).encode()) == \
        m.Lookup("k1", 1, tok)


def test_edge_only_types_and_bad_shapes_are_refused_at_the_boundary() -> None:
    with pytest.raises(message.DecodeError) as e:
        m.decode(b'{"t":"ack","epoch":"e","seq":1}')
    assert e.value.reason == "unexpected_type"
    with pytest.raises(message.DecodeError) as e:
        m.decode(b'{"t":"ev","dev":"d1","epoch":"e1","seq":"5","ev":"rented","slot":2}')
    assert e.value.reason == "bad_field"


def test_messages_to_devices_go_back_through_the_codec() -> None:
    cmd = m.Command(12, "set_slot", slot=3, enabled=False)
    assert m.to_wire(cmd) == {"t": "cmd", "id": 12, "op": "set_slot", "slot": 3,
                              "enabled": False}
    assert message.check(m.to_wire(m.Ack("e1", 5))) == {"t": "ack", "epoch": "e1", "seq": 5}
    near = m.to_wire(m.Near((("一号站", 3, 5),)))
    assert message.check(near)["stations"] == [["一号站", 3, 5]]
    ans = m.to_wire(m.FundsAnswer(4, False, "busy"))
    assert message.check(ans) == {"t": "funds", "id": 4, "ok": False, "err": "busy"}
