"""Network helpers that the edge's MQTT transport and the bridge's MQTT
uplink share (both are adapters; neither imports the other)."""

from __future__ import annotations

import asyncio
import socket

# paho leaves Nagle on: a PUBACK and the next PUBLISH, two small writes, would
# wait ~40 ms for the broker's delayed ACK each time (bench/ota.py: a command's
# round trip was 88 ms with Nagle on everywhere, 10 ms with it off).
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def raise_if_cancelling() -> None:
    """Called where an MqttError is caught in a reconnect loop: when the task
    is being cancelled, aiomqtt's disconnect may time out and raise MqttError in
    place of the CancelledError, and the loop would swallow the shutdown."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
