"""The strict pydantic base of the config's models (tlrepro.config.model, the methods'
settings, config/reported.yaml and config/claims.yaml), and their errors as lines that
name each faulty key as written. Torch-free and small: the code of the jobs that read
those files depends on it."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, core_schema


class Strict(BaseModel):
    """A frozen model of config values as YAML writes them: no unknown key, no coercion
    (a bool is no number, "1" no int), an int given for a float kept an int. A field's
    docstring is its description (in config/schema.yaml for editors)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        """An unknown key is named with the keys that are allowed (a misspelling's fix)."""
        if isinstance(value, dict) and cls.model_config.get("extra") == "forbid":
            unknown = [key for key in value if key not in cls.model_fields]
            if unknown:
                raise PydanticCustomError(
                    "unknown_key",
                    "unknown key {keys} (allowed keys: {allowed})",
                    {
                        "keys": ", ".join(map(repr, unknown)),
                        "allowed": ", ".join(sorted(cls.model_fields)) or "none",
                    },
                )
        return value

    @field_validator("*", mode="wrap")
    @classmethod
    def _keep_ints(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        checked = handler(value)
        return value if type(value) is int and type(checked) is float else checked


class Distinct:
    """Marks a list whose items must differ (`Annotated[list[X], Distinct]`): a repeated
    item is refused and named, and the schema says `uniqueItems`."""

    @staticmethod
    def _check(items: list[Any]) -> list[Any]:
        if twice := sorted({repr(item) for item in items if items.count(item) > 1}):
            raise ValueError(f"{', '.join(twice)} listed more than once")
        return items

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(cls._check, handler(source))

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        return {**handler(schema), "uniqueItems": True}


def absent(**constraints: Any) -> Any:
    """An optional key that has no default value: absent, never null (the schema shows
    no default)."""

    def schema(field: dict[str, Any]) -> None:
        field.pop("default", None)

    schema.absent = True  # type: ignore[attr-defined]
    return Field(None, json_schema_extra=schema, **constraints)


def is_absent(field: FieldInfo) -> bool:
    """Whether a field was declared with `absent()`."""
    return getattr(field.json_schema_extra, "absent", False)


def _dotted(path: Any) -> str:
    """A key path as the config reads: `groups.x.tasks[2]`."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "<top level>"


def _as_written(loc: tuple[Any, ...], data: Any) -> tuple[list[Any], Any]:
    """The part of pydantic's error location that names keys of `data` (dropping the tags
    of union branches), and the value there."""
    path = []
    for part in loc:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        else:
            continue
        path.append(part)
    return path, data


def problems_of(error: ValidationError, data: Any, base: tuple[Any, ...] = ()) -> list[str]:
    """One line per faulty key of `data`, at its key as written below `base`: the most
    specific errors only (a union's branches that fail deeper win over those that fail
    at the value's kind), those of one key joined."""
    found: dict[tuple[Any, ...], list[str]] = {}
    for item in error.errors(include_url=False):
        path, _ = _as_written(item["loc"], data)
        message = item["msg"]
        if item["type"] == "missing":
            message = f"no `{item['loc'][-1]}` (it is required)"
        elif item["type"].startswith("literal_error"):
            message = f"{item['input']!r} is not allowed; {message[0].lower()}{message[1:]}"
        elif item["type"] not in ("unknown_key", "value_error"):
            message = f"{message} (got {item['input']!r})"
        elif item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        messages = found.setdefault(tuple(path), [])
        if message not in messages:
            messages.append(message)
    deepest = [p for p in found if not any(q != p and q[: len(p)] == p for q in found)]
    return [
        f"at '{_dotted((*base, *p))}': {'; or '.join(found[p])}" for p in sorted(deepest, key=str)
    ]
