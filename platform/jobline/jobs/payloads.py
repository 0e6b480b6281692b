"""A job type's payload model, as the platform applies it at submission.

Strict by default: a field the model does not declare is refused (422 naming it), where
pydantic's default would drop it silently (`"bitrate": 192` for `bitrate_kbps` was accepted
and ignored). A model opts out by setting `extra` itself, e.g.
`model_config = ConfigDict(extra="allow")` (kept) or `"ignore"` (dropped); the choice
covers its whole payload. The worker validates the stored payload with the model as
written, so jobs queued before a model change still run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import ErrorDetails

ExtraMode = Literal["forbid"] | None


def accepts_unknown_fields(model: type[BaseModel]) -> bool:
    """True when the model chose its own `extra` (allow, ignore or forbid) in its config."""
    return "extra" in model.model_config


def extra_mode(model: type[BaseModel]) -> ExtraMode:
    """The `extra` override submission validates with: forbid, unless the model chose."""
    return None if accepts_unknown_fields(model) else "forbid"


def validate(model: type[BaseModel], text: str) -> dict[str, Any]:
    """The payload (JSON text) checked strictly as JSON, returned as stored (model_dump)."""
    # Strict, as JSON: what the OpenAPI document says each type takes, no coercion
    # ("128" for an integer, false for a number); unknown fields refused unless opted out.
    value = model.model_validate_json(text, strict=True, extra=extra_mode(model))
    return dict(value.model_dump(mode="json"))


def json_schema(model: type[BaseModel], **options: Any) -> dict[str, Any]:
    """The model's JSON Schema as submission applies it: closed objects when strict."""
    schema = model.model_json_schema(**options)
    if extra_mode(model) == "forbid":
        _close(schema)
    return schema


def unknown_fields(errors: Iterable[ErrorDetails]) -> list[str]:
    """The dotted paths of the fields a validation refused as unknown."""
    return [
        ".".join(str(part) for part in error["loc"])
        for error in errors
        if error["type"] == "extra_forbidden"
    ]


def _close(node: Any) -> None:
    # The override reaches nested models too, so every object of the schema is closed.
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)
