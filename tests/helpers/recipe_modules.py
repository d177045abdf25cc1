"""Import a recipe's script (recipes/<recipe>/<name>.py: a directory of scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from helpers.paths import REPO


def recipe_module(recipe: str, name: str) -> ModuleType:
    """``recipes/<recipe>/<name>.py`` as the module ``<recipe>_<name>``, its directory on ``sys.path``
    first (a script imports its siblings, as when run)."""
    folder = REPO / "recipes" / recipe
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"{recipe}_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
