"""torch._dynamo, imported only once something may compile.

Importing transformers imports torch._dynamo, and with it torch.distributed.tensor (about
2 s of the hf model process's 5.5 s of imports on the 2-core machine), only to mark
functions for torch.compile: decorators that run at import (torch.compiler.disable and
allow_in_graph; torch._dynamo.assume_constant_result, allow_in_graph and disable) and
masking_utils' import of TransformGetItemToIndex; torch's own lazily disabled references,
run by the model's meta-device initialisation, import it too. Outside a compile none of
these change what runs, and nothing can compile before torch._dynamo is imported. So
while the backend imports and loads, a stand-in takes those calls:

- a disabled function runs as it is while the real module is absent, through the real
  `disable` once it is there;
- `assume_constant_result` sets the flag the real one sets; `allow_in_graph` marks are
  replayed into the real module whenever it is imported;
- any other use of torch._dynamo (an attribute, a submodule) imports the real module at
  once, the stand-ins taken away first.

After the load, `import torch._dynamo` gives the real module, as usual.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.backends.import_cache import PatchAfterExec

DYNAMO = "torch._dynamo"
TRACE_WRAPPED = "torch._dynamo._trace_wrapped_higher_order_op"


def _real_dynamo() -> types.ModuleType | None:
    module = sys.modules.get(DYNAMO)
    return None if module is None or isinstance(module, _StandIn) else module


class _StandIn(types.ModuleType):
    """torch._dynamo while deferred, and torch.compiler's marking decorators."""

    def __init__(self) -> None:
        super().__init__(DYNAMO)
        self.__path__: list[str] = []  # a package: its submodules go to _SubmoduleFinder
        self.allowed_in_graph: list[Callable] = []

    def disable(self, fn=None, recursive=True, *, reason=None, wrapping=True):
        if fn is None:
            return functools.partial(
                self.disable, recursive=recursive, reason=reason, wrapping=wrapping
            )
        if isinstance(fn, type):  # a class: only the real decorator knows what to do
            return _import_real().disable(fn, recursive, reason=reason, wrapping=wrapping)
        through_dynamo = None

        @functools.wraps(fn)
        def run(*args, **kwargs):
            nonlocal through_dynamo
            if through_dynamo is None:
                real = _real_dynamo()
                if real is None:  # nothing can be compiling: run it as it is
                    return fn(*args, **kwargs)
                through_dynamo = real.disable(fn, recursive, reason=reason, wrapping=False)
            return through_dynamo(*args, **kwargs)

        return run

    def assume_constant_result(self, fn):
        fn._dynamo_marked_constant = True  # all the real decorator does
        return fn

    def allow_in_graph(self, fn):
        if isinstance(fn, list | tuple):
            return [self.allow_in_graph(f) for f in fn]
        self.allowed_in_graph.append(fn)
        return fn

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_import_real(), name)


class _TransformGetItemToIndex:
    """masking_utils' context manager; the real one is made when it is entered."""

    def __enter__(self):
        _import_real()
        self._real = importlib.import_module(TRACE_WRAPPED).TransformGetItemToIndex()
        return self._real.__enter__()

    def __exit__(self, *exc):
        return self._real.__exit__(*exc)


class _SubmoduleFinder(importlib.abc.MetaPathFinder):
    """A submodule of torch._dynamo is imported: that needs the real package, whose own
    import may make the submodule."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if not fullname.startswith(DYNAMO + "."):
            return None
        real = _import_real()
        # Out of sys.modules until the import system puts it back: finding it there, the
        # import system would run the module's code a second time.
        made = sys.modules.pop(fullname, None)
        if made is not None:
            return importlib.util.spec_from_loader(fullname, _Made(made))
        return importlib.machinery.PathFinder.find_spec(fullname, real.__path__)


class _Made(importlib.abc.Loader):
    """Hands the import system a module that exists already."""

    def __init__(self, module: types.ModuleType):
        self.module = module

    def create_module(self, spec: Any) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


_replaced: dict[str, Any] = {}  # while deferred: torch.compiler's own decorators
_finder = _SubmoduleFinder()


@contextmanager
def deferred_dynamo() -> Iterator[None]:
    """While inside, torch._dynamo is the stand-in (see the module docstring)."""
    import torch

    if DYNAMO in sys.modules:  # imported already (or deferred by an outer call)
        yield
        return
    stand_in = _StandIn()
    trace_wrapped = types.ModuleType(TRACE_WRAPPED)
    trace_wrapped.TransformGetItemToIndex = _TransformGetItemToIndex
    _replaced.update(disable=torch.compiler.disable, allow_in_graph=torch.compiler.allow_in_graph)
    sys.modules[DYNAMO] = stand_in
    sys.modules[TRACE_WRAPPED] = trace_wrapped
    torch._dynamo = stand_in
    torch.compiler.disable = stand_in.disable
    torch.compiler.allow_in_graph = stand_in.allow_in_graph
    sys.meta_path.insert(0, _finder)
    try:
        yield
    finally:
        _take_away()


def _import_real() -> types.ModuleType:
    _take_away()
    return importlib.import_module(DYNAMO)


def _take_away() -> None:
    """Put torch back as it was, keeping the marks for the real module."""
    stand_in = sys.modules.get(DYNAMO)
    if not isinstance(stand_in, _StandIn):
        return
    import torch

    del sys.modules[DYNAMO]
    sys.modules.pop(TRACE_WRAPPED, None)
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    if torch.__dict__.get("_dynamo") is stand_in:
        del torch._dynamo  # torch's module __getattr__ imports it again on use
    torch.compiler.disable = _replaced.pop("disable")
    torch.compiler.allow_in_graph = _replaced.pop("allow_in_graph")
    if stand_in.allowed_in_graph:
        sys.meta_path.insert(0, PatchAfterExec(DYNAMO, _replay(stand_in.allowed_in_graph)))


def _replay(functions: list[Callable]) -> Callable[[types.ModuleType], None]:
    def allow(dynamo: types.ModuleType) -> None:
        for fn in functions:
            dynamo.allow_in_graph(fn)

    return allow
