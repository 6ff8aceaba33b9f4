# Ed25519 signature verification (RFC 8032, section 5.1.7) and the SHA-512 it
# needs, in the subset of Python that MicroPython runs (its hashlib has no
# sha512). Only verification: signing happens on the technician's machine with
# the `cryptography` library, and the private key never leaves it.
#
# It runs in the bootloader's verify pass (bootloader/verify_image.py), on a fresh heap
# before any application code loads, so its big-int tables cost the app
# nothing. Tested under both interpreters against RFC 8032's vectors and
# against signatures made by `cryptography` (tests/firmware/test_ota.py).

_M64 = 0xFFFFFFFFFFFFFFFF

_K = (
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817)


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M64


def sha512(data):
    """SHA-512 digest of data (bytes), 64 bytes."""
    h = [0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
         0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179]
    n = len(data)
    msg = bytearray(data)
    msg.append(0x80)
    while len(msg) % 128 != 112:
        msg.append(0)
    msg += (n * 8).to_bytes(16, "big")
    w = [0] * 80
    for off in range(0, len(msg), 128):
        for i in range(16):
            w[i] = int.from_bytes(msg[off + 8 * i:off + 8 * i + 8], "big")
        for i in range(16, 80):
            x = w[i - 15]
            s0 = _rotr(x, 1) ^ _rotr(x, 8) ^ (x >> 7)
            x = w[i - 2]
            s1 = _rotr(x, 19) ^ _rotr(x, 61) ^ (x >> 6)
            w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & _M64
        a, b, c, d, e, f, g, hh = h
        for i in range(80):
            t1 = (hh + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)) + ((e & f) ^ (~e & g))
                  + _K[i] + w[i]) & _M64
            t2 = ((_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39))
                  + ((a & b) ^ (a & c) ^ (b & c))) & _M64
            hh = g
            g = f
            f = e
            e = (d + t1) & _M64
            d = c
            c = b
            b = a
            a = (t1 + t2) & _M64
        for i, v in enumerate((a, b, c, d, e, f, g, hh)):
            h[i] = (h[i] + v) & _M64
    out = bytearray()
    for v in h:
        out += v.to_bytes(8, "big")
    return bytes(out)


# -- the curve: twisted Edwards, extended coordinates (X, Y, Z, T) -------------
_P = 2 ** 255 - 19
_L = 2 ** 252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(k, p):
    q = (0, 1, 1, 0)  # the neutral element
    while k:
        if k & 1:
            q = _add(q, p)
        p = _add(p, p)
        k >>= 1
    return q


def _decode_point(b):
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vxx = v * x * x % _P
    if vxx == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif vxx != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _small_order(p):
    # [8]P is the neutral element (0, 1): P is one of the eight torsion points.
    # A key or R like that lets one signature verify for every message.
    q = _mul(8, p)
    return q[0] % _P == 0 and (q[1] - q[2]) % _P == 0


_GY = 4 * pow(5, _P - 2, _P) % _P
_B = None


def verify(public_key, message, signature):
    """True if signature (64 bytes) is public_key's (32 bytes) over message."""
    global _B
    if len(public_key) != 32 or len(signature) != 64:
        return False
    if _B is None:
        _B = _decode_point(_GY.to_bytes(32, "little"))
    a = _decode_point(public_key)
    r = _decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    # Refused: non-canonical encodings (y >= p, "-0", s >= L: _decode_point and
    # here) and small-order A or R (RFC 8032 leaves these to the verifier).
    if a is None or r is None or s >= _L or _small_order(a) or _small_order(r):
        return False
    k = int.from_bytes(sha512(signature[:32] + public_key + message), "little") % _L
    sb = _mul(s, _B)
    rka = _add(r, _mul(k, a))
    # Equal points in projective form: X1/Z1 == X2/Z2 and Y1/Z1 == Y2/Z2.
    return ((sb[0] * rka[2] - rka[0] * sb[2]) % _P == 0
            and (sb[1] * rka[2] - rka[1] * sb[2]) % _P == 0)
