"""Tortoise ORM internals: a model's metadata (`Model._meta`) and building an instance from a
row (`Model._init_from_db`). Tested with tortoise-orm 1.1.

The store writes its hot statements by hand (a job read through the query builder costs
about twice the CPU, bench/README.md) but encodes and decodes values through the models'
own fields, so they match the ORM's exactly; these two functions are how it reaches them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, cast

from tortoise.fields import Field
from tortoise.models import Model

M = TypeVar("M", bound=Model)


class ModelMeta(Protocol):
    """The part of Tortoise's MetaInfo jobline reads."""

    # field name -> Field (to_db_value / default / generated)
    fields_map: dict[str, Field[Any]]
    # field name -> column name, for the fields stored in the model's own table
    fields_db_projection: dict[str, str]
    db_table: str


def meta(model: type[Model]) -> ModelMeta:
    """The model's fields, their columns and its table."""
    return cast(ModelMeta, model._meta)


def from_row(model: type[M], row: Mapping[str, Any]) -> M:
    """An instance of `model` from a row as the driver returned it (column -> value),
    each value decoded by its field, as Tortoise's own queries build instances."""
    return model._init_from_db(**row)
