"""A module imported on first use, so that the command line starts without the heavy libraries."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for module ``name`` and imports it at the first attribute access: ``torch = LazyModule("torch")``.

    ``torch.Tensor`` then costs the import of torch only when a function first needs it; until then
    ``"torch" not in sys.modules``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy/pickle/inspect probing a special name must not import the module
            raise AttributeError(attr)
        if self._module is None:
            self._module = import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
