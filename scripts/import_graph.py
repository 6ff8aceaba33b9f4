"""Print the project's import graph between its parts, and any circles.

    .venv/bin/python scripts/import_graph.py            # parts (edge.core, cloud_bridge, ...)
    .venv/bin/python scripts/import_graph.py --modules  # every module-to-module import

A part is a package's first two levels (``edge.core``, ``cloud_bridge``,
``hardware.sim``); imports inside a part are not shown. The graph is built by
grimp, the library import-linter checks its contracts with (pyproject.toml,
[tool.importlinter]), so this shows what those contracts see."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "cloud_bridge", "tools", "hardware")


def part(module: str, depth: int) -> str:
    return ".".join(module.split(".")[:depth])


def edges(graph: grimp.ImportGraph, depth: int | None) -> set[tuple[str, str]]:
    out = set()
    for mod in graph.modules:
        if mod.split(".")[0] not in PACKAGES:
            continue
        for imported in graph.find_modules_directly_imported_by(mod):
            if imported.split(".")[0] not in PACKAGES:
                continue
            a, b = (mod, imported) if depth is None else (part(mod, depth), part(imported, depth))
            if a != b:
                out.add((a, b))
    return out


def cycles(pairs: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    nodes = sorted({n for p in pairs for n in p})
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in pairs:
        succ[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for n in nodes:
        if n not in index:
            visit(n)
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", action="store_true", help="module to module, not part to part")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    pairs = edges(graph, None if args.modules else 2)
    width = max((len(a) for a, _ in pairs), default=0)
    for a, b in sorted(pairs):
        print(f"{a:<{width}} -> {b}")
    circles = cycles(pairs)
    print(f"\n{len(pairs)} imports between {'modules' if args.modules else 'parts'}; "
          f"{len(circles)} circle(s)")
    for c in circles:
        print("  circle: " + " <-> ".join(c))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
