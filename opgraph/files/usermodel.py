"""Models written in the user's own Python: `path/to/file.py:NAME` or `package.module:NAME` on the command line.

NAME is either a function `build(phase, options) -> Model` or an object with a `build(phase, options)` method
(such as an `opgraph.models.DecoderConfig`). Every command runs it like a preset: it is called once per phase
and size (a sweep traces it, see `opgraph.trace`), with `options` an `opgraph.core.model.BuildOptions` that it
should honour (precision per role, causal skipping, experts touched).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import attrs

from opgraph.core.model import BuildOptions, Model
from opgraph.core.phase import Phase
from opgraph.errors import OpgraphError


def looks_like_reference(text: str) -> bool:
    """`file.py:NAME` or `package.module:NAME` (a name with one colon and an identifier after it)."""
    module, sep, attr = text.rpartition(":")
    return bool(sep and module and attr.isidentifier())


def _where(e: BaseException, path: str | None) -> str:
    """The innermost line of the user's own file in the traceback, for a one-line message."""
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if path and Path(f.filename).resolve() == Path(path).resolve()] or frames[-1:]
    return f" (at {mine[-1].filename}:{mine[-1].lineno})" if mine else ""


def _import(module: str, reference: str):
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise OpgraphError(f"model {reference!r}: file {module!r} does not exist")
        name = f"opgraph_user_model_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses and attrs look their module up while the file runs
        try:
            spec.loader.exec_module(mod)
        except Exception as e:  # the user's file failed: say where, in one line
            del sys.modules[name]
            raise OpgraphError(f"model {reference!r}: running {module} raised {type(e).__name__}: {e}"
                               f"{_where(e, module)}") from None
        return mod, str(path)
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise OpgraphError(f"model {reference!r}: cannot import module {module!r}: {e}") from None
    except Exception as e:
        raise OpgraphError(f"model {reference!r}: importing {module} raised {type(e).__name__}: {e}"
                           f"{_where(e, getattr(e, 'filename', None))}") from None
    return mod, getattr(mod, "__file__", None)


@attrs.frozen
class UserModel:
    """A model source from user code: `build(phase, options)` gives the Model for one phase."""

    name: str
    source: str
    make: Callable[[Phase, BuildOptions], Model]
    path: str | None = None

    def build(self, phase: Phase, options: BuildOptions = BuildOptions()) -> Model:
        try:
            model = self.make(phase, options)
        except OpgraphError:
            raise
        except Exception as e:
            raise OpgraphError(f"model {self.source!r}: building the {phase.name} model raised "
                               f"{type(e).__name__}: {e}{_where(e, self.path)}") from None
        if not isinstance(model, Model):
            raise OpgraphError(f"model {self.source!r}: build(phase, options) must return an opgraph Model, "
                               f"got {type(model).__name__}")
        return model


def load(reference: str):
    """The model source that `file.py:NAME` or `package.module:NAME` names."""
    module, _, attr = reference.rpartition(":")
    mod, path = _import(module, reference)
    if not hasattr(mod, attr):
        found = sorted(n for n, v in vars(mod).items() if not n.startswith("_") and
                       (callable(v) or hasattr(v, "build")) and getattr(v, "__module__", mod.__name__) == mod.__name__)
        raise OpgraphError(f"model {reference!r}: {module} has no {attr!r}; it defines: {', '.join(found) or 'nothing usable'}"
                           f" (a function build(phase, options) -> Model, or an object with such a build method)")
    obj = getattr(mod, attr)
    if hasattr(obj, "build") and callable(obj.build) and not isinstance(obj, type):
        return obj if getattr(obj, "name", None) else UserModel(attr, reference, obj.build, path)
    if callable(obj):
        return UserModel(attr, reference, obj, path)
    raise OpgraphError(f"model {reference!r}: {attr} is a {type(obj).__name__}; it must be a function "
                       f"build(phase, options) -> Model, or an object with such a build method")
