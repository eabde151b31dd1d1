"""Typed method settings: each method's hyper-parameters as a frozen pydantic model.

A method declares its settings beside its class (in a torch-free `<method>_settings`
module, so that the registry and the plan never import torch): every field's type
says what the config may give (`Literal` for a few allowed values, `X | None` where
null means "off", a nested `Settings` model for structured entries), its default is
the method's default, and pydantic's `Field(default, ge=..., gt=...)` the interval a
number must lie in. The config loader (tlrepro.config.load) validates a method
entry's `settings` against its method's class once; what is recorded (a run's
identity, metrics.json, DVC's params) is `record()`, the plain dict of the fields.

YAML's types (tlrepro.typed.Strict): an int may stand for a float (kept as written,
so that what is recorded is what the config says), never for a bool, and a bool is
never a number. A setting the config may not change is a `ClassVar`, or a `Literal`
of the one value the method allows (linear_probe's `freeze_body`).
"""

from __future__ import annotations

from typing import Any

from tlrepro.typed import Strict


class Settings(Strict):
    """A method's settings; this base itself is the settings of a method that has none."""

    def record(self) -> dict[str, Any]:
        """The plain dict that runs record (identity, metrics.json, DVC params)."""
        return self.model_dump()
