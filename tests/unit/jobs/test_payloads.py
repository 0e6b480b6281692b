"""A payload model as submission applies it: strict unless the model chose its `extra`."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from jobline.jobs import payloads
from tests.payloadjobs import LegacyRequest, ResizeRequest, TagRequest

SIZE = {"width": 2, "height": 3}


def test_unknown_fields_are_refused_by_default_at_any_depth() -> None:
    text = json.dumps({"source": "a", "bitrate": 1, "size": {**SIZE, "depth": 4}})
    with pytest.raises(ValidationError) as caught:
        payloads.validate(ResizeRequest, text)
    errors = caught.value.errors()
    assert sorted(payloads.unknown_fields(errors)) == ["bitrate", "size.depth"]


def test_a_model_that_sets_extra_opts_out() -> None:
    text = json.dumps({"source": "a", "colour": "red"})
    assert payloads.validate(TagRequest, text) == {"source": "a", "colour": "red"}
    assert payloads.validate(LegacyRequest, text) == {"source": "a"}
    assert not payloads.accepts_unknown_fields(ResizeRequest)
    assert payloads.accepts_unknown_fields(TagRequest)


def test_the_schema_says_what_submission_does() -> None:
    strict = payloads.json_schema(ResizeRequest)
    assert strict["additionalProperties"] is False
    assert strict["$defs"]["Size"]["additionalProperties"] is False
    assert payloads.json_schema(TagRequest)["additionalProperties"] is True
    assert "additionalProperties" not in payloads.json_schema(LegacyRequest)


def test_the_model_itself_is_left_as_written() -> None:
    """The worker validates stored payloads with the model as written: jobs queued before a
    the model changed still run."""
    ResizeRequest.model_validate({"source": "a", "size": SIZE, "old": 1})
    assert "additionalProperties" not in ResizeRequest.model_json_schema()
