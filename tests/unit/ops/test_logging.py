"""Log lines carry the request id and job id; JSON format is one object per line."""

from __future__ import annotations

import io
import json
import logging

from jobline.logging import (
    ContextFilter,
    formatter,
    job_id_var,
    new_request_id,
    request_id_var,
)


def emit(log_format: str, message: str, *args: object, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"jobline.test.{log_format}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info(message, *args, extra=extra or None)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_json_line_holds_the_message_and_the_current_ids() -> None:
    rid, jid = request_id_var.set("req-1"), job_id_var.set("job-9")
    try:
        out = emit("json", "job %s started", "job-9", worker="music@h")
    finally:
        request_id_var.reset(rid)
        job_id_var.reset(jid)
    assert out.count("\n") == 1
    record = json.loads(out)
    assert record["message"] == "job job-9 started"
    assert record["request_id"] == "req-1"
    assert record["job_id"] == "job-9"
    assert record["worker"] == "music@h"
    assert record["level"] == "INFO"


def test_json_without_a_request_has_null_ids_and_text_shows_a_dash() -> None:
    record = json.loads(emit("json", "idle"))
    assert record["request_id"] is None and record["job_id"] is None
    assert "[req=- job=-] idle" in emit("text", "idle")


def test_a_multiline_message_stays_on_one_json_line() -> None:
    out = emit("json", "line one\nline two")
    assert out.count("\n") == 1
    assert json.loads(out)["message"] == "line one\nline two"


def test_a_safe_offered_request_id_is_kept_and_an_unsafe_one_replaced() -> None:
    assert new_request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in ("", "has space", "new\nline", "trailing\n", "x" * 65, 'quote"d'):
        replaced = new_request_id(bad)
        assert replaced != bad and len(replaced) == 32
    assert new_request_id(None) != new_request_id(None)
