# The one message model (wire/message.py) and its authentication both ways
# (wire/auth.py, lib/command_guard.py).
from wire import message, names


def case_message_roundtrip_and_errors():
    ev = {"t": "ev", "dev": "dock-1", "epoch": "ab12", "seq": 3, "ev": "rented", "slot": 2,
          "bike": "0A0000BEEF"}
    assert message.decode(message.encode(ev)) == ev
    bad = [
        (b"{nope", names.E_JSON),
        (b"\xff\xfe", names.E_JSON),
        (b'"just a string"', names.E_FIELD),
        (b'{"t":"teleport"}', names.E_TYPE),
        (b'{"dev":"x"}', names.E_TYPE),
        (b'{"t":"ev","dev":"d","epoch":"e","seq":"1","ev":"rented","slot":1}', names.E_FIELD),
        (b'{"t":"ev","dev":"d","epoch":"e","seq":1,"ev":"stolen","slot":1}', names.E_FIELD),
        (b'{"t":"ev","dev":"d","epoch":"e","seq":true,"ev":"rented","slot":1}', names.E_FIELD),
        (b'{"t":"state","dev":"d","boot":1,"n":1,"slots":"LLQ"}', names.E_FIELD),
        (b'{"t":"cmd","id":1,"op":"selfdestruct"}', names.E_FIELD),
        (b'{"t":"ack","epoch":"e"}', names.E_FIELD),
        (b'{"t":"ack","epoch":"e","seq":1,"pad":"' + b"x" * 1100 + b'"}', names.E_SIZE),
    ]
    for data, reason in bad:
        try:
            message.decode(data)
        except message.DecodeError as e:
            assert e.reason == reason, (data, e.reason)
        else:
            assert False, data


def case_auth_hmac_matches_rfc4231_test_case_1():
    from wire import auth
    k = auth.Key(b"\x0b" * 20)
    assert k.tag(b"", b"Hi There") == b"b0344c61d8db38535ca8afceaf0bf12b"
    # a key longer than a block is hashed first (RFC 4231 test case 6)
    k = auth.Key(b"\xaa" * 131)
    assert k.tag(b"Test Using Larger Than Block-Size Key - ",
                 b"Hash Key First") == b"60e431591ee0b67f0d8a26aacbf5b77f"


def case_auth_seal_verify_and_every_tamper_refused():
    from wire import auth
    k = auth.Key(bytes(range(32)))
    other = auth.Key(bytes(range(1, 33)))
    data = message.encode({"t": "cmd", "id": 7, "op": "unlock", "slot": 3, "ctr": 1000})
    sealed = auth.seal(k, auth.DOWN, data)
    assert auth.verify(k, auth.DOWN, sealed)
    assert message.decode(sealed)["ctr"] == 1000
    assert not auth.verify(other, auth.DOWN, sealed)  # another device's key
    assert not auth.verify(k, auth.UP, sealed)  # the other direction's label
    assert not auth.verify(k, auth.DOWN, data)  # unsigned
    for i in range(len(sealed)):  # any one byte changed
        b = bytearray(sealed)
        b[i] ^= 0x01
        assert not auth.verify(k, auth.DOWN, bytes(b)), i
    for n in (1, 2, 10, 34, len(sealed) - 1):  # truncated
        assert not auth.verify(k, auth.DOWN, sealed[:n]), n
    assert not auth.verify(k, auth.DOWN, b"")
    assert not auth.verify(k, auth.DOWN, sealed + b" ")
    # the slot changed and a MAC for the new text guessed: still refused
    forged = sealed.replace(b'"slot":3', b'"slot":4')
    assert forged != sealed and not auth.verify(k, auth.DOWN, forged)


def case_command_guard_refuses_forged_replayed_and_reordered():
    from command_guard import CommandGuard
    from wire import auth
    key_hex = "11" * 32
    k = auth.Key(bytes.fromhex(key_hex) if hasattr(bytes, "fromhex") else b"\x11" * 32)

    def cmd(ctr, slot=1):
        return auth.seal(k, auth.DOWN, message.encode(
            {"t": "cmd", "id": ctr, "op": "unlock", "slot": slot, "ctr": ctr}))

    g = CommandGuard(key_hex, "d1", "guard_ctr")
    one, two = cmd(5), cmd(6)
    assert g.refuse(one, message.decode(one)) is None
    why = g.refuse(one, message.decode(one))  # replayed
    assert why is not None
    assert g.answer(message.decode(one), why) == {
        "t": "res", "dev": "d1", "id": 5, "ok": False, "err": "stale_ctr", "ctr": 5}
    bad = one.replace(b'"slot":1', b'"slot":2')
    why = g.refuse(bad, message.decode(bad))  # forged: refused without an answer
    assert why is not None and g.answer(message.decode(bad), why) is None
    three = cmd(8)
    assert g.refuse(three, message.decode(three)) is None
    assert g.refuse(two, message.decode(two)) is not None  # older than the last: reordered
    unsigned = message.encode({"t": "cmd", "id": 9, "op": "unlock", "ctr": 9})
    assert g.refuse(unsigned, message.decode(unsigned)) is not None
    assert g.refused == 4
    # after a "reboot" every counter up to the reserved ceiling counts as used
    g2 = CommandGuard(key_hex, "d1", "guard_ctr")
    assert g2.last >= 8 + 64 - 5
    late = cmd(9)
    assert g2.refuse(late, message.decode(late)) is not None
    fresh = cmd(g2.last + 1)
    assert g2.refuse(fresh, message.decode(fresh)) is None
    # an ack needs a MAC but no counter (replaying one only repeats it)
    ack = auth.seal(k, auth.DOWN, message.encode({"t": "ack", "epoch": "e", "seq": 1}))
    assert g2.refuse(ack, message.decode(ack)) is None
    assert g2.refuse(ack, message.decode(ack)) is None
    # a counter no edge can have issued is refused: no floor can near the wire's 2**53
    huge = cmd(1 << 50)
    why = g2.refuse(huge, message.decode(huge))
    assert why is not None and g2.answer(message.decode(huge), why)["ctr"] == g2.last
    assert g2.last < (1 << 50)


def case_command_guard_fails_closed_on_a_damaged_counter():
    from command_guard import CommandGuard
    from wire import auth
    key_hex = "22" * 32
    k = auth.Key(bytes.fromhex(key_hex) if hasattr(bytes, "fromhex") else b"\x22" * 32)
    for damage in ("7x", "", "-5", "9" * 40):
        with open("guard_damaged", "w") as f:
            f.write(damage)
        g = CommandGuard(key_hex, "d1", "guard_damaged")
        assert g.last == 1 << 50, damage  # beyond any edge's: every command is stale
        for ctr in (1, 10 ** 12, (1 << 50) - 1, 1 << 50, g.last + 1):
            c = auth.seal(k, auth.DOWN, message.encode(
                {"t": "cmd", "id": 3, "op": "unlock", "slot": 0, "ctr": ctr}))
            why = g.refuse(c, message.decode(c))
            assert why is not None, (damage, ctr)  # not read as 0: nothing replays
            # the edge hears a floor it cannot have issued, refuses it and counts it
            assert g.answer(message.decode(c), why) == {
                "t": "res", "dev": "d1", "id": 3, "ok": False, "err": "stale_ctr",
                "ctr": 1 << 50}
    # a new device (no file yet) starts at 0 and obeys
    import os
    os.remove("guard_damaged")
    g = CommandGuard(key_hex, "d1", "guard_damaged")
    c = auth.seal(k, auth.DOWN, message.encode(
        {"t": "cmd", "id": 4, "op": "unlock", "slot": 0, "ctr": 1}))
    assert g.last == 0 and g.refuse(c, message.decode(c)) is None
