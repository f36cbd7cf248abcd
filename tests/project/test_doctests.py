"""The examples in the docstrings run, as installed: every module of the opgraph package."""

import doctest
import importlib
import pkgutil

import pytest

import opgraph

MODULES = sorted(m.name for m in pkgutil.walk_packages(opgraph.__path__, "opgraph.")
                 if m.name not in ("opgraph.__main__",))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
