"""The package's import graph, read with ``ast`` (nothing is imported): no cycle among module-level imports, no
import of another module's ``_private`` name, and imports that run one way down the layers of docs/ARCHITECTURE.md:

    commands/cli -> serve -> predict | train | bench -> evaluation, metrics -> runtime -> export -> data, checkpoints,
    provenance -> media -> model, accel, distributed -> base (config, errors, io, text, _optional, _privacy, _cache,
    hardware, testing, the package root)

Function-level imports count for the layers, the private names and for existing at all (they run too, just later: an
import of a module that moved fails only when its function first runs); only module-level
imports can form an import cycle. Imports under ``if TYPE_CHECKING:`` never run, but they are dependencies all the
same (a type-only import is how a cycle hides), so they count as module-level imports for the cycles and for the
layers; the one exception is the package root, whose ``TYPE_CHECKING`` block only mirrors its lazy public names for
type checkers (it is the top of the graph for them, and nothing below may import it: see ``mmadfer._version``).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mmadfer"

#: Lowest first; a module may import from its own layer and the ones below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("", "config", "errors", "io", "text", "_optional", "_privacy", "_cache", "_memory", "_html", "testing", "hardware",
              "timing")),
    ("model", ("model", "accel", "distributed")),
    ("media", ("media",)),
    ("data", ("data", "checkpoints", "checkpoint_checks", "provenance")),
    ("export", ("export",)),
    ("runtime", ("runtime",)),
    ("evaluation", ("evaluation", "metrics")),
    ("application", ("predict", "train", "bench")),
    ("distill", ("distill",)),
    ("server", ("serve",)),
    ("commands", ("commands", "cli")),
]
#: Layers whose parts are peers that must not import one another (prediction never imports training, and so on).
PEER_LAYERS = {"application"}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # the module that runs
    name: str | None  # the name taken from it (``from target import name``), None for a module import
    line: int
    module_level: bool
    type_only: bool = False  # under ``if TYPE_CHECKING:``


def module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module_level: bool = True, type_only: bool = False):
    """(node, module_level, type_only) for every import statement; ``type_only`` under ``if TYPE_CHECKING:`` (whose
    imports count as module-level ones: they say what the module depends on)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, module_level, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), module_level, True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), module_level, type_only)
        else:
            inner = module_level and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                                           ast.ClassDef))
            yield from _imports(node, inner, type_only)


def collect(root: Path = PACKAGE, package: str = "mmadfer") -> tuple[set[str], list[Import]]:
    """Every module of the package and every import of one of its modules."""
    files = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    found: list[Import] = []
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node, top, typing_only in _imports(ast.parse(path.read_text(), str(path))):
            if typing_only and name == package:
                continue  # the root's mirror of its lazy public names (see the module docstring)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == package or alias.name.startswith(package + "."):
                        found.append(Import(name, alias.name, None, node.lineno, top, typing_only))
                continue
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not (source == package or source.startswith(package + ".")):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:  # ``from pkg import submodule``
                    found.append(Import(name, sub, None, node.lineno, top, typing_only))
                else:
                    found.append(Import(name, source, alias.name, node.lineno, top, typing_only))
    return modules, found


def layer_of(module: str, package: str = "mmadfer") -> tuple[int, str]:
    """(rank, part) of a module: ``mmadfer.runtime.load`` -> the runtime layer, part ``runtime``."""
    top = module[len(package) + 1:].split(".")[0] if module != package else ""
    for rank, (_, parts) in enumerate(LAYERS):
        if top in parts:
            return rank, top
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/ARCHITECTURE.md)")


def layer_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        (src_rank, src_part), (dst_rank, dst_part) = layer_of(imp.importer), layer_of(imp.target)
        if dst_rank > src_rank:
            bad.append(f"{imp.importer}:{imp.line} imports {imp.target}: {LAYERS[src_rank][0]} may not import "
                       f"the higher layer {LAYERS[dst_rank][0]}")
        elif dst_rank == src_rank and src_part != dst_part and LAYERS[src_rank][0] in PEER_LAYERS:
            bad.append(f"{imp.importer}:{imp.line} imports {imp.target}: {src_part} and {dst_part} are peers")
    return bad


def private_violations(imports: list[Import]) -> list[str]:
    return [f"{imp.importer}:{imp.line} imports the private name {imp.name} from {imp.target}"
            for imp in imports
            if imp.name and imp.name.startswith("_") and not (imp.name.startswith("__") and imp.name.endswith("__"))]


def cycles(modules: set[str], imports: list[Import]) -> list[list[str]]:
    """Strongly connected groups of modules (more than one) in the module-level import graph.

    Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` unless the importer is inside ``a.b`` already (its own
    package is being initialised then), so those edges are part of the graph too.
    """
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if not imp.module_level or imp.target not in modules:
            continue
        graph[imp.importer].add(imp.target)
        parts = imp.target.split(".")
        for i in range(2, len(parts)):
            parent = ".".join(parts[:i])
            if parent in modules and imp.importer != parent and not imp.importer.startswith(parent + "."):
                graph[imp.importer].add(parent)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def bound_names(path: Path) -> set[str] | None:
    """The names a module binds at its top level (also inside top-level ``if``/``try``); None when it resolves
    names lazily (a module-level ``__getattr__``), so that any name may exist."""
    names: set[str] = set()

    def visit(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.If):
                visit(node.body), visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body), visit(node.orelse), visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)

    visit(ast.parse(path.read_text(), str(path)).body)
    return None if "__getattr__" in names else names


def unresolved(imports: list[Import], root: Path = PACKAGE, package: str = "mmadfer") -> list[str]:
    """Imports of the package's own modules or names that do not exist: function-level ones included, which
    otherwise fail only when that function first runs (a module moved, its old path still imported somewhere)."""
    files = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    found = []
    for i in imports:
        if i.target not in files:
            found.append(f"{i.importer}:{i.line} imports {i.target}, which is not a module")
        elif i.name is not None and i.name != "*":
            names = bound_names(files[i.target])
            if names is not None and i.name not in names:
                found.append(f"{i.importer}:{i.line} imports {i.name} from {i.target}, which does not define it")
    return found


@pytest.fixture(scope="module")
def graph():
    return collect()


def test_the_walk_sees_the_package(graph):
    modules, imports = graph
    assert {"mmadfer.predict.recognizer", "mmadfer.runtime.load", "mmadfer.export.onnx", "mmadfer.cli"} <= modules
    assert any(i.importer == "mmadfer.runtime.load" and i.target == "mmadfer.export.onnx" for i in imports)
    assert any(not i.module_level for i in imports)  # function-level imports are read too (the CLI's commands)
    assert any(i.type_only for i in imports)  # and those under TYPE_CHECKING (data/synthetic.py's)


def test_no_import_cycle(graph):
    found = cycles(*graph)
    assert not found, "import cycles among module-level imports:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_private_name_imported_across_modules(graph):
    found = private_violations(graph[1])
    assert not found, "make the name public, or move it into a private module:\n" + "\n".join(found)


def test_imports_run_down_the_layers(graph):
    found = layer_violations(graph[1])
    assert not found, "imports against the layers of docs/ARCHITECTURE.md:\n" + "\n".join(found)


def test_every_import_of_the_package_resolves(graph):
    found = unresolved(graph[1])
    assert not found, "imports of modules or names that do not exist:\n" + "\n".join(found)


def test_every_module_has_a_layer(graph):
    for module in graph[0]:
        layer_of(module)


def test_the_checks_catch_planted_violations(tmp_path):
    """The same checks on a small package with one of each violation: they must fail there."""
    pkg = tmp_path / "mmadfer"
    files = {
        "__init__.py": "__version__ = '0'\n",
        "io.py": "",
        "export/__init__.py": "",
        "export/onnx.py": "from ..runtime.load import run\n",  # export must never import runtime
        "runtime/__init__.py": "",
        "runtime/load.py": "from ..export.onnx import _secret\n\ndef run():\n    from .. import __version__\n",
        "media/__init__.py": "",
        "media/a.py": "from . import b\n",
        "media/b.py": "from .a import thing\n",  # a cycle a <-> b
        "model/__init__.py": "",
        "model/net.py": "def f():\n    from ..media import a\n",  # a function-level upward import
        "predict/__init__.py": "",
        "predict/x.py": "from ..train import engine\n",  # peers
        "train/__init__.py": "",
        "train/engine.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..commands import y\n",
        "commands/__init__.py": "",
        "commands/y.py": "",
        "data/__init__.py": "",
        "data/p.py": "from .q import thing\n",
        "data/q.py": "import typing\nif typing.TYPE_CHECKING:\n    from .p import other\n",  # a cycle hidden from runtime
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    modules, imports = collect(pkg)
    assert cycles(modules, imports) == [["mmadfer.data.p", "mmadfer.data.q"],
                                        ["mmadfer.export.onnx", "mmadfer.runtime.load"],
                                        ["mmadfer.media.a", "mmadfer.media.b"]]
    assert private_violations(imports) == ["mmadfer.runtime.load:1 imports the private name _secret from "
                                           "mmadfer.export.onnx"]
    layers = layer_violations(imports)
    assert len(layers) == 4, layers  # the type-only upward import of train/engine.py counts too
    assert any(v.startswith("mmadfer.export.onnx:1 imports mmadfer.runtime.load") for v in layers)
    assert any(v.startswith("mmadfer.model.net:2 imports mmadfer.media.a") for v in layers)
    assert any("peers" in v and v.startswith("mmadfer.predict.x") for v in layers)
    assert any(v.startswith("mmadfer.train.engine:3 imports mmadfer.commands.y") for v in layers)


#: Modules of the evaluation package that compute (numbers in, numbers out); its charts, files, HTML and the scoring
#: loop build on them, never the reverse (they import only each other and the base layer).
PURE_EVALUATION = ("accuracy", "agreement", "analysis", "bootstrap", "calibration", "compare", "cost", "selective",
                   "subgroups")
EVALUATION_OUTPUT = ("plots", "files", "report", "scoring")


def test_evaluation_metrics_are_separate_from_its_charts_files_and_loop():
    _, imports = collect()
    bad = [f"{i.importer}:{i.line} imports {i.target}" for i in imports
           if i.importer.split(".")[-1] in PURE_EVALUATION and i.importer.startswith("mmadfer.evaluation.")
           and (i.target.split(".")[-1] in EVALUATION_OUTPUT
                or not (i.target.startswith("mmadfer.evaluation") or layer_of(i.target)[0] == 0))]
    assert not bad, bad

