"""The package's layering, read from the code's own imports and held against docs/architecture.md.

The doc's layer table assigns every module (by its longest listed prefix) to a layer. An import may
go to the same layer or a lower one, never up, and no set of modules may import each other in a
circle. Imports inside functions and under ``TYPE_CHECKING`` count: they are dependencies too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.paths import REPO

PACKAGE = REPO / "speechllm"
DOC = REPO / "docs" / "architecture.md"
ROW = re.compile(r"^\|\s*(\d+)\s*\|([^|]*)\|")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported dotted name lives in (``a.b.func`` → ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_package(module: str, modules: dict[str, Path]) -> bool:
    return modules[module].name == "__init__.py"


def _resolve_relative(module: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    base = module.split(".") if _is_package(module, modules) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``module`` imports, anywhere in its code."""
    tree = ast.parse(modules[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_relative(module, node, modules) if node.level else (node.module or "")
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
            targets = [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            owner = _owner(target, modules) if target.startswith("speechllm") else None
            if owner is not None and owner != module:
                found.add(owner)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {module: imports_of(module, modules) for module in modules}


def documented_layers() -> dict[str, int]:
    """``{module prefix: layer}`` from the table in docs/architecture.md."""
    layers: dict[str, int] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            for prefix in re.findall(r"`(speechllm[\w.]*)`", match.group(2)):
                assert prefix not in layers, f"{prefix} is listed twice in {DOC.name}"
                layers[prefix] = int(match.group(1))
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of ``module``'s longest listed prefix; the bare ``speechllm`` row is the root only."""
    name = module
    while "." in name:
        if name in layers:
            return layers[name]
        name = name.rpartition(".")[0]
    return layers.get(module)


def strongly_connected(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm; yields every component of more than one module (an import circle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                yield from visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def test_the_import_reader_sees_function_level_and_from_package_imports(tmp_path: Path) -> None:
    graph = import_graph()
    # speechllm/cli/train.py imports the training module inside its handler, not at the top
    assert "speechllm.training" in graph["speechllm.cli.train"]
    # `from speechllm.cli import baseline, ...` is an import of the submodule
    assert "speechllm.cli.baseline" in graph["speechllm.cli"]


def test_tarjan_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert list(strongly_connected(graph)) == [["a", "b", "c"]]


def test_the_package_has_no_import_circles() -> None:
    circles = list(strongly_connected(import_graph()))
    assert circles == [], f"import circles: {circles}"


def test_every_module_has_a_documented_layer_and_every_row_names_real_modules() -> None:
    layers = documented_layers()
    modules = package_modules()
    unplaced = [module for module in modules if layer_of(module, layers) is None]
    assert unplaced == [], f"modules missing from the layer table in {DOC.name}: {unplaced}"
    stale = [
        prefix for prefix in layers if not any(m == prefix or m.startswith(prefix + ".") for m in modules)
    ]
    assert stale == [], f"{DOC.name} lists modules that do not exist: {stale}"


def test_imports_never_run_up_a_layer() -> None:
    layers = documented_layers()
    upward = [
        f"{module} (layer {layer_of(module, layers)}) imports {target} (layer {layer_of(target, layers)})"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if (layer_of(target, layers) or 0) > (layer_of(module, layers) or 0)
    ]
    assert upward == [], "imports that run up a layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("light", ["speechllm.registry", "speechllm.config"])
def test_listing_components_imports_no_component_module(light: str) -> None:
    """`ENCODERS.names()` and config validation know the built-ins without importing them."""
    import subprocess
    import sys

    code = (
        f"import sys, {light}\n"
        "from speechllm.registry import ADAPTERS, ENCODERS, LLMS\n"
        "names = ENCODERS.names() + ADAPTERS.names() + LLMS.names()\n"
        # The adapters package and its build context import no torch: config validation reads them.
        "light = ('speechllm.adapters', 'speechllm.adapters.build_context')\n"
        "heavy = [m for m in sys.modules if m.startswith(('speechllm.encoders', 'speechllm.adapters', "
        "'speechllm.llms', 'transformers', 'torch')) and m not in light]\n"
        "print(sorted(names)); print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, heavy = out.strip().splitlines()
    for name in ("whisper", "seamless", "base", "conv", "cif", "ctc", "wlq_former", "hf_causal_lm"):
        assert repr(name) in names
    assert heavy == "[]"


def test_every_builtin_name_is_registered_by_its_module() -> None:
    import importlib

    from speechllm.registry import ADAPTERS, ENCODERS, LLMS, UnknownComponentError

    for registry in (ENCODERS, ADAPTERS, LLMS):
        for name, module in registry.builtins.items():
            importlib.import_module(module)
            try:
                component = registry.get(name)  # imports nothing more: the module is loaded
            except UnknownComponentError:
                pytest.fail(f"{module} does not register {registry.kind} {name!r}")
            assert component.__module__ == module
