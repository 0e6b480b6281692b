"""The OpenAPI document says every answer a route can give, and links submit to what follows.

FastAPI documents what a route declares. Around every route there is more: a body
refused by the guards in api/limits.py (400, 408, 413, 415, 422), the 401 of an
unauthenticated call, every error in the one shape of api/errors.py (ErrorResponse, for
FastAPI's and fastapi-users' errors too), the 429s of the abuse limits, the 403 of a
cookie sent from another origin (api/csrf.py) or of a closed registration, the 204
of a logout. `install()` adds those to the generated document once, and the links from
`POST /jobs` to the job's routes (`$response.body#/id`) that stateful clients follow
(schemathesis does: tests/integration/test_schemathesis.py).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from jobline.api.errors import http_problem
from jobline.jobs import payloads
from jobline.jobs.spec import Queues

PROBLEM = {"$ref": "#/components/schemas/ErrorResponse"}
# What FastAPI and fastapi-users document for their errors; every error has the one shape
# (api/errors.py), so every answer that named one of these names ErrorResponse instead.
REPLACED = ("HTTPValidationError", "ValidationError", "ErrorModel", "ErrorCodeReasonModel")
API = "/api/v1"
# Per route: the extra codes it answers with, beyond what its decorator declares.
TOO_MANY = {
    ("post", f"{API}/jobs"): "TOO_MANY_ACTIVE_JOBS",
    ("get", f"{API}/jobs/{{job_id}}/stream"): "TOO_MANY_STREAMS",
    ("get", f"{API}/stream"): "TOO_MANY_STREAMS",
    ("post", f"{API}/auth/jwt/login"): "TOO_MANY_LOGIN_ATTEMPTS",
    ("post", f"{API}/auth/cookie/login"): "TOO_MANY_LOGIN_ATTEMPTS",
    # A wrong current_password counts as a failed login (accounts/users.py).
    ("patch", f"{API}/users/me"): "TOO_MANY_LOGIN_ATTEMPTS",
    ("post", f"{API}/auth/register"): "TOO_MANY_REGISTRATIONS",
}
# Methods api/csrf.py checks the origin of, when the cookie rides on them.
UNSAFE = frozenset({"post", "put", "patch", "delete"})
COOKIE_LOGIN = f"{API}/auth/cookie/login"
REGISTER = f"{API}/auth/register"
LOGOUTS = (f"{API}/auth/jwt/logout", f"{API}/auth/cookie/logout")
# Link name -> (method, path) of the operation taking the submitted job's id.
JOB_LINKS = {
    "GetJob": ("get", f"{API}/jobs/{{job_id}}"),
    "ListEvents": ("get", f"{API}/jobs/{{job_id}}/events"),
    "CancelJob": ("post", f"{API}/jobs/{{job_id}}/cancel"),
    "RetryJob": ("post", f"{API}/jobs/{{job_id}}/retry"),
    "StreamJob": ("get", f"{API}/jobs/{{job_id}}/stream"),
}


def install(app: FastAPI, queues: Queues | None = None) -> None:
    """Complete the generated OpenAPI document (computed once, on first request)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete(generate(), queues)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": PROBLEM}}}


def complete(schema: dict[str, Any], queues: Queues | None = None) -> None:
    """Add the answers the middleware and dependencies give, the job links, and (given the
    declared job types) the body of `POST /jobs` per type."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _ensure_problem_schemas(components)
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for path, operations in paths.items():
        for method, op in operations.items():
            responses: dict[str, Any] = op.setdefault("responses", {})
            if "requestBody" in op:
                _body_answers(responses)
            if op.get("security") and "401" not in responses:
                responses["401"] = _problem("UNAUTHORIZED: not logged in, or the token is invalid")
            for code_text, answer in responses.items():
                if code_text.startswith(("4", "5")):
                    _one_shape(answer)
            code = TOO_MANY.get((method, path))
            if code is not None:
                responses["429"] = _problem(f"{code}: a limit was reached; see Retry-After")
            if path in LOGOUTS:
                responses.setdefault("204", {"description": "logged out"})
            if method in UNSAFE and (op.get("security") or path == COOKIE_LOGIN):
                responses.setdefault(
                    "403",
                    _problem("CROSS_ORIGIN_REQUEST: the session cookie sent from another origin"),
                )
            if (method, path) == ("post", REGISTER):
                responses.setdefault(
                    "403", _problem("REGISTRATION_CLOSED: accounts are made by an operator")
                )
    for name in REPLACED:
        components.pop(name, None)
    ready = paths.get("/readyz", {}).get("get")
    if ready is not None:
        ready["responses"]["503"] = {"description": "the database or the broker is unavailable"}
    _link_jobs(paths)
    if queues is not None:
        _submit_per_type(schema, queues)


def _body_answers(responses: dict[str, Any]) -> None:
    """What a route with a body may answer before it runs (api/limits.py)."""
    responses.setdefault(
        "400", _problem("JSON_TOO_DEEP or INVALID_UNICODE, or a body that cannot be read")
    )
    responses.setdefault("408", _problem("REQUEST_TIMEOUT: the body arrived too slowly"))
    responses.setdefault("413", _problem("PAYLOAD_TOO_LARGE: the body is over the limit"))
    responses.setdefault("415", _problem("UNSUPPORTED_ENCODING: a JSON body not in UTF-8"))
    responses.setdefault(
        "422", _problem("VALIDATION_ERROR (with `errors`), e.g. NaN or Infinity in the body")
    )


def _one_shape(answer: dict[str, Any]) -> None:
    """An error answer as it is sent: ErrorResponse, its examples in that shape too."""
    json_content = answer.setdefault("content", {}).setdefault("application/json", {})
    json_content["schema"] = PROBLEM
    for example in json_content.get("examples", {}).values():
        value = example.get("value")
        if isinstance(value, dict) and "detail" in value:
            example["value"] = http_problem(HTTPStatus.BAD_REQUEST, value["detail"])


def _ensure_problem_schemas(components: dict[str, Any]) -> None:
    from jobline.api.schemas import ErrorResponse
    from jobline.api.stream import StreamCheck

    for model in (ErrorResponse, StreamCheck):
        if model.__name__ in components:
            continue
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components[model.__name__] = schema


def _link_jobs(paths: dict[str, dict[str, Any]]) -> None:
    submit = paths.get(f"{API}/jobs", {}).get("post")
    if submit is None:
        return
    links = {}
    for name, (method, path) in JOB_LINKS.items():
        target = paths.get(path, {}).get(method)
        if target is not None and "operationId" in target:
            links[name] = {
                "operationId": target["operationId"],
                "parameters": {"job_id": "$response.body#/id"},
            }
    for status in ("200", "202"):
        if status in submit["responses"]:
            submit["responses"][status]["links"] = links


def _submit_per_type(schema: dict[str, Any], queues: Queues) -> None:
    """`POST /jobs` takes one of the declared types, each with its own payload's schema.

    The route itself reads the generic SubmitJob (a type string, a payload object) and
    answers 422 UNKNOWN_JOB_TYPE / INVALID_PAYLOAD; the document says what passes.
    """
    components = schema["components"]["schemas"]
    base = components.get("SubmitJob")
    body = schema["paths"].get(f"{API}/jobs", {}).get("post", {}).get("requestBody")
    if base is None or body is None:
        return
    variants = []
    for name, job_type in sorted(queues.job_types.items()):
        model = job_type.payload_model
        if model is None:
            # Sent by name (task_name): the API has no model; the worker checks it.
            payload: dict[str, Any] = {"type": "object", "additionalProperties": True}
        else:
            prefix = "Payload_" + re.sub(r"\W", "_", name) + "_"
            payload = payloads.json_schema(
                model, ref_template=f"#/components/schemas/{prefix}{{model}}"
            )
            for sub_name, sub in payload.pop("$defs", {}).items():
                components[prefix + sub_name] = sub
        variants.append(
            {
                "type": "object",
                "title": f"submit {name}",
                "properties": {**base["properties"], "type": {"const": name}, "payload": payload},
                # The payload may be left out when its model needs nothing (default {}).
                "required": ["type", "payload"] if payload.get("required") else ["type"],
                "additionalProperties": False,
            }
        )
    body["content"]["application/json"]["schema"] = {"oneOf": variants}
