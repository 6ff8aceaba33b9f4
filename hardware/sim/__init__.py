"""The simulator: a whole town on one machine (hardware/sim/town.py: brokers,
docks and kiosks under MicroPython with emulated hardware, the edge, a
development city backend in hardware/sim/backend.py), run by `huimin sim`
(hardware/sim/cli.py). It runs the same secure setup a county runs."""
