"""systemd's notify protocol (sd_notify(3)), spoken directly: datagrams of
"KEY=value" lines to the socket named by $NOTIFY_SOCKET. No library: the
protocol is a dozen lines, and the edge then runs the same with or without
systemd (outside it, nothing is sent)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("edge.systemd")


class Systemd:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        addr = environ.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace, as systemd may hand out.
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        self._sock: socket.socket | None = None
        self.watchdog_s: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1_000_000

    @property
    def active(self) -> bool:
        return bool(self._addr)

    def notify(self, message: str) -> None:
        if not self._addr:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self._addr)
        except OSError as exc:  # systemd gone (shutting down): nothing to tell
            log.debug("notify %r: %s", message.split("\n")[0], exc)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
