"""Technician credentials for the edge's API: bearer tokens made and revoked
with `huimin token`, kept as SHA-256 hashes in a TOML file readable by the
edge's user only (a stolen copy of the file gives no token). Issue a token
per technician or laptop, so that one lost laptop is one revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from pathlib import Path

import tomli_w

from edge.adapters.device_keys import check_private, write_private


def _hash(token: str) -> str:
    # surrogateescape: a header that was not UTF-8 hashes to something, never raises (401).
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class ApiTokens:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.hashes: dict[str, str] = {}
        self._mtime = -1.0
        self.reload()

    def reload(self) -> None:
        """Read the file again if it changed: a revocation on the Pi takes
        effect at the next request, without a restart."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self.hashes, self._mtime = {}, -1.0
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        check_private(self.path)
        raw = tomllib.loads(self.path.read_text(encoding="utf-8"))
        self.hashes = {str(k): str(v) for k, v in raw.get("tokens", {}).items()}

    def _save(self) -> None:
        write_private(self.path, "# Technician API tokens (huimin token): SHA-256 of each; "
                      "mode 0600.\n" + tomli_w.dumps({"tokens": dict(sorted(self.hashes.items()))}))

    def add(self, name: str) -> str:
        """A new token for `name` (replacing any it had); only its hash is kept."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError("a token name is letters, digits, - and _")
        token = "hmt_" + secrets.token_urlsafe(32)
        self.hashes[name] = _hash(token)
        self._save()
        return token

    def revoke(self, name: str) -> bool:
        found = self.hashes.pop(name, None) is not None
        if found:
            self._save()
        return found

    def hash_of(self, name: str) -> str:
        return self.hashes.get(name, "")

    def still_valid(self, name: str, token_hash: str) -> bool:
        """Whether `name`'s token is still the one hashed so (not revoked nor replaced)."""
        self.reload()
        want = self.hashes.get(name)
        return want is not None and hmac.compare_digest(want, token_hash)

    def check(self, token: str) -> str | None:
        """The token's name, or None. Compared in constant time with every hash."""
        self.reload()
        h = _hash(token)
        who = None
        for name, want in self.hashes.items():
            if hmac.compare_digest(h, want):
                who = name
        return who
