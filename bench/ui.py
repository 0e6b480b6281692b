"""The dashboard's figures: live latency on a job page, list pages at depth, browser memory.

- latency: a job page open in headless Chromium while a job reports progress; for each
  `progress` event, the time from its `at` (stamped by the worker in the transaction that
  commits it) to its entry appearing in the page's timeline (a MutationObserver in the
  page, on the same machine's clock).
- list depth: `GET /ui/` (the server-rendered list) at cursors deep in a seeded history
  (bench/seed.py), against `GET /api/v1/jobs` at the same cursor: server time of the page.
- memory: the list page open while jobs run through it, many events a second; the page's
  JS heap, DOM nodes and long tasks sampled as it goes (CDP Performance.getMetrics).

Run: `.venv/bin/python -m bench.ui [latency|depth|memory] ...` (deploy/local/services up first).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from selenium.webdriver.remote.webdriver import WebDriver
from tests.integration.ui_browser import chromium, log_in, wait_for
from tests.support import PASSWORD, start_worker

from bench.common import (
    REPO,
    Scratch,
    admin_connection,
    jobline_env,
    percentile,
    prepare_jobline,
    start_jobline_api,
)
from bench.history import _cursor, _existing, _row_at
from bench.seed import seed

SHIPPED_QUEUES = REPO / "queues.yaml"
# Records, in the page, when each timeline entry appeared (ms since the epoch).
OBSERVE_TIMELINE = """
window.__seen = [];
new MutationObserver((records) => {
  const now = performance.timeOrigin + performance.now();
  for (const r of records) for (const n of r.addedNodes) {
    if (n.nodeType === 1 && n.matches('li[data-seq]')) window.__seen.push([Number(n.dataset.seq), n.dataset.type, n.dataset.at, now]);
  }
}).observe(document.querySelector('[data-timeline]'), {childList: true, subtree: true});
"""
COUNT_LONG_TASKS = """
window.__long = 0;
new PerformanceObserver((list) => { window.__long += list.getEntries().length; })
  .observe({type: 'longtask', buffered: false});
"""


@contextmanager
def stack(logdir: Path, **extra: str) -> Iterator[tuple[str, dict[str, str], str]]:
    """A scratch database and vhost, migrated, an API and the shipped music worker."""
    scratch = Scratch.create("jobline_bench_ui")
    procs: list[Any] = []
    try:
        env = jobline_env(
            scratch,
            logdir,
            JOBLINE_QUEUES_FILE=str(SHIPPED_QUEUES),
            JOBLINE_LOG_LEVEL="INFO",
            purges_queue=False,
            **extra,
        )
        email = prepare_jobline(env)
        api = start_jobline_api(env, logdir)
        procs.append(api)
        procs.append(start_worker("music", env, logdir))
        yield api.base, env, email
    finally:
        for p in reversed(procs):
            p.stop()
        scratch.drop()


def bearer(base: str, email: str) -> httpx.Client:
    r = httpx.post(
        f"{base}/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD}, timeout=30
    )
    r.raise_for_status()
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=60
    )


def latency(events: int, step: float, logdir: Path) -> dict[str, Any]:
    """Progress commit -> appearance on an open job page, p50/p95 over `events` events."""
    with stack(logdir) as (base, _env, email), chromium() as driver:
        api = bearer(base, email)
        log_in(driver, base, email)
        r = api.post(
            "/api/v1/jobs",
            json={
                "type": "music.transcode",
                "payload": {"source": "latency.wav", "chunks": events, "step_seconds": step},
            },
        )
        r.raise_for_status()
        job_id = r.json()["id"]
        driver.get(f"{base}/ui/jobs/{job_id}")
        driver.execute_script(OBSERVE_TIMELINE)
        wait_for(
            driver,
            lambda d: (
                d.execute_script(
                    "return document.querySelector('[data-field=\"state\"]').textContent"
                )
                in ("succeeded", "failed")
            ),
            within=events * step * 3 + 60,
        )
        seen = driver.execute_script("return window.__seen")
        api.close()
    lags = []
    for _seq, kind, at, shown_ms in seen:
        if kind != "progress":
            continue
        lags.append(shown_ms - _epoch_ms(at))
    return {
        "progress_events": len(lags),
        "p50_ms": round(percentile(lags, 50), 1),
        "p95_ms": round(percentile(lags, 95), 1),
        "max_ms": round(max(lags), 1) if lags else None,
        "step_seconds": step,
    }


def _epoch_ms(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def depth(jobs: int, events: int, samples: int, logdir: Path) -> dict[str, Any]:
    """Server time of the list page (and the API's page) at cursors deep in the history."""
    database = "jobline_bench_ui_history"
    if _existing(database) != jobs:
        seed(database, jobs, events, max_event_seconds=600)
    with admin_connection(database) as db, db.cursor() as cur:
        cur.execute("SELECT email, id, is_superuser FROM users")
        accounts = {bool(s): (e, UUID(str(i))) for e, i, s in cur.fetchall()}
    email, owner = accounts[False]
    scratch = Scratch.create()
    out: dict[str, Any] = {"jobs": jobs, "events": events, "pages": []}
    try:
        env = jobline_env(
            scratch,
            logdir,
            JOBLINE_DATABASE_URL=scratch.mysql_url.rsplit("/", 1)[0] + f"/{database}",
        )
        api = start_jobline_api(env, logdir)
        try:
            client = bearer(api.base, email)
            with admin_connection(database) as db, db.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM jobs WHERE owner_id = %s", (str(owner),))
                owned = int(cur.fetchone()[0])
            for d in (0, 1_000, 10_000, owned // 2, owned - 60):
                cursor = None
                if d:
                    row = _row_at(
                        database, "owner_id = %s", (str(owner),), "idx_jobs_owner_created", d
                    )
                    cursor = _cursor(env["JOBLINE_SECRET_KEY"], owner, False, {}, row)
                params: dict[str, str | int] = {
                    "size": 50,
                    **({"cursor": cursor} if cursor else {}),
                }
                timings: dict[str, list[float]] = {"ui": [], "api": []}
                for path, key in (("/ui/", "ui"), ("/api/v1/jobs", "api")):
                    client.get(path, params=params).raise_for_status()  # warm
                    for _ in range(samples):
                        began = time.perf_counter()
                        r = client.get(path, params=params)
                        timings[key].append((time.perf_counter() - began) * 1000)
                        r.raise_for_status()
                out["pages"].append(
                    {
                        "depth": d,
                        "ui_p50_ms": round(percentile(timings["ui"], 50), 2),
                        "ui_p95_ms": round(percentile(timings["ui"], 95), 2),
                        "api_p50_ms": round(percentile(timings["api"], 50), 2),
                        "api_p95_ms": round(percentile(timings["api"], 95), 2),
                    }
                )
                print("  ", out["pages"][-1], flush=True)
            out["owned"] = owned
        finally:
            api.stop()
    finally:
        scratch.drop()
    return out


def memory(seconds: float, jobs_per_second: float, logdir: Path) -> dict[str, Any]:
    """The list page's memory while jobs run through it for `seconds`."""
    samples: list[dict[str, Any]] = []
    with (
        stack(logdir, JOBLINE_MAX_ACTIVE_JOBS_PER_USER="1000000") as (base, env, email),
        chromium() as driver,
    ):
        api = bearer(base, email)
        log_in(driver, base, email)
        driver.execute_script(COUNT_LONG_TASKS)
        driver.execute_cdp_cmd("Performance.enable", {})
        began = time.monotonic()
        submitted = 0
        next_sample = began
        payload = {"source": "m.wav", "chunks": 3, "step_seconds": 0.0}
        while time.monotonic() - began < seconds:
            due = int((time.monotonic() - began) * jobs_per_second)
            while submitted < due:
                api.post("/api/v1/jobs", json={"type": "music.transcode", "payload": payload})
                submitted += 1
            if time.monotonic() >= next_sample:
                metrics = {
                    m["name"]: m["value"]
                    for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
                }
                page = driver.execute_script(
                    "return {rows: document.querySelectorAll('[data-rows] [data-job-id]').length,"
                    " long: window.__long}"
                )
                samples.append(
                    {
                        "t": round(time.monotonic() - began, 1),
                        "jobs": submitted,
                        "heap_mb": round(metrics["JSHeapUsedSize"] / 2**20, 2),
                        "nodes": int(metrics["Nodes"]),
                        "rows": page["rows"],
                        "long_tasks": page["long"],
                    }
                )
                print("  ", samples[-1], flush=True)
                next_sample += max(5.0, seconds / 40)
            time.sleep(0.01)
        time.sleep(3)
        api.close()
        with (
            admin_connection(env["JOBLINE_DATABASE_URL"].rsplit("/", 1)[1]) as db,
            db.cursor() as cur,
        ):
            cur.execute("SELECT COUNT(*) FROM job_events")
            events = int(cur.fetchone()[0])
    return {
        "seconds": seconds,
        "jobs": submitted,
        "events": events,
        "samples": samples,
    }


# Before the page's scripts run: keep a handle on every EventSource the page opens, so
# events can be fed to the page's own listeners.
CAPTURE_SOURCES = """
window.__sources = [];
const Native = window.EventSource;
window.EventSource = function (url, init) {
  const source = new Native(url, init);
  window.__sources.push(source);
  return source;
};
window.EventSource.prototype = Native.prototype;
Object.assign(window.EventSource, {CONNECTING: 0, OPEN: 1, CLOSED: 2});
"""
# Feeds the list page `rows` new jobs, then `rate` progress events a second to random ones
# of them for `seconds`, from a timer in the page; measures frames and long tasks.
FLOOD = """
const [rows, rate, seconds, fresh, done] = arguments;
const source = window.__sources[0];
const ids = [];
const seq = new Map();
const now = () => new Date().toISOString();
function send(type, id, data) {
  const s = (seq.get(id) || 0) + 1;
  seq.set(id, s);
  source.dispatchEvent(new MessageEvent(type, {data: JSON.stringify(
    {seq: s, job_id: id, type, attempt: 1, at: now(), data})}));
}
for (let i = 0; i < rows; i++) {
  const id = crypto.randomUUID();
  ids.push(id);
  send('submitted', id, {type: 'music.transcode', queue: 'music', payload: {}, owner_id: null});
}
const frames = [];
let last = performance.now();
let long = 0;
new PerformanceObserver((l) => { long += l.getEntries().length; }).observe({type: 'longtask'});
(function frame(t) { frames.push(t - last); last = t; if (!window.__stop) requestAnimationFrame(frame); })(last);
let sent = 0;
const began = performance.now();
const timer = setInterval(() => {
  const due = Math.floor((performance.now() - began) / 1000 * rate);
  while (sent < due) {
    if (Math.random() < fresh) {
      send('submitted', crypto.randomUUID(), {type: 'music.transcode', queue: 'music', payload: {}, owner_id: null});
    } else {
      send('progress', ids[Math.floor(Math.random() * ids.length)], {progress: sent % 101, message: 'x'});
    }
    sent += 1;
  }
  if (performance.now() - began > seconds * 1000) {
    clearInterval(timer);
    window.__stop = true;
    setTimeout(() => done({sent, long, frames: frames.slice(2),
      rows: document.querySelectorAll('[data-rows] [data-job-id]').length}), 200);
  }
}, 10);
"""


def flood(
    rows: int, rate: float, seconds: float, logdir: Path, fresh: float = 0.0, css: str = ""
) -> dict[str, Any]:
    """The list page with `rows` live rows taking `rate` events a second, fed in the page;
    a `fresh` share of them are new jobs (past the list's cap: counted, not drawn)."""
    with stack(logdir) as (base, _env, email), chromium() as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE_SOURCES})
        if css:
            # An experiment's extra rules (the page's policy refuses inline styles).
            driver.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})
            driver.execute_cdp_cmd(
                "Page.addScriptToEvaluateOnNewDocument",
                {
                    "source": "document.addEventListener('DOMContentLoaded', () => {"
                    f"const s = document.createElement('style'); s.textContent = {json.dumps(css)};"
                    "document.head.append(s); });"
                },
            )
        log_in(driver, base, email)
        driver.execute_cdp_cmd("Performance.enable", {})
        driver.set_script_timeout(seconds + 120)
        result = driver.execute_async_script(FLOOD, rows, rate, seconds, fresh)
        metrics = {
            m["name"]: m["value"]
            for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
        }
    frames = result.pop("frames")
    return {
        **result,
        "rate": rate,
        "fresh": fresh,
        "seconds": seconds,
        "frames": len(frames),
        "frame_p50_ms": round(percentile(frames, 50), 1),
        "frame_p95_ms": round(percentile(frames, 95), 1),
        "frame_p99_ms": round(percentile(frames, 99), 1),
        "frame_max_ms": round(max(frames), 1),
        "heap_mb": round(metrics["JSHeapUsedSize"] / 2**20, 2),
        "nodes": int(metrics["Nodes"]),
    }


PAGE_STATE = """
const items = [...document.querySelectorAll('[data-timeline] li[data-seq]')].map(e => Number(e.dataset.seq));
const earlier = document.querySelector('[data-action="earlier"]');
return {entries: items.length, first: items[0], last: items[items.length - 1],
  distinct: new Set(items).size, contiguous: items.every((s, i) => i === 0 || s === items[i - 1] + 1),
  earlier: earlier && !earlier.hidden,
  state: document.querySelector('[data-field="state"]').textContent};
"""


def long_timeline(events: int, seconds: float, logdir: Path) -> dict[str, Any]:
    """A job page open while its job records `events` progress events (every call written)."""
    out: dict[str, Any] = {"events": events}
    with (
        stack(logdir, JOBLINE_PROGRESS_MIN_INTERVAL_MS="0") as (base, _env, email),
        chromium() as driver,
    ):
        api = bearer(base, email)
        log_in(driver, base, email)
        r = api.post(
            "/api/v1/jobs",
            # chatty reports in bursts of 100 calls with a pause after each; with the
            # coalescing interval at 0 about one write lands per burst.
            json={"type": "music.chatty", "payload": {"calls": events * 100, "seconds": seconds}},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        driver.get(f"{base}/ui/jobs/{job_id}")
        driver.execute_cdp_cmd("Performance.enable", {})
        wait_for(
            driver,
            lambda d: d.execute_script(PAGE_STATE)["state"] in ("succeeded", "failed"),
            within=seconds * 20 + 300,
        )
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        out["last_seq"] = job["last_seq"]
        out["followed"] = driver.execute_script(PAGE_STATE)
        heap = {
            m["name"]: m["value"]
            for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
        }
        out["followed"]["heap_mb"] = round(heap["JSHeapUsedSize"] / 2**20, 2)
        out["followed"]["nodes"] = int(heap["Nodes"])
        # Three pages back with "Show earlier events".
        for _ in range(3 if out["followed"]["earlier"] else 0):
            before = driver.execute_script(PAGE_STATE)["first"]
            driver.execute_script("document.querySelector('[data-action=\"earlier\"]').click()")

            def went_back(d: WebDriver, b: int = before) -> bool:
                first: int = d.execute_script(PAGE_STATE)["first"]
                return first < b

            wait_for(driver, went_back)
        out["after_three_earlier"] = driver.execute_script(PAGE_STATE)
        # Opened afresh: the newest page only, rendered by the server.
        began = time.perf_counter()
        driver.get(f"{base}/ui/jobs/{job_id}")
        out["reload_seconds"] = round(time.perf_counter() - began, 3)
        out["reloaded"] = driver.execute_script(PAGE_STATE)
        timings = []
        for _ in range(20):
            t = time.perf_counter()
            api.get(f"/ui/jobs/{job_id}").raise_for_status()
            timings.append((time.perf_counter() - t) * 1000)
        out["server_page_p50_ms"] = round(percentile(timings, 50), 1)
        api.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ui")
    parser.add_argument("what", choices=("latency", "depth", "memory", "flood", "timeline"))
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--css", default="", help="extra CSS rules to try (flood)")
    parser.add_argument("--fresh", type=float, default=0.0, help="share of new jobs (flood)")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--step", type=float, default=0.3)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--history-events", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="jobs per second (memory)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    # A stop (SIGTERM) unwinds like Ctrl-C: the stack's processes stop, its database goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    logdir = REPO / "var" / "bench-ui"
    if args.what == "latency":
        result = latency(args.events, args.step, logdir)
    elif args.what == "depth":
        result = depth(args.jobs, args.history_events, args.samples, logdir)
    elif args.what == "timeline":
        result = long_timeline(args.events, args.seconds, logdir)
    elif args.what == "flood":
        result = flood(args.rows, args.rate, args.seconds, logdir, args.fresh, args.css)
    else:
        result = memory(args.seconds, args.rate, logdir)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
