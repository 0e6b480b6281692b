"""The submit form of a job type, generated from its payload's JSON Schema.

Each top-level property becomes one field named after it: a text input for a string, a
number input with the schema's bounds for an integer or a number, a checkbox for a
boolean, a select for an enum (or a `Literal`), and a JSON text area for anything else
(nested objects, arrays, unions), which the API then validates like any payload. A type
with no schema at the API (a `task_name:` type) gets one JSON editor for the whole payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# The form's kinds; submit.js reads a field's `data-kind` to turn its text into JSON.
STRING, INTEGER, NUMBER, BOOLEAN, ENUM, JSON = (
    "string",
    "integer",
    "number",
    "boolean",
    "enum",
    "json",
)
# JSON Schema keywords that become HTML constraints on a number input.
_BOUNDS = {"minimum": "min", "maximum": "max"}


@dataclass(frozen=True)
class Field:
    """One input of the submit form."""

    name: str
    label: str
    kind: str
    required: bool
    description: str | None = None
    default: str | None = None  # the default as the input shows it (JSON text for JSON)
    has_default: bool = False
    checked: bool = False
    choices: tuple[str, ...] = ()
    attrs: dict[str, str] = field(default_factory=dict)  # min, max, step, minlength, ...
    hint: str | None = None  # bounds in words, next to the label


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (pydantic puts enums and nested models under `$defs`)."""
    seen = 0
    while "$ref" in schema and seen < 10:
        ref = str(schema["$ref"])
        if not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **merged}
        seen += 1
    return schema


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    """`X | None` as pydantic writes it (anyOf [X, null]) read as X."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if len(rest) == 1 and isinstance(rest[0], dict):
            return {**{k: v for k, v in schema.items() if k != "anyOf"}, **rest[0]}
    return schema


def _bounds_hint(schema: dict[str, Any]) -> str | None:
    parts = []
    if "minimum" in schema:
        parts.append(f">= {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        parts.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        parts.append(f"<= {schema['maximum']}")
    if "exclusiveMaximum" in schema:
        parts.append(f"< {schema['exclusiveMaximum']}")
    if "minLength" in schema:
        parts.append(f"at least {schema['minLength']} characters")
    if "maxLength" in schema:
        parts.append(f"at most {schema['maxLength']} characters")
    return ", ".join(parts) or None


def field_of(name: str, raw: dict[str, Any], root: dict[str, Any], required: bool) -> Field:
    """The form field of one property of the payload schema."""
    schema = _optional(_resolve(raw, root))
    label = str(schema.get("title") or name)
    description = schema.get("description")
    has_default = "default" in schema
    default = schema.get("default")
    common: dict[str, Any] = {
        "name": name,
        "label": label,
        "required": required,
        "description": str(description) if description else None,
        "has_default": has_default,
        "hint": _bounds_hint(schema),
    }
    choices = schema.get("enum")
    if choices is None and "const" in schema:
        choices = [schema["const"]]
    if isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices):
        return Field(
            kind=ENUM,
            choices=tuple(choices),
            default=str(default) if has_default else None,
            **common,
        )
    kind = schema.get("type")
    if kind == "string":
        attrs = {}
        if "minLength" in schema:
            attrs["minlength"] = str(schema["minLength"])
        if "maxLength" in schema:
            attrs["maxlength"] = str(schema["maxLength"])
        examples = schema.get("examples")
        if isinstance(examples, list) and examples:
            attrs["placeholder"] = str(examples[0])
        return Field(
            kind=STRING,
            default=str(default) if has_default and default is not None else None,
            attrs=attrs,
            **common,
        )
    if kind in ("integer", "number"):
        attrs = {html: str(schema[key]) for key, html in _BOUNDS.items() if key in schema}
        attrs["step"] = "1" if kind == "integer" else "any"
        return Field(
            kind=INTEGER if kind == "integer" else NUMBER,
            default=str(default) if has_default and default is not None else None,
            attrs=attrs,
            **common,
        )
    if kind == "boolean":
        return Field(kind=BOOLEAN, checked=bool(default), **common)
    return Field(
        kind=JSON,
        default=json.dumps(default) if has_default else None,
        **common,
    )


def fields_of(schema: dict[str, Any] | None) -> list[Field] | None:
    """The form's fields for a payload schema; None when the type has no object schema
    (the form then offers a JSON editor for the whole payload)."""
    if not schema:
        return None
    root = schema
    schema = _resolve(schema, root)
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        return None
    required = set(schema.get("required") or ())
    return [
        field_of(name, prop, root, name in required)
        for name, prop in properties.items()
        if isinstance(prop, dict)
    ]
