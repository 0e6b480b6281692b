"""Settings (env prefix ``JOBLINE_``) and the Tortoise config that aerich reads."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobline.errors import ConfigError

if TYPE_CHECKING:
    from jobline.dialects import Dialect

SQLITE_DEFAULT = "sqlite://var/jobline.sqlite3"
EMBEDDED_BROKER = "filesystem://"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
DEV_SECRET_FILE = "secret_key"
MODEL_MODULES = [
    "jobline.jobs.models",
    "jobline.accounts.models",
    "jobline.audit.models",
    "aerich.models",
]
# The repository root when installed editable; migrations/ and queues.yaml live there.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shipped_migrations() -> Path:
    """The aerich migrations that come with this jobline.

    jobline/migrations links to the checkout's migrations/ and is a real directory in an
    installed wheel, so a project that installs jobline migrates without a checkout.
    """
    shipped = Path(__file__).resolve().parent / "migrations"
    return shipped if shipped.is_dir() else PROJECT_ROOT / "migrations"


# What a deployment sets: where the database and the broker are, its secrets, ports and
# limits (README "Settings"). Every other setting is tuning, with a default that suits
# (README, folded away); `jobline check-config` prints them in these two groups.
USER_SETTINGS = frozenset(
    {
        "env",
        "database_url",
        "broker_url",
        "secret_key",
        "queues_file",
        "var_dir",
        "flower_basic_auth",
        "api_host",
        "api_port",
        "api_workers",
        "cookie_secure",
        "cors_origins",
        "access_token_lifetime_seconds",
        "log_format",
        "log_level",
        "audit_enabled",
        "worker_metrics_host",
        "worker_metrics_port",
        "worker_lost_seconds",
        "flower_host",
        "flower_port",
        "flower_broker_api",
        "sse_ping_seconds",
        "max_payload_bytes",
        "max_json_depth",
        "body_read_timeout_seconds",
        "password_min_length",
        "password_max_length",
        "login_failures_per_account",
        "login_failures_per_address",
        "login_window_seconds",
        "max_streams_per_user",
        "max_active_jobs_per_user",
        "max_progress_message_chars",
        "max_result_bytes",
        "max_error_message_chars",
        "reconcile_interval_seconds",
    }
)


class Settings(BaseSettings):
    """Everything jobline reads from the environment or `.env`."""

    model_config = SettingsConfigDict(env_prefix="JOBLINE_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = SQLITE_DEFAULT
    broker_url: str = EMBEDDED_BROKER
    secret_key: str = ""
    queues_file: Path = Path("queues.yaml")
    var_dir: Path = Path("var")
    max_payload_bytes: int = Field(262_144, gt=0)
    sse_ping_seconds: float = Field(15.0, gt=0)
    flower_basic_auth: str | None = None
    migrations_dir: Path = Field(
        default_factory=shipped_migrations, description="the aerich migrations (mysql/, sqlite/)"
    )
    db_pool_max: int = Field(20, ge=1, description="Tortoise pool size per process")
    sqlite_busy_timeout_ms: int = Field(
        30_000, ge=0, description="SQLite: how long a writer waits for the file's write lock"
    )
    broker_poll_seconds: float = Field(
        0.1, gt=0, description="embedded broker: how often an idle worker looks for messages"
    )
    preflight_timeout_seconds: float = Field(
        10.0, gt=0, description="start-up: how long the database and the broker get to answer"
    )
    dev_ready_seconds: float = Field(
        60.0, gt=0, description="jobline dev: how long to wait for the API to become ready"
    )
    dev_stop_seconds: float = Field(
        20.0, gt=0, description="jobline dev: how long children get to stop before SIGKILL"
    )
    progress_min_interval_ms: int = Field(
        250, ge=0, description="a job's progress is written at most this often (latest wins)"
    )
    started_defer_ms: int = Field(
        50,
        ge=0,
        description="a job done this fast commits started with its outcome, once (0: never)",
    )
    # Live streams (SSE) and the one event feed per API process: see jobline/streaming/.
    sse_retry_ms: int = Field(2000, gt=0, description="the reconnect delay streams advise")
    sse_send_timeout_seconds: float = Field(
        30.0, gt=0, description="a stream whose client reads nothing for this long is closed"
    )
    sse_buffer_events: int = Field(
        1000, ge=1, description="events buffered per follower; past it, it re-reads the database"
    )
    feed_notifications: bool = Field(
        True, description="publish and consume event notices on the broker (off: poll only)"
    )
    events_exchange: str = Field("jobline.events", description="fanout exchange of event notices")
    feed_notices_linger_seconds: float = Field(
        30.0,
        ge=0,
        description="an API process consumes notices this long after its last follower left",
    )
    feed_notices_probe_seconds: float = Field(
        0.25,
        ge=0,
        description="no notices are sent this long after one found no follower (0: always sent)",
    )
    feed_poll_seconds: float = Field(
        1.0, gt=0, description="safety-net read with notices, and the read interval when idle"
    )
    feed_fast_poll_seconds: float = Field(
        0.2, gt=0, description="read interval without notices (embedded broker, notices off)"
    )
    feed_min_read_interval_ms: int = Field(
        20, ge=0, description="a burst of notices costs the feed at most one read per interval"
    )
    feed_batch: int = Field(500, ge=1, description="events per read of the feed and of replays")
    feed_gap_seconds: float = Field(
        5.0, gt=0, description="how long an unseen event id holds back per-user streams"
    )
    api_gc_thresholds: tuple[int, int, int] | None = Field(
        (50_000, 20, 100),
        description="gc.set_threshold for an API process after start-up (null: CPython's)",
    )
    broker_publish_timeout_seconds: float = Field(
        5.0, gt=0, description="longest wait for one publish (connect + publisher confirm)"
    )
    # The outbox relay (queueing/relay.py): in every API process and as `jobline relay`.
    api_relay: bool = Field(True, description="run the outbox relay inside each API process")
    relay_interval_seconds: float = Field(
        1.0, gt=0, description="idle wait between rounds; first retry delay of a failed publish"
    )
    relay_batch: int = Field(100, ge=1, description="outbox rows claimed per round")
    relay_concurrency: int = Field(8, ge=1, description="publishes in flight per relay")
    relay_lease_seconds: float = Field(
        60.0, gt=0, description="a claimed row is not published by anyone else for this long"
    )
    relay_retry_max_seconds: float = Field(30.0, gt=0, description="cap of a row's retry delay")
    # Reconciliation (queueing/reconcile.py), run by every relay: a queued job whose message
    # the broker lost is published again once two rounds found it lost. The grace, two
    # intervals, one more for the management API's lag and the relay's second bound how
    # long a loss goes unnoticed: 20 + 2 x 10 + 10 + 1 s, within a minute.
    reconcile_interval_seconds: float = Field(
        10.0,
        ge=0,
        description="how often queued jobs are checked against the broker's queues, "
        "and lost ones published again (0: never; RabbitMQ only)",
    )
    reconcile_grace_seconds: float = Field(
        20.0,
        gt=0,
        description="a job queued more recently is not counted against the broker "
        "(longer than the management API's statistics lag)",
    )
    reconcile_max_per_round: int = Field(
        500, ge=1, description="jobs published again per domain in one reconciliation round"
    )
    reconcile_lock_wait_seconds: float = Field(
        30.0, ge=0, description="`jobline reconcile` waits this long for a round running elsewhere"
    )
    broker_recheck_seconds: float = Field(
        5.0, gt=0, description="after a failed publish, requests leave publishing to the relay"
    )
    # Submits in batches (jobs/batching.py): concurrent POSTs share one transaction, one
    # pipelined publish and one transaction of `queued` events.
    submit_batching: bool = Field(True, description="batch concurrent submits (AMQP brokers)")
    submit_batch_max: int = Field(200, ge=1, description="jobs stored and published together")
    # Measured (bench.ablation): fewer batches in flight make bigger ones; 2 lets one batch
    # be stored while another is published.
    submit_batches_in_flight: int = Field(
        2, ge=1, description="batches being stored or published at once per API process"
    )
    # "commit": a batched submit is answered once its job and outbox row commit (state
    # `pending`), its publish and `queued` follow; "queued": once the broker confirmed it.
    # The default since it was measured (bench/README.md, "Fifth pass"): the committed
    # outbox row already guarantees the publish, so waiting for RabbitMQ's confirm bought
    # the client nothing but latency (p99 at 800 req/s 94 -> 59 ms, submit +33% at 50).
    submit_answer: Literal["queued", "commit"] = Field(
        "commit", description="when a batched submit is answered: at commit or after `queued`"
    )
    publish_idle_reconnect_seconds: float = Field(
        30.0, gt=0, description="a publishing connection unused this long is reopened first"
    )
    auth_cache_seconds: float = Field(
        5.0, ge=0, description="how long an API process reuses a looked-up user (0: never)"
    )
    # Fair shares (queueing/fairness.py): a user at a domain's max_running_per_user.
    fair_share_defer_seconds: float = Field(
        2.0, gt=0, description="a job whose owner is at the domain's cap comes back after this"
    )
    fair_share_defer_max_seconds: float = Field(
        60.0, gt=0, description="longest deferral, however long the owner's backlog"
    )
    fair_share_backlog_per_slot: int = Field(
        20, ge=1, description="an owner's jobs waiting beyond this many per slot come back later"
    )
    # Workers' heartbeats (queueing/heartbeat.py) and the watch over them beside the relay
    # (queueing/lost_workers.py): a running job of a worker silent this long is recovered.
    worker_lost_seconds: float = Field(
        30.0,
        gt=0,
        description="a running job whose worker has not beaten for this long is recorded"
        " worker_lost and retried (or failed) by its policy",
    )
    worker_heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        description="how often a worker process proves it is alive (one UPDATE), and how often"
        " relays look for lost ones",
    )
    cancel_poll_seconds: float = Field(
        1.0, gt=0, description="how often a worker checks whether its running job was cancelled"
    )
    consumer_timeout_margin_seconds: int = Field(
        300, ge=0, description="RabbitMQ consumer_timeout beyond the longest job + retry wait"
    )
    access_token_lifetime_seconds: int = Field(3600, gt=0)
    # None: on in production, off elsewhere (a browser drops a Secure cookie over plain http).
    cookie_secure: bool | None = Field(
        None, description="send the auth cookie over HTTPS only (default: on in production)"
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Operations (deploy/, metrics, audit log, logs): see deploy/README.md.
    api_workers: int = Field(2, ge=1, description="gunicorn worker processes")
    graceful_timeout_seconds: int = Field(
        90, ge=1, description="gunicorn: how long a stopping worker lets SSE streams drain"
    )
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    audit_enabled: bool = True
    audit_queue_max: int = Field(
        10_000, ge=1, description="audit records held in memory; past it new ones are dropped"
    )
    audit_batch_max: int = Field(500, ge=1, description="audit rows per INSERT")
    audit_flush_seconds: float = Field(0.5, gt=0, description="longest wait before a write")
    audit_prune_batch: int = Field(5_000, ge=1, description="rows deleted per statement")
    audit_retention_days: float = Field(
        30.0, gt=0, description="audit rows older than this are deleted by the API, on a schedule"
    )
    audit_prune_interval_seconds: float = Field(
        3600.0, gt=0, description="how often each API process deletes expired audit rows"
    )
    metrics_refresh_seconds: float = Field(
        15.0, gt=0, description="how often the API counts active jobs per state"
    )
    metrics_token: str | None = Field(
        None, description="the API's /metrics asks for it as a bearer token when set"
    )
    metrics_public: bool = Field(
        False, description="production: serve /metrics without a token (behind a private network)"
    )
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = Field(
        None, ge=1, le=65535, description="a worker serves /metrics here when set"
    )
    flower_host: str = "127.0.0.1"
    flower_port: int = Field(5555, ge=1, le=65535)
    flower_url: str | None = Field(
        None,
        description="where browsers reach Flower (the dashboard links to it); default: host and port",
    )
    # The dashboard (ui/): how much a page holds, so a long history or a busy list stays light.
    ui_timeline_page: int = Field(
        100, ge=1, le=100, description="events a job page shows at first, and per earlier page"
    )
    ui_timeline_max: int = Field(
        500, ge=1, description="timeline entries a job page keeps; older ones page back in"
    )
    ui_list_max_rows: int = Field(
        1000, ge=1, description="rows a jobs page holds; newer jobs past it are announced"
    )
    flower_broker_api: str | None = Field(
        None, description="RabbitMQ management API; derived from the broker URL when unset"
    )
    # Each worker process is a node of its own (DOMAIN@host:pid): a restarted one leaves its
    # old name behind, offline.
    flower_purge_offline_seconds: int | None = Field(
        600, ge=1, description="Flower forgets a worker offline this long (none: never)"
    )

    # Hardening against hostile input and abuse: see api/security.py, api/limits.py,
    # accounts/throttle.py, accounts/sessions.py and queueing/limits.py.
    cors_origins: list[str] = Field(
        [], description="origins allowed cross-site, a JSON list (empty: CORS closed)"
    )
    # MariaDB refuses a JSON document nested 32 deep; a job's events nest its payload and
    # result one level below the top, as deep as the request body does.
    max_json_depth: int = Field(
        31, ge=1, le=31, description="deepest nesting of a JSON request body or job result"
    )
    body_read_timeout_seconds: float = Field(
        30.0, gt=0, description="a request body not fully received within this gets 408"
    )
    password_min_length: int = Field(12, ge=1, description="shortest password accepted")
    password_max_length: int = Field(
        1024, ge=1, description="longest password accepted (bounds hashing work)"
    )
    login_failures_per_account: int = Field(
        5, ge=1, description="failed logins for one account within the window before 429"
    )
    login_failures_per_address: int = Field(
        50, ge=1, description="failed logins from one client address within the window"
    )
    login_window_seconds: int = Field(900, ge=1, description="window of the login counters")
    # None: open in development and test, closed in production (accounts come from
    # `jobline users create` or a superuser).
    registration_open: bool | None = Field(
        None, description="POST /auth/register answers (default: not in production)"
    )
    registrations_per_address: int = Field(
        10, ge=1, description="registration attempts from one client address within the window"
    )
    registration_window_seconds: int = Field(
        3600, ge=1, description="window of the registration counter"
    )
    sse_session_check_seconds: float = Field(
        2.0, gt=0, description="how often open streams re-check their session (logout, revocation)"
    )
    max_streams_per_user: int = Field(
        10, ge=1, description="SSE streams one user may hold open at once, per API process"
    )
    max_active_jobs_per_user: int = Field(
        10_000, ge=1, description="jobs not yet finished one user may have; more get 429"
    )
    active_jobs_recheck_seconds: float = Field(
        5.0,
        ge=0,
        description="an owner's unfinished jobs are recounted after this long, or at the cap",
    )
    max_progress_message_chars: int = Field(
        1000, ge=1, description="a longer progress message is cut (worker side)"
    )
    max_result_bytes: int = Field(
        65_536, ge=1, description="a larger job result fails the job (RESULT_TOO_LARGE)"
    )
    max_error_message_chars: int = Field(
        4000, ge=1, description="a longer exception message of a failed job is cut"
    )
    uvicorn_keep_alive_seconds: int = Field(
        5, ge=1, description="an idle keep-alive connection is closed after this"
    )
    uvicorn_limit_concurrency: int | None = Field(
        None, ge=1, description="connections+tasks per API process beyond which it answers 503"
    )

    @model_validator(mode="after")
    def _beats_fit_the_bound(self) -> Settings:
        # Two missed beats must not pass for a lost worker: a beat may wait on a busy database.
        if self.worker_heartbeat_seconds * 2 > self.worker_lost_seconds:
            raise ValueError(
                "JOBLINE_WORKER_HEARTBEAT_SECONDS must be at most half of"
                f" JOBLINE_WORKER_LOST_SECONDS ({self.worker_lost_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if len(self.secret_key) < 32:
            problems.append("JOBLINE_SECRET_KEY must be set to at least 32 characters")
        if self.database.embedded:
            problems.append(f"JOBLINE_DATABASE_URL must not be {self.database.label}")
        if self.broker_url.startswith(EMBEDDED_BROKER):
            problems.append("JOBLINE_BROKER_URL must not be the embedded broker")
        if self.cookie_secure is False:
            problems.append(
                "JOBLINE_COOKIE_SECURE must not be false (the session cookie would travel "
                "over plain http; it defaults to on in production)"
            )
        public_worker_metrics = self.worker_metrics_port is not None and (
            self.worker_metrics_host not in LOOPBACK
        )
        if public_worker_metrics and not self.metrics_public:
            problems.append(
                "JOBLINE_WORKER_METRICS_HOST must be a loopback address (a worker's /metrics "
                "has no token), or JOBLINE_METRICS_PUBLIC=true says it is on a private network"
            )
        if problems:
            raise ValueError("production refuses unsafe settings: " + "; ".join(problems))
        return self

    def metrics_open_without_token(self) -> bool:
        """Whether the API serves /metrics to anyone: never in production unless
        JOBLINE_METRICS_PUBLIC says so, never once JOBLINE_METRICS_TOKEN is set."""
        if self.metrics_token:
            return False
        return self.metrics_public or self.env != "production"

    @property
    def secure_cookies(self) -> bool:
        """Whether the session cookie is Secure (and `__Host-` prefixed): on in production."""
        return self.cookie_secure if self.cookie_secure is not None else self.env == "production"

    @property
    def registration_is_open(self) -> bool:
        """Whether anyone may register: by default in development and test, never in production."""
        if self.registration_open is not None:
            return self.registration_open
        return self.env != "production"

    @property
    def database(self) -> Dialect:
        """The configured database's dialect: its SQL and what it supports."""
        # Imported here: the HTTP client's CLI reads Settings too and must not load the
        # ORM or a driver (tests/unit/test_client_imports.py).
        from jobline.dialects import dialect_for_url

        return dialect_for_url(self.database_url)

    @property
    def dialect(self) -> str:
        """The configured database's dialect name (its migrations' directory)."""
        return self.database.name

    def resolved_secret(self) -> str:
        """The JWT secret: the configured one, or one generated once into var/ in development."""
        if self.secret_key:
            return self.secret_key
        path = self.var_dir / DEV_SECRET_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def broker_dir(self) -> Path:
        return (self.var_dir / "broker").resolve()


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(settings_problems(exc)) from None


def settings_problems(exc: ValidationError) -> str:
    """One line per problem, named by its variable (pydantic's own text spans several lines)."""
    lines = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"JOBLINE_{name}: {message}" if name else message)
    return "\n".join(lines)


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """Tortoise/aerich config for the configured database."""
    url = settings.database.tortoise_connection(
        settings.database_url,
        pool_max=settings.db_pool_max,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    return {
        "connections": {"default": url},
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


RABBITMQ_MANAGEMENT_PORT = 15672


def management_api(settings: Settings) -> str | None:
    """RabbitMQ's management API (Flower's broker tab, the reconciler's counts, the
    dashboard): JOBLINE_FLOWER_BROKER_API, or the first broker URL's host on the management
    port with its credentials; None for a broker that is not RabbitMQ."""
    if settings.flower_broker_api:
        return settings.flower_broker_api
    first = settings.broker_url.split(";")[0].strip()
    url = urlsplit(first)
    if not url.scheme.startswith("amqp"):
        return None
    creds = ""
    if url.username:
        creds = quote(unquote(url.username), safe="")
        if url.password:
            creds += ":" + quote(unquote(url.password), safe="")
        creds += "@"
    return f"http://{creds}{url.hostname or 'localhost'}:{RABBITMQ_MANAGEMENT_PORT}/api/"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages and listings."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def __getattr__(name: str) -> Any:
    # aerich imports TORTOISE_ORM; computing it lazily keeps importing this module free of I/O.
    if name == "TORTOISE_ORM":
        return tortoise_config(get_settings())
    raise AttributeError(name)
