"""Imports point one way (ARCHITECTURE.md, issue 15 item 1): core <- xml <- pki <- store <-
the use cases <- transport, api <- the commands. This walks every import in gateway/ and
adapters/ (also those inside functions: a lazy upward import is still upward) and fails on an
upward import or a cycle between modules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYERS: dict[str, int] = {
    # the pure core: decisions, no I/O
    "core": 0,
    # settings and counters, read by every layer above
    "settings": 1,
    "config": 1,
    "metrics": 1,
    "waits": 1,
    "xml": 2,
    "pki": 3,
    "store": 4,
    # the use cases
    "context": 5,
    "service": 5,
    "logs": 5,
    # HTTP and TLS glue
    "transport": 6,
    "api": 6,
    "client": 6,
    "examples": 6,
    # commands and wiring
    "app": 7,
    "doctor": 7,
    "network": 7,
    "demo": 7,
    "demo_operational": 7,
    "cli": 7,
    "cli_rules": 7,
    "cli_users": 7,
    "cli_outbox": 7,
    "cli_init": 7,
    "client_sync": 6,
    "__main__": 7,
    "adapters": 8,
}
"""The layer of each part of the package (a subpackage or a top-level module); a part may
import its own layer's parts and those below, never above."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = (package or _module_name(path)).split(".")
                base = base[: len(base) - node.level + 1]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module


def _part(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "adapters":
        return "adapters"
    if parts[0] != "gateway" or len(parts) < 2:
        return None
    return parts[1]


def _modules() -> dict[str, Path]:
    files = [*ROOT.joinpath("gateway").rglob("*.py"), *ROOT.joinpath("adapters").rglob("*.py")]
    return {_module_name(f): f for f in files}


def _edges() -> dict[str, set[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            # `from gateway.x import y` may name a module y or a name in x
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {_part(m) for m in _modules()} - {None}
    assert parts <= set(LAYERS), f"give these a layer: {sorted(parts - set(LAYERS))}"


def test_no_part_imports_a_layer_above_its_own() -> None:
    upward = []
    for source, targets in _edges().items():
        src = _part(source)
        for target in targets:
            dst = _part(target)
            if src and dst and LAYERS[dst] > LAYERS[src]:
                upward.append(f"{source} -> {target}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_the_core_imports_nothing_of_the_gateway_outside_itself() -> None:
    outside = [
        f"{s} -> {t}"
        for s, ts in _edges().items()
        if _part(s) == "core"
        for t in ts
        if _part(t) != "core"
    ]
    assert not outside


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_modules_import_each_other_in_a_cycle() -> None:
    assert _cycles(_edges()) == []


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(
    edges: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert _cycles(edges) == expected
