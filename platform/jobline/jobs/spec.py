"""queues.yaml: load, validate into typed models, and resolve job types."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobline.backoff import backoff
from jobline.errors import ConfigError
from jobline.jobs.context import JobFunction

Pool = Literal["prefork", "threads", "gevent", "eventlet", "solo"]


class Policy(BaseModel):
    """Retry and limit settings; `defaults`, a domain and a job type may each set them."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int | None = Field(None, ge=0)
    retry_backoff: float | None = Field(None, gt=0, description="seconds, doubled per attempt")
    retry_backoff_max: float | None = Field(None, gt=0)
    time_limit: int | None = Field(None, gt=0, description="hard limit, seconds")
    soft_time_limit: int | None = Field(None, gt=0)
    max_worker_losses: int | None = Field(None, ge=1)
    cancel_grace_seconds: float | None = Field(None, ge=0)
    max_user_priority: int | None = Field(
        None, ge=0, le=9, description="highest priority a user who is not a superuser may ask"
    )


POLICY_FIELDS = tuple(Policy.model_fields)
BUILTIN_POLICY = {
    "max_retries": 3,
    "retry_backoff": 2.0,
    "retry_backoff_max": 600.0,
    "time_limit": 3600,
    "soft_time_limit": 3540,
    "max_worker_losses": 3,
    "cancel_grace_seconds": 30.0,
    # 6-9 stay for superusers: an operator's urgent job passes any user's queued ones.
    "max_user_priority": 5,
}


class ResolvedPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_retries: int
    retry_backoff: float
    retry_backoff_max: float
    time_limit: int
    soft_time_limit: int
    max_worker_losses: int
    cancel_grace_seconds: float
    max_user_priority: int

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before the attempt after `attempt` (exponential, capped)."""
        return backoff(self.retry_backoff, self.retry_backoff_max, attempt - 1)


class JobTypeSpec(Policy):
    function: str | None = Field(None, description="module:attribute, enqueued with apply_async")
    task_name: str | None = Field(None, description="a task only workers import: send_task")
    rate_limit: str | None = Field(None, pattern=r"^\d+(\.\d+)?/[smh]$")
    retry_for: list[str] = Field(default_factory=list, description="exception classes to retry")
    description: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> JobTypeSpec:
        if (self.function is None) == (self.task_name is None):
            raise ValueError("give exactly one of 'function' or 'task_name'")
        if self.function is not None and ":" not in self.function:
            raise ValueError("'function' must be 'module:attribute'")
        return self


class Fairness(BaseModel):
    """What `defaults` and a domain may set beyond the Policy: the share one user gets."""

    model_config = ConfigDict(extra="forbid")

    max_running_per_user: int | None = Field(
        None,
        ge=0,
        description="jobs of one user running at once in the domain, across all its workers "
        "(0: no cap; unset: concurrency - 1, at least 1)",
    )


class DomainSpec(Policy, Fairness):
    queue: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    pool: Pool = "prefork"
    concurrency: int = Field(2, ge=1)
    prefetch: int = Field(1, ge=1)
    processes: int = Field(
        1, ge=1, description="worker processes per host (supervisor numprocs, compose replicas)"
    )
    queue_type: Literal["classic", "quorum"] = "classic"
    task_events: bool = Field(
        False,
        description="Celery task-* monitoring events (Flower's Tasks tab); off: the history is stored",
    )
    imports: list[str] = Field(default_factory=list, description="modules only workers import")
    job_types: dict[str, JobTypeSpec] = Field(min_length=1)


class Defaults(Policy, Fairness):
    """The `defaults:` mapping."""


class QueuesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: Defaults = Field(default_factory=Defaults)
    domains: dict[str, DomainSpec] = Field(min_length=1)


@dataclass(frozen=True)
class JobType:
    """One declared job type, with everything resolved from defaults and its domain."""

    name: str
    domain: str
    queue: str
    spec: JobTypeSpec
    policy: ResolvedPolicy
    # Jobs of one user running at once in this type's domain (0: no cap).
    max_running_per_user: int = 0

    @property
    def importable(self) -> bool:
        return self.spec.function is not None

    def load(self) -> Any:
        """The job function (a JobFunction), imported."""
        assert self.spec.function is not None
        return import_object(self.spec.function)

    @cached_property
    def payload_model(self) -> type[BaseModel] | None:
        return self.load().payload if self.importable else None

    def retry_exceptions(self) -> tuple[type[BaseException], ...]:
        from jobline.errors import TransientError

        return (TransientError, *(import_object(name) for name in self.spec.retry_for))


@dataclass(frozen=True)
class Queues:
    """The loaded queues.yaml."""

    path: Path
    raw: QueuesFile
    job_types: dict[str, JobType]

    @property
    def domains(self) -> dict[str, DomainSpec]:
        return self.raw.domains

    def domain_types(self, domain: str) -> list[JobType]:
        return [jt for jt in self.job_types.values() if jt.domain == domain]

    @property
    def longest_time_limit(self) -> int:
        return max(jt.policy.time_limit for jt in self.job_types.values())


def import_object(path: str) -> Any:
    """Import `module:attribute` (or `module.attribute`)."""
    module, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def import_error(exc: BaseException) -> str:
    """What went wrong importing a job's module, on one line: where, for a syntax error."""
    if isinstance(exc, SyntaxError):
        # Its str() is the message alone; the file and line are what the user needs.
        where = exc.filename or "?"
        relative = os.path.relpath(where)
        if not relative.startswith(".."):  # under the working directory: tasks/video.py
            where = relative
        return f"{exc.msg} ({where}, line {exc.lineno})"
    if isinstance(exc, ImportError | AttributeError | ValueError):
        return " ".join(str(exc).split())
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _duplicate_keys(node: yaml.Node, path: str = "") -> list[str]:
    """`dotted.key: ...` for every key given twice in one mapping (YAML would keep the last)."""
    problems: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            dotted = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in first_line:
                problems.append(
                    f"{dotted}: declared twice (lines {first_line[key]} and {line}); "
                    "each key may appear once"
                )
            else:
                first_line[key] = line
            problems.extend(_duplicate_keys(value_node, dotted))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems.extend(_duplicate_keys(item, f"{path}.{index}"))
    return problems


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's complaint in one line, with where it is in the file."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f" ({exc.context})" if exc.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"
    return " ".join(str(exc).split())


def load_queues(path: Path | str, *, check_imports: bool = True) -> Queues:
    """Load and validate queues.yaml; every problem is a ConfigError naming file, key, reason."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from exc
    duplicates = _duplicate_keys(node) if node is not None else []
    if duplicates:
        raise ConfigError("\n".join(f"{path}: {d}" for d in duplicates))
    try:
        raw = QueuesFile.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("\n".join(problems)) from None
    job_types: dict[str, JobType] = {}
    queue_owner: dict[str, str] = {}
    problems = []
    module_errors: dict[str, str] = {}
    reported: set[str] = set()
    for domain_name, domain in raw.domains.items():
        if domain.queue in queue_owner:
            problems.append(
                f"{path}: domains.{domain_name}.queue: queue {domain.queue!r} "
                f"is already used by domain {queue_owner[domain.queue]!r}"
            )
        queue_owner[domain.queue] = domain_name
        for type_name, spec in domain.job_types.items():
            name = f"{domain_name}.{type_name}"
            policy = _resolve_policy(raw.defaults, domain, spec)
            key = f"domains.{domain_name}.job_types.{type_name}"
            if policy.soft_time_limit >= policy.time_limit:
                problems.append(f"{path}: {key}: soft_time_limit must be below time_limit")
            job_types[name] = JobType(
                name, domain_name, domain.queue, spec, policy, running_cap(raw.defaults, domain)
            )
            if check_imports:
                broken = _broken_module(spec, module_errors)
                if broken is None:
                    problems.extend(f"{path}: {key}: {p}" for p in _import_problems(spec))
                elif broken not in reported:
                    # One line per broken module, not one per job type it holds.
                    reported.add(broken)
                    problems.append(
                        f"{path}: {key}: function {spec.function!r} cannot be imported: "
                        f"{module_errors[broken]}"
                    )
    if problems:
        raise ConfigError("\n".join(problems))
    return Queues(path=path, raw=raw, job_types=job_types)


def running_cap(defaults: Defaults, domain: DomainSpec) -> int:
    """A domain's cap on one user's running jobs: its own, the defaults', or concurrency - 1.

    The default leaves one slot of a worker's concurrency to other users; a domain of one
    slot keeps it usable (1). `concurrency` is the one of queues.yaml, not a worker's
    --concurrency override: the cap counts across every worker of the domain.
    """
    for value in (domain.max_running_per_user, defaults.max_running_per_user):
        if value is not None:
            return value
    return max(1, domain.concurrency - 1)


def _resolve_policy(defaults: Policy, domain: Policy, job_type: Policy) -> ResolvedPolicy:
    merged: dict[str, Any] = dict(BUILTIN_POLICY)
    for layer in (defaults, domain, job_type):
        merged |= {k: v for k in POLICY_FIELDS if (v := getattr(layer, k)) is not None}
    return ResolvedPolicy(**merged)


def _broken_module(spec: JobTypeSpec, errors: dict[str, str]) -> str | None:
    """The module of the job's function if importing it fails (remembered in `errors`)."""
    if spec.function is None:
        return None
    module = (
        spec.function.partition(":")[0]
        if ":" in spec.function
        else (spec.function.rpartition(".")[0])
    )
    if module not in errors:
        try:
            importlib.import_module(module)
        except Exception as exc:
            errors[module] = import_error(exc)
        else:
            errors[module] = ""
    return module if errors[module] else None


def _import_problems(spec: JobTypeSpec) -> list[str]:
    problems = []
    if spec.function is not None:
        try:
            target = import_object(spec.function)
        except Exception as exc:
            problems.append(f"function {spec.function!r} cannot be imported: {import_error(exc)}")
        else:
            if not isinstance(target, JobFunction):
                problems.append(f"function {spec.function!r} is not decorated with @job")
    for name in spec.retry_for:
        try:
            exc_type = import_object(name)
        except Exception as exc:
            problems.append(f"retry_for {name!r} cannot be imported: {import_error(exc)}")
            continue
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            problems.append(f"retry_for {name!r} is not an exception class")
    return problems
