"""The submit form generated from a job type's payload schema (jobline/ui/forms.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from jobline.ui import forms
from jobline.ui.pages import format_seconds


class Codec(StrEnum):
    OGG = "ogg"
    MP3 = "mp3"


class Inner(BaseModel):
    x: int


class Everything(BaseModel):
    source: str = Field(min_length=1, max_length=1024, examples=["song.wav"])
    bitrate: int = Field(128, ge=32, le=320)
    ratio: float = Field(0.5, gt=0, le=1)
    loud: bool = True
    codec: Codec = Codec.OGG
    mode: Literal["fast", "slow"] = "fast"
    maybe: int | None = None
    inner: Inner | None = None
    at: list[float] = Field(default_factory=lambda: [1.0, 2.0])


def by_name() -> dict[str, forms.Field]:
    fields = forms.fields_of(Everything.model_json_schema())
    assert fields is not None
    return {f.name: f for f in fields}


def test_each_property_becomes_one_field_in_schema_order() -> None:
    fields = forms.fields_of(Everything.model_json_schema())
    assert fields is not None
    assert [f.name for f in fields] == list(Everything.model_fields)


def test_strings_are_text_with_their_lengths_and_required_marked() -> None:
    source = by_name()["source"]
    assert source.kind == forms.STRING and source.required
    assert source.attrs == {"minlength": "1", "maxlength": "1024", "placeholder": "song.wav"}
    assert not source.has_default


def test_numbers_carry_bounds_and_defaults() -> None:
    fields = by_name()
    bitrate, ratio = fields["bitrate"], fields["ratio"]
    assert bitrate.kind == forms.INTEGER and not bitrate.required
    assert bitrate.attrs == {"min": "32", "max": "320", "step": "1"}
    assert bitrate.default == "128" and bitrate.hint == ">= 32, <= 320"
    assert ratio.kind == forms.NUMBER and ratio.attrs["step"] == "any"
    assert ratio.hint == "> 0, <= 1"


def test_booleans_enums_and_literals() -> None:
    fields = by_name()
    assert fields["loud"].kind == forms.BOOLEAN and fields["loud"].checked
    codec = fields["codec"]
    assert codec.kind == forms.ENUM and codec.choices == ("ogg", "mp3") and codec.default == "ogg"
    assert fields["mode"].choices == ("fast", "slow")


def test_optional_scalars_read_as_their_type_and_the_rest_as_json() -> None:
    fields = by_name()
    assert fields["maybe"].kind == forms.INTEGER and fields["maybe"].default is None
    assert fields["inner"].kind == forms.JSON
    assert fields["at"].kind == forms.JSON and fields["at"].default is None


def test_no_schema_means_a_json_editor() -> None:
    assert forms.fields_of(None) is None
    assert forms.fields_of({"type": "array"}) is None


def test_spans_of_time_read_at_a_glance() -> None:
    assert format_seconds(0.0123) == "12 ms"
    assert format_seconds(2.44) == "2.4 s"
    assert format_seconds(185) == "3 min 5 s"
    assert format_seconds(7260) == "2 h 1 min"
