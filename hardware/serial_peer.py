"""A peripheral emulator on the far end of a serial line: reads what the device
writes (every byte kept in `raw`, for privacy scans) and hands it to
`received()`; `send()` answers."""

from __future__ import annotations

import asyncio

import serial


class SerialPeer:
    def __init__(self, port: str, baud: int = 115200) -> None:
        self.port = port
        self.baud = baud
        self._ser: serial.Serial | None = None
        self._task: asyncio.Task[None] | None = None
        self.raw = bytearray()  # every byte received (privacy scans read it)

    async def start(self) -> None:
        self._ser = serial.Serial(self.port, self.baud, timeout=0)
        self._task = asyncio.get_running_loop().create_task(self._pump(), name=self.port)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._ser is not None:
            self._ser.close()

    async def _pump(self) -> None:
        assert self._ser is not None
        while True:
            data = self._ser.read(1024)
            if not data:
                await asyncio.sleep(0.002)
                continue
            self.raw += data
            self.received(data)

    def received(self, data: bytes) -> None:
        raise NotImplementedError

    def send(self, data: bytes) -> None:
        if self._ser is not None:
            self._ser.write(data)


