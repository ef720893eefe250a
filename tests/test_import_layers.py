"""Imports point one way (docs/DEVELOPING.md, "Layers"), read from the source with `ast`.

(a) nothing in keydiff3d_addon/ (rigcore included) imports the backend (`keydiff3d`);
(b) keydiff3d_addon/rigcore imports only the standard library, numpy and its own modules (it runs
    inside Blender and is the lowest layer both sides share);
(c) the backend imports add-on modules other than rigcore only in the bpy-side entries listed in
    ADDON_ENTRIES;
(d) a backend package imports only its own or lower layers (LAYERS), and the packages' import graph
    has no cycle.
Every import counts, also those inside functions and `importlib.import_module("...")` with a literal
name (or an f-string's literal start). EXCEPTIONS may list a violation allowed for a time (none
now); the test fails once a listed one is fixed, so it is removed here.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BACKEND = REPO / "backend"
ADDON = REPO / "keydiff3d_addon"

# Lowest first. A package (backend/<name>/) or top-level module (backend/<name>.py) may import its own
# layer and the ones before it. "commands" are the modules `keydiff3d.cli.COMMANDS` names: entry points,
# on top whatever folder they live in (each command lives in its stage).
LAYERS: list[tuple[str, set[str]]] = [
    (
        "foundations",
        {"keydiff3d", "errors", "progress", "paths", "geometry", "device", "image_io", "networks", "blender"},
    ),
    ("weight files", {"weights", "weights_download"}),
    ("data and generators", {"mesh_io", "synthetic", "segmentation", "multiview"}),
    ("model", {"model"}),
    ("training", {"training"}),
    ("evaluation", {"evaluation"}),
    ("reconstruction and rigging", {"reconstruction", "rigging"}),
    ("pipeline", {"pipeline"}),
    ("entry points", {"service", "cli", "commands"}),  # commands: demo, export, build-addon, bench, weights, ...
]

# backend files that drive add-on modules other than rigcore (inside Blender's Python, `bpy` module)
ADDON_ENTRIES = {
    "backend/blender.py": (
        "loads the add-on's bpy-side modules on demand (`addon_module`): `keydiff3d export` builds the "
        "scene with the add-on's importer and writes it with its exporter (the command and the Export button give the "
        "same files); the posed preview builds its meshes with the importer"
    ),
}

# (file, imported module): violations allowed for now; each entry must name a file and say why
EXCEPTIONS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    file: str  # repository-relative path of the importing file
    module: str  # absolute name of what it imports (a module, or the package an attribute comes from)
    line: int


def module_name(path: Path) -> str:
    """keydiff3d.x.y for backend/x/y.py; keydiff3d_addon.x for keydiff3d_addon/x.py."""
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "backend":
        parts[0] = "keydiff3d"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _backend_modules() -> set[str]:
    return {module_name(p) for p in python_files(BACKEND)} | {module_name(p) for p in python_files(ADDON)}


KNOWN_MODULES = _backend_modules()


def imports_of(path: Path, source: str | None = None) -> list[Import]:
    """Every import in the file (or in `source` as if it were that file), resolved to absolute names
    (`from . import x` -> the module x when it exists, else the package x is an attribute of)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    rel = str(path.relative_to(REPO))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(rel, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.append(Import(rel, candidate if candidate in KNOWN_MODULES else target, node.lineno))
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            literal = _literal_prefix(node.args[0])
            if literal and not literal.startswith("."):
                found.append(Import(rel, literal.rstrip("."), node.lineno))
    return found


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def _literal_prefix(arg: ast.expr) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value) + "<dynamic>"
    return None


def _top(module: str) -> str:
    return module.split(".")[0]


def _command_modules() -> set[str]:
    from keydiff3d.cli import COMMANDS

    return {module for module, _ in COMMANDS.values()}


COMMAND_MODULES = _command_modules()


def node_of(module: str) -> str:
    """The layer-table entry a backend module belongs to: its top-level package or module, or "commands"."""
    if module in COMMAND_MODULES:
        return "commands"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "keydiff3d"


def layer_of(node: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        if node in members:
            return index
    raise KeyError(node)


def backend_imports() -> list[Import]:
    return [imp for path in python_files(BACKEND) for imp in imports_of(path)]


# --------------------------------------------------------------------------- the rules


def test_the_addon_imports_nothing_from_the_backend():
    wrong = [imp for path in python_files(ADDON) for imp in imports_of(path) if _top(imp.module) == "keydiff3d"]
    assert not wrong, "the add-on must not import the backend: " + _show(wrong)


def test_rigcore_imports_only_the_standard_library_numpy_and_itself():
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__"}
    wrong = [
        imp
        for path in python_files(ADDON / "rigcore")
        for imp in imports_of(path)
        if not (imp.module.startswith("keydiff3d_addon.rigcore") or _top(imp.module) in allowed)
    ]
    assert not wrong, "rigcore runs inside Blender and is the lowest layer: " + _show(wrong)


def test_the_backend_drives_the_addon_only_through_its_documented_entries():
    wrong = [
        imp
        for imp in backend_imports()
        if _top(imp.module) == "keydiff3d_addon"
        and not imp.module.startswith("keydiff3d_addon.rigcore")
        and imp.file not in ADDON_ENTRIES
    ]
    assert not wrong, "only the files in ADDON_ENTRIES may import add-on modules besides rigcore: " + _show(wrong)
    used = {
        imp.file for imp in backend_imports() if _top(imp.module) == "keydiff3d_addon" and "rigcore" not in imp.module
    }
    assert used == set(ADDON_ENTRIES), (
        f"ADDON_ENTRIES lists files that no longer drive the add-on: {set(ADDON_ENTRIES) - used}"
    )


def test_every_backend_package_has_one_layer():
    nodes = {node_of(module_name(p)) for p in python_files(BACKEND)}
    placed = [name for _, members in LAYERS for name in members]
    assert len(placed) == len(set(placed)), "a package is in two layers"
    assert nodes == set(placed), (
        f"LAYERS must list exactly the backend's packages (and docs/DEVELOPING.md too): "
        f"missing {sorted(nodes - set(placed))}, gone {sorted(set(placed) - nodes)}"
    )


def test_backend_packages_import_only_their_own_and_lower_layers():
    upward, graph = [], defaultdict(set)
    for imp in _backend_internal_imports():
        source, target = node_of(module_name(REPO / imp.file)), node_of(imp.module)
        if source == target:
            continue
        graph[source].add(target)
        if layer_of(target) > layer_of(source):
            layers = LAYERS[layer_of(source)][0], LAYERS[layer_of(target)][0]
            upward.append(f"{imp.file}:{imp.line} ({layers[0]}) imports {imp.module} ({layers[1]})")
    assert not upward, "imports that point up:\n" + "\n".join(upward)
    cycle = _find_cycle(graph)
    assert not cycle, "packages that import each other: " + " -> ".join(cycle)


def test_every_exception_is_still_needed():
    present = {(imp.file, imp.module) for imp in backend_imports()}
    assert EXCEPTIONS <= present, f"fixed, remove from EXCEPTIONS: {sorted(EXCEPTIONS - present)}"


def _backend_internal_imports() -> list[Import]:
    return [
        imp for imp in backend_imports() if _top(imp.module) == "keydiff3d" and (imp.file, imp.module) not in EXCEPTIONS
    ]


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def _show(imports: list[Import]) -> str:
    return "; ".join(f"{imp.file}:{imp.line} imports {imp.module}" for imp in imports)


# --------------------------------------------------------------------------- the checker itself


def test_the_checker_sees_relative_lazy_and_dynamic_imports():
    source = (
        "import importlib\n"
        "from .. import weights, __version__\n"
        "from ..pipeline.run import run_mesh_pipeline\n"
        "def f(name):\n"
        "    from ..training import cli\n"
        "    return importlib.import_module(f'keydiff3d_addon.{name}')\n"
    )
    found = {imp.module for imp in imports_of(BACKEND / "service" / "probe.py", source)}
    assert found == {
        "importlib",
        "keydiff3d.weights",
        "keydiff3d",
        "keydiff3d.pipeline.run",
        "keydiff3d.training.cli",
        "keydiff3d_addon.<dynamic>",
    }
    assert [node_of(m) for m in ("keydiff3d.training.cli", "keydiff3d.training.trainer", "keydiff3d")] == [
        "commands",
        "training",
        "keydiff3d",
    ]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert not _find_cycle({"a": {"b"}, "b": {"c"}})
