"""Dependencies point one way: core <- trace <- files <- zoo (models, hardware) <- analysis <- render, choices <- runs <- cli.
Read from the installed package's source, every import statement, module level or inside a function."""

import ast
import importlib.util
import pkgutil
from pathlib import Path

import pytest


# layer -> the layers it may import (besides itself)
ALLOWED = {
    "core": {"errors"},
    "trace": {"errors", "core"},
    "files": {"errors", "core"},
    "models": {"errors", "core", "files"},
    "hardware": {"errors", "core", "files"},
    "analysis": {"errors", "core", "trace", "files"},
    "render": {"errors", "core", "analysis"},
    "choices": {"errors", "core", "files", "models", "hardware", "analysis"},
    "runs": {"errors", "core", "files", "models", "hardware", "analysis", "choices", "render"},  # pictures
    "cli": {"errors", "core", "files", "models", "hardware", "analysis", "render", "choices", "runs"},
}
ONLY_IN = {"tabulate": {"render"}, "matplotlib": {"render"}, "csv": {"render", "files"}}  # files read CSV


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def modules():
    """Every module of the installed package, wherever its file lives (models/ and hardware/ are mapped in)."""
    import opgraph.hardware
    import opgraph.models
    names = {"opgraph", "opgraph.models", "opgraph.hardware"}
    for package in (opgraph, opgraph.models, opgraph.hardware):
        names.update(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))
    for name in sorted(names):
        if layer_of(name) in ALLOWED:
            yield name, Path(importlib.util.find_spec(name).origin)


def imports(name: str, path: Path):
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield target
            if target == "opgraph":  # from opgraph import hardware, models: those subpackages
                yield from (f"opgraph.{a.name}" for a in node.names)


@pytest.mark.parametrize("name, path", list(modules()), ids=[n for n, _ in modules()])
def test_imports_point_down(name, path):
    mine = layer_of(name)
    for target in imports(name, path):
        top = target.split(".")[0]
        if top in ONLY_IN:
            assert mine in ONLY_IN[top], f"{name} imports {target}: only opgraph.render writes text and pictures"
        if top != "opgraph" or target == "opgraph":
            continue
        theirs = layer_of(target)
        if theirs in ALLOWED or theirs == "errors":
            assert theirs == mine or theirs in ALLOWED[mine], f"{name} ({mine}) imports {target} ({theirs})"


def test_every_layer_is_checked():
    assert {layer_of(n) for n, _ in modules()} == set(ALLOWED)
