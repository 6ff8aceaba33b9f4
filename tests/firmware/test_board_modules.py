"""Every module an ESP32-S3 image imports exists on that port (issue 23, part 3): a file of
the image itself, or a module MicroPython's ESP32-S3 port provides. The port's list comes
from its stubs (micropython-esp32-esp32_generic_s3-stubs, in the developer's lock): each
.pyi is a module there, and a u-module that re-exports another (`uarray`: `from array import
*`) names that one too. What the firmware imports is read from the sources the image ships
(tools/firmware.py `_sources`), every import statement, those inside functions included."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
from pathlib import Path

import pytest

from tools.firmware import BOARD_PORTS, BOARDS, FIRMWARE, ONLY_FOR, _sources

STUBS = "micropython-esp32-esp32_generic_s3-stubs"
BOARDS_ON_ESP32 = [b for b, (port, _) in BOARD_PORTS.items() if port == "esp32s3"]


def port_modules() -> set[str]:
    try:
        dist = importlib.metadata.distribution(STUBS)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{STUBS} is not installed (./scripts/bootstrap.sh --test installs it)")
    out: set[str] = set()
    for f in dist.files or []:
        if f.suffix != ".pyi":
            continue
        parts = list(f.parts)
        parts[-1] = parts[-1].removesuffix(".pyi")
        if parts[-1] == "__init__":
            parts.pop()
        out.add(".".join(parts))
        text = Path(str(f.locate())).read_text(errors="replace")
        out.update(re.findall(r"^from (\w+) import \*", text, re.M))
    return out


def image_modules(board: str) -> dict[str, Path]:
    """module name -> its source, as the device's sys.path finds it (the slot's root and
    lib/, and bootloader/: main.py puts them there)."""
    port, board_file = BOARD_PORTS[board]
    kind = str(json.loads((BOARDS / board_file).read_text())["kind"])
    out: dict[str, Path] = {}
    for src, rel in _sources(port, FIRMWARE, kind):
        name = rel.removeprefix("lib/").removeprefix("bootloader/").removesuffix(".py")
        parts = name.split("/")
        if parts[-1] == "__init__":
            parts.pop()
        for i in range(1, len(parts) + 1):  # its packages are importable too
            out.setdefault(".".join(parts[:i]), src)
    out.setdefault("main", FIRMWARE / "main.py")
    return out


def imports_of(src: Path) -> dict[str, bool]:
    """Each module `src` imports -> whether only inside a function (run when called, not
    when the module loads)."""
    tree = ast.parse(src.read_text(), str(src))
    in_function: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(n) for n in ast.walk(fn) if n is not fn)
    names: dict[str, bool] = {}
    for node in ast.walk(tree):
        found: list[str] = []
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = [node.module]
        for name in found:
            names[name] = names.get(name, True) and id(node) in in_function
    return names


def other_kinds_modules(board: str) -> set[str]:
    """Modules that ship only with the other kind of device (tools/firmware.py ONLY_FOR):
    code shared by both kinds may import them only where the device's kind picks them."""
    kind = str(json.loads((BOARDS / BOARD_PORTS[board][1]).read_text())["kind"])
    out = set()
    for other, paths in ONLY_FOR.items():
        if other == kind:
            continue
        for p in paths:
            for src in FIRMWARE.glob(p + "**/*.py" if p.endswith("/") else p):
                rel = src.relative_to(FIRMWARE).as_posix()
                out.add(rel.removeprefix("lib/").removesuffix(".py").replace("/", "."))
    return out


@pytest.mark.parametrize("board", BOARDS_ON_ESP32)
def test_every_module_an_esp32s3_image_imports_exists_on_the_port(board: str) -> None:
    provided = port_modules()
    own = image_modules(board)
    others = other_kinds_modules(board)
    missing = []
    for src in sorted(set(own.values())):
        for imported, lazily in sorted(imports_of(src).items()):
            if imported in own or imported in provided or imported.split(".")[0] in provided:
                continue
            if imported in others and lazily:
                continue  # the other kind's code, reached only on that kind of device
            missing.append(f"{src.relative_to(FIRMWARE)} imports {imported}"
                           + (" when it loads" if imported in others else ""))
    assert not missing, "not on the ESP32-S3 port nor in the image:\n" + "\n".join(missing)


def test_the_check_knows_the_port() -> None:
    """The list the check reads is the port's: what a board has, and not what it lacks."""
    provided = port_modules()
    assert {"machine", "network", "esp32", "asyncio", "struct", "json", "hashlib",
            "binascii", "socket", "ssl", "select", "micropython"} <= provided
    assert not {"subprocess", "threading", "sqlite3", "termios", "ffi"} & provided


def test_the_board_images_call_only_what_the_port_provides(tmp_path: Path) -> None:
    """Every file of the ESP32-S3 images (lib/, drivers/, the dock's and the kiosk's apps,
    the bootloader, the board's hal), type-checked by mypy against the port's stubs: the
    board's modules (machine, network, ...) from micropython-esp32-esp32_generic_s3-stubs
    and MicroPython's own standard library (micropython-stdlib-stubs) in place of CPython's.
    mypy, not pyright (which the stubs' docs suggest): it is already the project's checker
    and needs no Node. The firmware carries no annotations (they would be parsed on the
    device); a line where MicroPython and CPython part ways (a CPython-only fallback, the
    asyncio internals a coroutine yields to, one of two uplinks picked by the config) says
    so in a `# type: ignore[code]`, which mpy-cross drops. What it found, and fixed:
    `machine.WDT(8000)` (the port takes WDT(id=0, timeout=...): 8000 was the id, a
    ValueError at boot), and `UART.readinto` returning None (the tag reader then returned
    its whole stale buffer)."""
    import shutil
    import subprocess
    import sys

    port_modules()  # skips, saying why, where the stubs are not installed
    board = importlib.metadata.distribution(STUBS)
    stdlib = importlib.metadata.distribution("micropython-stdlib-stubs")
    stubs = tmp_path / "stubs"
    for f in board.files or []:
        if f.suffix == ".pyi":
            (stubs / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(str(f.locate())), stubs / f)
    typeshed = next(Path(str(f.locate())).parent.parent for f in stdlib.files or []
                    if f.as_posix() == "stdlib/VERSIONS")
    config = tmp_path / "mypy.ini"
    # The bodies are checked though nothing is annotated; each folder is a root, as on
    # the device's sys.path (the slot's lib/ and root, the bootloader, the port's hal).
    config.write_text("[mypy]\npython_version = 3.11\ncheck_untyped_defs = True\n"
                      "follow_imports = silent\nignore_missing_imports = True\n"
                      "explicit_package_bases = True\nnamespace_packages = True\n")
    files = sorted({rel for b in BOARDS_ON_ESP32
                    for _, rel in _sources("esp32s3", FIRMWARE, image_kind(b))})
    files = [f if "/" in f else f"ports/esp32s3/{f}" for f in files]
    assert "ports/esp32s3/hal.py" in files and "apps/dock/app.py" in files
    assert "apps/kiosk/app.py" in files and "drivers/mcp23017.py" in files
    roots = [stubs, FIRMWARE / "lib", FIRMWARE, FIRMWARE / "ports" / "esp32s3",
             FIRMWARE / "bootloader"]
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental",
         "--custom-typeshed-dir", str(typeshed), *files],
        env={"MYPYPATH": ":".join(map(str, roots)), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, cwd=FIRMWARE)
    ours = [line for line in r.stdout.splitlines()
            if re.match(r"(lib|apps|drivers|bootloader|ports)/", line)]
    assert not ours, "\n".join(ours)
    assert "checked %d source files" % len(files) in r.stdout, r.stdout[-2000:] + r.stderr
    assert "error" not in r.stderr, r.stderr


def image_kind(board: str) -> str:
    return str(json.loads((BOARDS / BOARD_PORTS[board][1]).read_text())["kind"])


def test_the_board_layer_has_the_unix_ports_interface() -> None:
    """What the apps call on `hal` exists on the board as on the simulator's port."""
    def public(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        names = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        return {n for n in names if not n.startswith("_")}

    unix = public(FIRMWARE / "ports" / "unix" / "hal.py")
    board = public(FIRMWARE / "ports" / "esp32s3" / "hal.py")
    assert unix <= board, unix - board
