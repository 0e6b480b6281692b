"""Helpers of the dashboard's browser tests: headless Chromium, users, a cutting proxy."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import FINAL, JOBLINE, PASSWORD, REPO, WAIT_SECONDS

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)
ARTIFACTS = REPO / "var" / "test-artifacts" / "ui"
T = TypeVar("T")


def chromium_path() -> str:
    """Debian's chromium (deploy/local/programs)."""
    found = shutil.which("chromium")
    assert found, "chromium is not installed: deploy/local/services up installs it"
    return found


def chromedriver_path() -> str:
    found = shutil.which("chromedriver")
    assert found, "chromedriver is not installed: deploy/local/services up installs it"
    return found


@contextmanager
def chromium(
    width: int = 1280, height: int = 900, extra_flags: tuple[str, ...] = ()
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, its console and network logs kept."""
    profile = tempfile.mkdtemp(prefix="jobline-chromium-")
    options = webdriver.ChromeOptions()
    for flag in (*CHROMIUM_FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = chromium_path()
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver_path()))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: WebDriver, check: Callable[[WebDriver], T], within: float = WAIT_SECONDS) -> T:
    """The first truthy answer of `check`, polled (selenium's wait, with a clear message)."""
    result: T = WebDriverWait(driver, within, poll_frequency=0.05).until(
        check, message=f"waited {within}s on {driver.current_url}"
    )
    return result


def find(driver: WebDriver | WebElement, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def find_all(driver: WebDriver | WebElement, css: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, css)


def shoot(driver: WebDriver, name: str) -> Path:
    """A screenshot of the page under var/test-artifacts/ui/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


@dataclass
class Account:
    """A user on the live server, with a bearer client for the API side of a test."""

    email: str
    id: str
    client: httpx.Client
    jobs: list[str] = field(default_factory=list)

    def submit(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post("/api/v1/jobs", json={"type": type, "payload": payload})
        assert r.status_code == 202, r.text
        job: dict[str, Any] = r.json()
        self.jobs.append(job["id"])
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def wait_state(self, job_id: str, states: set[str]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            job = self.job(job_id)
            if job["state"] in states:
                return job
            assert time.monotonic() < deadline, f"{job_id} still {job['state']}"
            time.sleep(0.05)

    def wait_final(self, job_id: str) -> dict[str, Any]:
        return self.wait_state(job_id, FINAL)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"size": 100, **({"cursor": cursor} if cursor else {})}
            r = self.client.get(f"/api/v1/jobs/{job_id}/events", params=params)
            assert r.status_code == 200, r.text
            out.extend(r.json()["items"])
            cursor = r.json()["next_page"]
            if not cursor:
                return out

    def job_ids(self) -> list[str]:
        r = self.client.get("/api/v1/jobs", params={"size": 100})
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["items"]]


def account(base: str, *, superuser: bool = False, env: Mapping[str, str] | None = None) -> Account:
    """A new user (or superuser, made by `jobline users create`), logged in for the API."""
    email = f"{'admin' if superuser else 'ui'}-{uuid.uuid4().hex[:10]}@example.com"
    anon = httpx.Client(base_url=base, timeout=30)
    try:
        if superuser:
            made = subprocess.run(
                [JOBLINE, "users", "create", email, "--superuser"],
                input=PASSWORD + "\n",
                env={**os.environ, **(env or {})},
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=WAIT_SECONDS,
            )
            assert made.returncode == 0, made.stdout + made.stderr
        else:
            r = anon.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
            assert r.status_code == 201, r.text
        r = anon.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
    finally:
        anon.close()
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    me = client.get("/api/v1/users/me").json()
    return Account(email, me["id"], client)


def log_in(driver: WebDriver, base: str, email: str, password: str = PASSWORD) -> None:
    """Through the login page; done when the jobs list is live."""
    driver.get(f"{base}/ui/login")
    form = find(driver, 'form[data-form="login"]')
    find(form, 'input[name="username"]').send_keys(email)
    find(form, 'input[name="password"]').send_keys(password)
    find(form, '[type="submit"]').click()
    wait_for(driver, lambda d: d.current_url.rstrip("/").endswith("/ui"))
    wait_live(driver)


def wait_live(driver: WebDriver) -> None:
    """Until the page's stream is open (list.js / job.js set data-live)."""
    wait_for(
        driver,
        lambda d: d.execute_script(
            "const p = document.querySelector('[data-job-page]');"
            "return (p ? p.dataset.live : document.body.dataset.live) === 'open';"
        ),
    )


def timeline(driver: WebDriver) -> list[tuple[int, str]]:
    """The job page's timeline: (seq, type) of each entry, in page order."""
    pairs: list[tuple[int, str]] = driver.execute_script(
        "return [...document.querySelectorAll('[data-seq]')]"
        ".map(e => [Number(e.dataset.seq), e.dataset.type]);"
    )
    return [(int(s), str(t)) for s, t in pairs]


def offsite_requests(driver: webdriver.Chrome, base: str) -> list[str]:
    """Every URL the page asked for that is not on its own origin (resource timing and
    Chrome's network log)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    urls: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(performance.getEntriesByType('navigation').map(e => e.name));"
    )
    import json

    # selenium leaves ChromiumDriver.get_log unannotated.
    for entry in driver.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    # Chrome's own pages (chrome://, chrome-untrusted:// of its new tab) are not the page's.
    network = ("http://", "https://", "ws://", "wss://")
    return sorted({u for u in urls if u.startswith(network) and not u.startswith(origin)})


def console_errors(driver: webdriver.Chrome, allowed_statuses: tuple[int, ...] = ()) -> list[str]:
    """The browser log's errors; a failed load with an expected status (a 404 page, the 400
    of a wrong password, a 409 or 422 answer the page shows) is not one."""
    problems = []
    # selenium leaves ChromiumDriver.get_log unannotated.
    for entry in driver.get_log("browser"):  # type: ignore[no-untyped-call]
        if entry["level"] != "SEVERE":
            continue
        text = entry["message"]
        if entry.get("source") == "network" and any(
            f"status of {s} " in text for s in allowed_statuses
        ):
            continue
        problems.append(text)
    return problems


class CuttingProxy:
    """A TCP proxy that cuts a connection once it has carried `cut_after` bytes of an
    event stream to the browser (pages and scripts pass whole)."""

    def __init__(self, target: str, cut_after: int) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cut_after = cut_after
        self.cuts = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def start(self) -> str:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self.loop
        ).result()
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        async def close() -> None:
            if self.server is not None:
                self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(self.host, self.port)

        async def upstream() -> None:
            while data := await client_r.read(65536):
                up_w.write(data)
                await up_w.drain()
            up_w.close()

        task = asyncio.create_task(upstream())
        streamed = -1  # bytes of an event stream sent; -1: none seen on this connection
        try:
            while data := await up_r.read(4096):
                if streamed < 0 and b"text/event-stream" in data:
                    streamed = 0
                if streamed >= 0:
                    data = data[: self.cut_after - streamed]
                    streamed += len(data)
                client_w.write(data)
                await client_w.drain()
                if streamed >= self.cut_after:
                    self.cuts += 1
                    break
        except ConnectionError:
            pass
        finally:
            task.cancel()
            client_w.close()
            up_w.close()
