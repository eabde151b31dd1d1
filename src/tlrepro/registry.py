"""Lazy registries: names map to `module:attribute` strings.

Snakemake and DVC read the registries to plan the DAG; importing torch for that
would cost seconds per `snakemake -n`, so entries only name where the
implementation lives and it is imported when first used (as timm does with its
model entrypoints).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from tlrepro.errors import TlreproError


class UnknownNameError(TlreproError, KeyError):
    """A config named something no registry knows; the message lists what exists."""

    def __str__(self) -> str:
        return str(self.args[0])


def lookup(registry: Mapping[str, Any], kind: str, name: str) -> Any:
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise UnknownNameError(f"unknown {kind} {name!r}; known {kind}s: {known}") from None


def module_of(target: str) -> str:
    """The module of a registry entry `package.module:attribute`."""
    return target.partition(":")[0]


def load_object(target: str) -> Any:
    """Import `package.module:attribute`."""
    module = module_of(target)
    return getattr(importlib.import_module(module), target[len(module) + 1 :])
