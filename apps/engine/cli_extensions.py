"""Subcommands of `manage.py braid` that higher floors add (operations, …).

The command lives on the engine floor and may not import the floors above it;
they register their module here from their AppConfig.ready. A module gives
`COMMANDS` (names), `add_parsers(sub)` and `run(command, name, options)`.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

_modules: list[str] = []


def register(module_path: str) -> None:
    if module_path not in _modules:
        _modules.append(module_path)


def modules() -> list[ModuleType]:
    return [import_module(path) for path in _modules]
