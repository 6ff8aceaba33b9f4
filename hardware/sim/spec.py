"""What a simulated town is made of: its options, with defaults, in one place
(Town(workdir, **options) takes them), and the heaps its devices run in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Each device's heap: the smallest (in 4K steps) at which its soak keeps 10%
# free at its lowest (tests/firmware/test_heap_soak.py, test_kiosk_heap.py);
# the figures are in firmware/apps/dock/README.md and docs/kiosk.md.
HEAP = "84K"  # a dock on a serial line
MQTT_HEAP = "92K"  # a dock on MQTT: the client, TLS and its buffers
KIOSK_HEAP = "84K"
KIOSK_MQTT_HEAP = "88K"
# The ESP32-S3 board's devices: its hal (Wi-Fi join, the multiplexed tag reader,
# the expanders) is its own, and so is its heap, measured the same way
# (tests/firmware/test_board.py): the kiosk needs 4K more than on the unix port.
BOARD_HEAP = {"esp32s3": {"dock-serial": "80K", "dock-mqtt": "92K", "kiosk-mqtt": "88K"}}
# Under emulation the port's `machine` and `network` are Python modules in the
# device's heap, where a chip has them in flash: a board device gets this much on
# top of its heap (test_board.py measures what they take), so its app runs in
# the heap it would have on the chip.
ROM_HEAP_K = 16

# Stations around Anji's town centre (fictional names, plausible coordinates).
PLACES = [("递铺街道", "Dipu"), ("昌硕广场", "Changshuo Square"),
          ("天荒坪路", "Tianhuangping Rd"), ("竹博园", "Bamboo Expo Park"),
          ("汽车站", "Bus Station"), ("人民医院", "People's Hospital"),
          ("灵峰寺", "Lingfeng Temple"), ("浒溪公园", "Huxi Park"), ("县政府", "County Hall"),
          ("体育中心", "Sports Centre"), ("凤凰山", "Fenghuang Hill"), ("万达广场", "Wanda Plaza")]
CENTRE = (30.638, 119.681)
SITE = "anji"


@dataclass(frozen=True)
class TownSpec:
    docks: int = 6
    site: str = SITE  # the site id: its stations, topics and account at the city
    slots: int = 12  # per dock
    mqtt_share: float = 0.5  # of the docks; the rest on serial lines
    http_port: int = 0  # the edge's; 0 = a free one
    metrics_port: int | None = None  # Prometheus on a port of its own; 0 = a free one
    heartbeat_s: int = 10
    seed: int | None = None  # a repeatable town
    heap: str | None = None  # every dock's heap (default: HEAP or MQTT_HEAP by link)
    use_mqtt: bool | None = None  # None: when Mosquitto is installed
    fill: float = 0.6  # share of slots holding a bike at the start
    backend: bool = True  # the development city backend, with a webhook uplink
    edge_process: bool = False  # the edge as its own process, as on a Pi (kill tests)
    city_broker: bool = False  # a city broker and an MQTT uplink to it
    kiosks: int = 0
    kiosk_heap: str | None = None  # default: KIOSK_HEAP or KIOSK_MQTT_HEAP by link
    baud: int = 0  # pace the kiosks' serial lines (benchmarks); 0 = instant
    ota_key: str = ""  # hex Ed25519 public key provisioned on devices (docs/ota.md)
    ota_confirm_s: int = 60
    kiosk_link: str = "serial"  # a cable to the Pi, or "mqtt" (Wi-Fi/4G)
    kiosk_lookups_per_minute: float | None = None  # None: the edge's default
    kiosk_poll_ms: int | None = None  # the kiosk's card poll; None: its own default
    dock_config: dict[str, Any] = field(default_factory=dict)  # extra config.json settings
    # Kiosks keep the region key in the board's key store (hal.lookup_token; an
    # eFuse block, emulated on this port by a file), not in config.json.
    kiosk_key_store: bool = False
    # What the devices' firmware runs on: "unix" (the simulator's port) or
    # "esp32s3" (the board's own hal on its emulated modules, hardware/esp32s3_rom/).
    board: str = "unix"
    # A new board on the technician's bench (hardware/sim/bench.py), to practise on.
    bench: bool = False

    def _on_board(self, role: str, unix_heap: str) -> str:
        if self.board == "unix":
            return unix_heap
        heap = BOARD_HEAP[self.board][role]
        return f"{int(heap.rstrip('K')) + ROM_HEAP_K}K"

    def dock_heap(self, link: str) -> str:
        return self.heap or self._on_board(f"dock-{link}", MQTT_HEAP if link == "mqtt" else HEAP)

    def kiosk_heap_for(self) -> str:
        return self.kiosk_heap or self._on_board(
            f"kiosk-{self.kiosk_link}",
            KIOSK_MQTT_HEAP if self.kiosk_link == "mqtt" else KIOSK_HEAP)
