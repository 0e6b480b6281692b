"""The dashboard in a real browser: headless Chromium against a real API server and workers
(MariaDB + RabbitMQ), found by the hooks of CONTRACT section 9."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from jobline.config import Settings
from tests.integration.ui_browser import (
    Account,
    CuttingProxy,
    account,
    chromium,
    console_errors,
    find,
    find_all,
    log_in,
    offsite_requests,
    shoot,
    timeline,
    wait_for,
    wait_live,
)
from tests.support import PASSWORD, Proc, start_server

pytestmark = pytest.mark.integration

# A job that runs long enough to be watched, cancelled, or cut off mid-stream.
SLOW = {"source": "slow.wav", "chunks": 400, "step_seconds": 0.05}
QUICK = {"source": "quick.wav", "chunks": 8, "step_seconds": 0.05}
# Bytes of an event stream the proxy lets through per connection: a few events, mid-frame.
CUT_AFTER_BYTES = 1200
# JOBLINE_MAX_STREAMS_PER_USER's default, which the server under test keeps.
MAX_STREAMS_PER_USER = 10
# How long a closed page's stream may take to be released on the server.
RELEASE_SECONDS = 10.0


@pytest.fixture(scope="module")
def ui_server(migrated: Settings, stack_env: dict[str, str], logdir: Path) -> Iterator[str]:
    """An API process advising a short reconnect delay, so a cut stream resumes quickly."""
    proc, base = start_server({**stack_env, "JOBLINE_SSE_RETRY_MS": "100"}, logdir)
    yield base
    proc.stop()


@pytest.fixture(scope="module")
def alice(ui_server: str) -> Iterator[Account]:
    user = account(ui_server)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def bob(ui_server: str) -> Iterator[Account]:
    user = account(ui_server)
    yield user
    user.client.close()


def assert_clean(driver: webdriver.Chrome, base: str, *statuses: int) -> None:
    """Nothing left the origin, and the console holds no error but the expected answers."""
    assert offsite_requests(driver, base) == []
    assert console_errors(driver, statuses) == []


def test_log_in_wrong_then_right_then_out(ui_server: str, alice: Account) -> None:
    with chromium() as driver:
        driver.get(f"{ui_server}/")
        wait_for(driver, lambda d: "/ui/login" in d.current_url)
        form = find(driver, 'form[data-form="login"]')
        find(form, 'input[name="username"]').send_keys(alice.email)
        find(form, 'input[name="password"]').send_keys("not-the-password")
        find(form, '[type="submit"]').click()
        error = wait_for(driver, lambda d: find_all(d, "[data-error]"))
        assert "Wrong email or password" in error[0].text
        shoot(driver, "login-wrong")
        password = find(form, 'input[name="password"]')
        password.clear()
        password.send_keys(PASSWORD)
        find(form, '[type="submit"]').click()
        wait_for(driver, lambda d: d.current_url.rstrip("/").endswith("/ui"))
        wait_live(driver)
        assert alice.email in find(driver, "header").text
        find(driver, 'button[data-action="logout"]').click()
        wait_for(driver, lambda d: "/ui/login" in d.current_url)
        driver.get(f"{ui_server}/ui/")
        wait_for(driver, lambda d: "/ui/login" in d.current_url)
        assert_clean(driver, ui_server, 400)


def test_the_login_throttle_says_how_long_to_wait(ui_server: str) -> None:
    victim = account(ui_server)
    with chromium() as driver:
        driver.get(f"{ui_server}/ui/login")
        form = find(driver, 'form[data-form="login"]')
        find(form, 'input[name="username"]').send_keys(victim.email)
        password = find(form, 'input[name="password"]')
        message = find(driver, "[data-login-message]")
        for attempt in range(6):
            password.clear()
            password.send_keys(f"wrong-{attempt}")
            find(form, '[type="submit"]').click()
            wait_for(driver, lambda d: message.text and find(form, '[type="submit"]').is_enabled())
            if "Too many" in message.text:
                break
        assert "Too many failed logins: try again in" in message.text
        assert message.get_attribute("data-error") is not None
        assert_clean(driver, ui_server, 400, 429)
    victim.client.close()


def test_a_job_submitted_elsewhere_appears_live_and_succeeds(
    ui_server: str, alice: Account, workers: dict[str, Proc]
) -> None:
    with chromium() as driver:
        log_in(driver, ui_server, alice.email)
        job = alice.submit("music.transcode", QUICK)
        row = wait_for(driver, lambda d: find_all(d, f'[data-job-id="{job["id"]}"]'))[0]
        assert find(row, '[data-field="type"]').text == "music.transcode"
        wait_for(driver, lambda d: find(row, '[data-field="state"]').text == "succeeded")
        assert find(row, '[data-field="progress"]').get_attribute("value") == "100"
        # The newest job is the first row.
        assert find_all(driver, "[data-rows] [data-job-id]")[0] == row
        shoot(driver, "list")
        assert_clean(driver, ui_server)


def test_submit_through_the_generated_form_and_watch_it_succeed(
    ui_server: str, alice: Account, workers: dict[str, Proc]
) -> None:
    with chromium() as driver:
        log_in(driver, ui_server, alice.email)
        driver.get(f"{ui_server}/ui/submit")
        form = find(driver, 'form[data-form="submit"]')
        Select(find(form, 'select[name="type"]')).select_by_value("video.thumbnail")
        # The fields follow the chosen type's schema: thumbnail's, then transcode's.
        assert find_all(form, '[name="at_seconds"]')
        Select(find(form, 'select[name="type"]')).select_by_value("music.transcode")
        assert not find_all(form, '[name="at_seconds"]')
        bitrate = find(form, '[name="bitrate_kbps"]')
        assert (bitrate.get_attribute("min"), bitrate.get_attribute("max")) == ("32", "320")
        assert bitrate.get_attribute("value") == "128"  # the default, shown
        find(form, '[name="source"]').send_keys("form.wav")
        chunks = find(form, '[name="chunks"]')
        chunks.clear()
        chunks.send_keys("12")
        shoot(driver, "submit")
        find(form, '[type="submit"]').click()
        wait_for(driver, lambda d: "/ui/jobs/" in d.current_url)
        job_id = driver.current_url.rsplit("/", 1)[1]
        wait_for(driver, lambda d: find(d, '[data-field="state"]').text == "succeeded")
        final = alice.wait_final(job_id)
        assert final["payload"]["source"] == "form.wav" and final["payload"]["chunks"] == 12
        history = [(e["seq"], e["type"]) for e in alice.events(job_id)]
        wait_for(driver, lambda d: timeline(d) == history)
        shown = timeline(driver)
        assert len({seq for seq, _ in shown}) == len(shown), "each seq once"
        assert find(driver, '[data-field="progress"]').get_attribute("value") == "100"
        assert "form.wav.ogg" in find(driver, '[data-field="result"]').text
        assert find(driver, '[data-field="attempt"]').text == "1"
        assert not find_all(driver, 'button[data-action="cancel"]')
        shoot(driver, "job")
        assert_clean(driver, ui_server)


def test_an_invalid_field_shows_its_error_and_creates_no_job(
    ui_server: str, workers: dict[str, Proc]
) -> None:
    user = account(ui_server)
    with chromium() as driver:
        log_in(driver, ui_server, user.email)
        driver.get(f"{ui_server}/ui/submit?type=music.transcode")
        form = find(driver, 'form[data-form="submit"]')
        find(form, '[name="source"]').send_keys("bad.wav")
        bitrate = find(form, '[name="bitrate_kbps"]')
        bitrate.clear()
        bitrate.send_keys("999")
        find(form, '[type="submit"]').click()
        error = wait_for(
            driver, lambda d: find_all(d, '[data-error][data-error-for="bitrate_kbps"]')
        )
        assert "320" in error[0].text
        # Beside its field: inside the field's own box.
        box = find(form, '[data-field-name="bitrate_kbps"]')
        assert find_all(box, "[data-error]") == error
        assert bitrate.get_attribute("aria-invalid") == "true"
        assert "/ui/submit" in driver.current_url
        shoot(driver, "submit-invalid")
        assert user.job_ids() == []
        # Fixed, and sent with an Idempotency-Key twice: the second lands on the first job.
        bitrate.clear()
        bitrate.send_keys("256")
        find(form, "details.options summary").click()
        find(form, '[name="idempotency_key"]').send_keys("ui-key-1")
        find(form, '[type="submit"]').click()
        wait_for(driver, lambda d: "/ui/jobs/" in d.current_url)
        first = driver.current_url
        driver.back()
        form = wait_for(driver, lambda d: find_all(d, 'form[data-form="submit"]'))[0]
        find(form, '[name="source"]').clear()
        find(form, '[name="source"]').send_keys("bad.wav")
        find(form, "details.options summary").click()
        key = find(form, '[name="idempotency_key"]')
        key.clear()
        key.send_keys("ui-key-1")
        find(form, '[type="submit"]').click()
        wait_for(driver, lambda d: "/ui/jobs/" in d.current_url and d.current_url == first)
        assert_clean(driver, ui_server, 422)
    assert len(user.job_ids()) == 1
    user.client.close()


def test_a_type_without_schema_gets_a_json_editor(
    ui_server: str, alice: Account, workers: dict[str, Proc]
) -> None:
    with chromium() as driver:
        log_in(driver, ui_server, alice.email)
        driver.get(f"{ui_server}/ui/submit?type=video.render")
        form = find(driver, 'form[data-form="submit"]')
        editor = find(form, 'textarea[name="payload"]')
        editor.clear()
        editor.send_keys("[1, 2]")
        find(form, '[type="submit"]').click()
        error = wait_for(driver, lambda d: find_all(d, '[data-error][data-error-for="payload"]'))
        assert "JSON object" in error[0].text
        editor.clear()
        editor.send_keys('{"project": "intro.prj"}')
        find(form, '[type="submit"]').click()
        wait_for(driver, lambda d: "/ui/jobs/" in d.current_url)
        job_id = driver.current_url.rsplit("/", 1)[1]
        assert alice.job(job_id)["payload"] == {"project": "intro.prj"}
        assert_clean(driver, ui_server)


def test_cancel_a_running_job_from_its_page(
    ui_server: str, alice: Account, workers: dict[str, Proc]
) -> None:
    job = alice.submit("music.transcode", SLOW)
    alice.wait_state(job["id"], {"running"})
    with chromium() as driver:
        log_in(driver, ui_server, alice.email)
        driver.get(f"{ui_server}/ui/jobs/{job['id']}")
        wait_live(driver)
        find(driver, 'button[data-action="cancel"]').click()
        answer = find(driver, '[data-field="action-result"]')
        wait_for(driver, lambda d: answer.text.startswith("202"))
        wait_for(driver, lambda d: find(d, '[data-field="state"]').text == "cancelled")
        assert alice.wait_final(job["id"])["state"] == "cancelled"
        wait_for(driver, lambda d: find_all(d, 'button[data-action="retry"]'))
        assert not find_all(driver, 'button[data-action="cancel"]')
        assert timeline(driver)[-1][1] == "cancelled"
        assert_clean(driver, ui_server)


def open_a_failed_job(driver: Any, ui_server: str, alice: Account) -> dict[str, Any]:
    """A job that failed (validate_master refuses a lossy source, with no retries of its
    own), its page open in `driver`, logged in as `alice`."""
    job = alice.submit("music.validate_master", {"source": "master.mp3"})
    assert alice.wait_final(job["id"])["state"] == "failed"
    log_in(driver, ui_server, alice.email)
    driver.get(f"{ui_server}/ui/jobs/{job['id']}")
    assert "not a lossless master" in find(driver, '[data-field="error"]').text
    return job


# The page's fetch of a retry answers only once the test releases it, with the job as it
# is then: as the API answers when the new attempt ran and ended before its 202 went out.
HOLD_THE_RETRY_ANSWER = """
const original = window.fetch;
window.fetch = async (url, options) => {
  const response = await original(url, options);
  if (!String(url).endsWith("/retry")) return response;
  await new Promise((resolve) => { window.releaseRetry = resolve; });
  const now = await original(String(url).replace(/\\/retry$/, ""), {
    headers: { Accept: "application/json" },
  });
  return new Response(await now.text(), {
    status: response.status,
    headers: { "Content-Type": "application/json" },
  });
};
"""


def test_a_retry_whose_new_attempt_ended_before_the_answer_still_shows_it(
    ui_server: str, alice: Account, workers: dict[str, Proc]
) -> None:
    """The race the whole suite met once: attempt 2 failed 6 ms after its message arrived,
    before the retry's 202, whose job was then final; the page never showed attempt 2."""
    with chromium() as driver:
        job = open_a_failed_job(driver, ui_server, alice)
        driver.execute_script(HOLD_THE_RETRY_ANSWER)
        find(driver, 'button[data-action="retry"]').click()
        wait_for(
            driver, lambda d: d.execute_script("return typeof window.releaseRetry") == "function"
        )
        deadline = time.monotonic() + 60
        while not ((now := alice.job(job["id"]))["attempt"] == 2 and now["state"] == "failed"):
            assert time.monotonic() < deadline, now
            time.sleep(0.05)
        driver.execute_script("window.releaseRetry()")
        answer = find(driver, '[data-field="action-result"]')
        wait_for(driver, lambda d: answer.text.startswith("202") and "is failed" in answer.text)
        wait_for(driver, lambda d: find_all(d, '[data-attempt="2"] [data-type="failed"]'))
        assert find(driver, '[data-field="attempt"]').text == "2"
        history = [(e["seq"], e["type"]) for e in alice.events(job["id"])]
        wait_for(driver, lambda d: timeline(d) == history)


def test_retry_a_failed_job_from_its_page_and_see_a_409(
    ui_server: str, alice: Account, workers: dict[str, Proc]
) -> None:
    with chromium() as driver:
        job = open_a_failed_job(driver, ui_server, alice)
        find(driver, 'button[data-action="retry"]').click()
        answer = find(driver, '[data-field="action-result"]')
        wait_for(driver, lambda d: answer.text.startswith("202"))
        # The second attempt runs and fails again, live on the page, in its own group.
        wait_for(driver, lambda d: find_all(d, '[data-attempt="2"] [data-type="failed"]'))
        assert find(driver, '[data-field="attempt"]').text == "2"
        assert find(driver, '[data-field="state"]').text == "failed"
        history = [(e["seq"], e["type"]) for e in alice.events(job["id"])]
        wait_for(driver, lambda d: timeline(d) == history)
        shoot(driver, "job-retried")

    # A page that shows a job as it was: its button answers with the API's 409.
    done = alice.submit("music.transcode", QUICK)
    r = alice.client.post(f"/api/v1/jobs/{done['id']}/cancel")
    assert r.status_code == 202, r.text
    assert alice.wait_final(done["id"])["state"] == "cancelled"
    with chromium() as driver:
        log_in(driver, ui_server, alice.email)
        driver.get(f"{ui_server}/ui/jobs/{done['id']}")
        # Retried behind the page's back (the page of a finished job does not follow it).
        r = alice.client.post(f"/api/v1/jobs/{done['id']}/retry")
        assert r.status_code == 202, r.text
        assert alice.wait_final(done["id"])["state"] == "succeeded"
        find(driver, 'button[data-action="retry"]').click()
        answer = find(driver, '[data-field="action-result"]')
        wait_for(driver, lambda d: answer.text.startswith("409"))
        assert "JOB_NOT_RETRYABLE" in answer.text and answer.get_attribute("data-error") is not None
        # Then the page catches up with what it missed.
        wait_for(driver, lambda d: find(d, '[data-field="state"]').text == "succeeded")
        assert_clean(driver, ui_server, 409)


def test_another_users_job_is_visible_nowhere(
    ui_server: str, alice: Account, bob: Account, workers: dict[str, Proc]
) -> None:
    secret = {"source": "bobs-secret-track.wav", "chunks": 4, "step_seconds": 0.02}
    with chromium() as driver:
        log_in(driver, ui_server, alice.email)
        job = bob.submit("music.transcode", secret)
        mine = alice.submit("music.transcode", QUICK)
        # Alice's own later job shows up live; Bob's never does.
        wait_for(driver, lambda d: find_all(d, f'[data-job-id="{mine["id"]}"]'))
        bob.wait_final(job["id"])
        alice.wait_final(mine["id"])
        wait_for(
            driver,
            lambda d: (
                find(d, f'[data-job-id="{mine["id"]}"] [data-field="state"]').text == "succeeded"
            ),
        )
        assert not find_all(driver, f'[data-job-id="{job["id"]}"]')
        driver.refresh()
        wait_live(driver)
        assert not find_all(driver, f'[data-job-id="{job["id"]}"]')
        assert "bobs-secret-track" not in driver.page_source
        driver.get(f"{ui_server}/ui/jobs/{job['id']}")
        assert find_all(driver, "[data-error]")
        assert "bobs-secret-track" not in driver.page_source
        assert not find_all(driver, "[data-seq]")
        shoot(driver, "job-not-found")
        assert_clean(driver, ui_server, 404)
    # The page answers 404, as the API does, whoever asks.
    r = alice.client.get(f"/ui/jobs/{job['id']}")
    assert r.status_code == 404 and "bobs-secret-track" not in r.text
    r = alice.client.get(f"/ui/jobs/{job['id']}/stream")
    assert r.status_code == 404


def test_a_stream_cut_mid_way_loses_and_repeats_nothing(
    ui_server: str, alice: Account, workers: dict[str, Proc]
) -> None:
    proxy = CuttingProxy(ui_server, CUT_AFTER_BYTES)
    base = proxy.start()
    try:
        with chromium() as driver:
            log_in(driver, base, alice.email)
            job = alice.submit("music.transcode", {**QUICK, "chunks": 60})
            driver.get(f"{base}/ui/jobs/{job['id']}")
            wait_for(driver, lambda d: find(d, '[data-field="state"]').text == "succeeded")
            history = [(e["seq"], e["type"]) for e in alice.events(job["id"])]
            wait_for(driver, lambda d: timeline(d) == history)
            shown = timeline(driver)
            assert len({seq for seq, _ in shown}) == len(shown)
            assert offsite_requests(driver, base) == []
            # Each cut may log the broken response; nothing else may.
            errors = [e for e in console_errors(driver) if "ERR_" not in e]
            assert errors == []
    finally:
        proxy.stop()
    assert proxy.cuts >= 2, proxy.cuts


def test_a_superuser_sees_owners_and_the_operations_page(
    ui_server: str, stack_env: dict[str, str], alice: Account, workers: dict[str, Proc]
) -> None:
    admin = account(ui_server, superuser=True, env=stack_env)
    job = alice.submit("music.transcode", QUICK)
    alice.wait_final(job["id"])
    with chromium() as driver:
        log_in(driver, ui_server, admin.email)
        row = find(driver, f'[data-job-id="{job["id"]}"]')
        assert find(row, '[data-field="owner"]').text == alice.email
        driver.get(f"{ui_server}/ui/operations")
        for section in ("outbox", "feed", "queues", "audit"):
            assert find_all(driver, f'[data-section="{section}"]'), section
        # RabbitMQ's management API answers in the test stack: each domain's consumers.
        consumers = find(driver, '[data-queue="music"] [data-field="consumers"]').text
        assert consumers.isdigit() and int(consumers) >= 1
        assert find_all(driver, "[data-audit] tbody tr")
        shoot(driver, "operations")
        driver.get(f"{ui_server}/ui/types")
        assert find_all(driver, '[data-job-type="video.render"]')
        shoot(driver, "types")
        assert_clean(driver, ui_server)
    # The audit log's filters, and a bad one said beside the form.
    r = admin.client.get("/ui/operations", params={"method": "POST", "route": "/api/v1/jobs"})
    assert r.status_code == 200
    audit = r.text.split("data-audit", 1)[1]
    assert "<td>POST</td>" in audit and "<td>GET</td>" not in audit
    r = admin.client.get("/ui/operations", params={"status": "abc"})
    assert r.status_code == 422 and "data-error" in r.text
    r = alice.client.get("/ui/operations")
    assert r.status_code == 403
    admin.client.close()


def test_pages_need_a_session_and_keep_a_strict_policy(ui_server: str) -> None:
    with httpx.Client(base_url=ui_server) as anon:
        r = anon.get("/")
        assert r.status_code == 307 and r.headers["location"] == "/ui/"
        r = anon.get("/ui/jobs/00000000-0000-0000-0000-000000000000")
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
        r = anon.get("/ui/login")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "connect-src 'self'" in csp
        assert anon.get("/ui/static/app.css").status_code == 200


def test_older_and_newer_pages_by_cursor(ui_server: str, workers: dict[str, Proc]) -> None:
    import re

    user = account(ui_server)
    ids = [
        user.submit("music.transcode", {"source": f"{i}.wav", "chunks": 1})["id"] for i in range(30)
    ]
    newest_first = list(reversed(ids))

    def page(url: str) -> tuple[list[str], dict[str, str]]:
        r = user.client.get(url)
        assert r.status_code == 200, r.text
        rows = re.findall(r'role="row" data-job-id="([0-9a-f-]{36})"', r.text)
        links = {
            rel: href.replace("&amp;", "&")
            for rel, href in re.findall(r'<a rel="(next|prev)" href="([^"]+)"', r.text)
        }
        return rows, links

    first, links = page("/ui/?size=25")
    assert first == newest_first[:25] and "prev" not in links
    second, links = page("/ui/" + links["next"])
    assert second == newest_first[25:] and "next" not in links
    back, links = page("/ui/" + links["prev"])
    assert back == first
    # The time filters: nothing is created in the future; a malformed time is a 422.
    future, _ = page("/ui/?created_after=2999-01-01T00:00")
    assert future == []
    r = user.client.get("/ui/", params={"created_after": "yesterday"})
    assert r.status_code == 422 and "data-error" in r.text
    user.client.close()


@pytest.fixture(scope="module")
def small_pages_server(
    migrated: Settings, stack_env: dict[str, str], logdir: Path
) -> Iterator[str]:
    """An API process whose pages hold little: 4 events a timeline page, 6 kept, 2 rows."""
    proc, base = start_server(
        {
            **stack_env,
            "JOBLINE_UI_TIMELINE_PAGE": "4",
            "JOBLINE_UI_TIMELINE_MAX": "6",
            "JOBLINE_UI_LIST_MAX_ROWS": "2",
        },
        logdir,
    )
    yield base
    proc.stop()


def test_a_long_timeline_is_paged_and_keeps_following(
    small_pages_server: str, workers: dict[str, Proc]
) -> None:
    base = small_pages_server
    user = account(base)
    with chromium() as driver:
        log_in(driver, base, user.email)
        job = user.submit("music.transcode", {**QUICK, "chunks": 30})
        driver.get(f"{base}/ui/jobs/{job['id']}")
        wait_for(driver, lambda d: find(d, '[data-field="state"]').text == "succeeded")
        history = [(e["seq"], e["type"]) for e in user.events(job["id"])]
        assert len(history) > 6, history
        # Followed to the end, the page keeps the newest 6.
        wait_for(driver, lambda d: timeline(d) == history[-6:])
        earlier = find(driver, '[data-action="earlier"]')
        while earlier.is_displayed():
            count = len(timeline(driver))
            earlier.click()

            def grew(d: WebDriver, n: int = count) -> bool:
                return len(timeline(d)) > n

            wait_for(driver, grew)
        assert timeline(driver) == history
        # Opened afresh: the newest page (4), and the rest a page at a time.
        driver.refresh()
        assert timeline(driver) == history[-4:]
        assert find(driver, '[data-action="earlier"]').is_displayed()
        assert_clean(driver, base)
    user.client.close()


def test_a_full_list_announces_newer_jobs(
    small_pages_server: str, workers: dict[str, Proc]
) -> None:
    base = small_pages_server
    user = account(base)
    with chromium() as driver:
        log_in(driver, base, user.email)
        for i in range(3):
            user.submit("music.transcode", {"source": f"{i}.wav", "chunks": 1})
        notice = wait_for(
            driver, lambda d: [e for e in find_all(d, "[data-newer-notice]") if e.is_displayed()]
        )[0]
        assert "1 newer job(s) not shown" in notice.text
        assert len(find_all(driver, "[data-rows] [data-job-id]")) == 2
        assert_clean(driver, base)
    user.client.close()


def open_streams_until_refused(base: str, token: str) -> list[tuple[httpx.Client, httpx.Response]]:
    """The user's streams this API process still admits: opened and held, until a 429."""
    held: list[tuple[httpx.Client, httpx.Response]] = []
    while True:
        c = httpx.Client(base_url=base, headers={"Authorization": token}, timeout=30)
        r = c.send(c.build_request("GET", "/api/v1/stream"), stream=True)
        if r.status_code != 200:
            r.read()
            c.close()
            assert r.status_code == 429 and r.json()["detail"]["code"] == "TOO_MANY_STREAMS"
            return held
        held.append((c, r))
        assert len(held) <= MAX_STREAMS_PER_USER, "the per-user cap is not enforced"


def test_a_page_holds_one_stream_never_one_per_row(
    ui_server: str, workers: dict[str, Proc]
) -> None:
    """README, dashboard: 'each tab holds one stream (the list its per-user stream, a job
    page its job's stream until the job ends), never one per row', and each counts against
    JOBLINE_MAX_STREAMS_PER_USER."""
    user = account(ui_server)
    token = str(user.client.headers["Authorization"])
    jobs = [user.submit("music.transcode", SLOW)["id"] for _ in range(4)]
    try:
        for page in ("/ui/", f"/ui/jobs/{jobs[0]}"):
            with chromium() as driver:
                log_in(driver, ui_server, user.email)
                driver.get(f"{ui_server}{page}")
                if page == "/ui/":
                    wait_for(driver, lambda d: len(find_all(d, "[data-rows] [data-job-id]")) == 4)
                wait_live(driver)
                # The previous page's stream is released when the server sees it closed:
                # count again for a few seconds. A page holding a stream per row never
                # gets to one.
                deadline = time.monotonic() + RELEASE_SECONDS
                while True:
                    held = open_streams_until_refused(ui_server, token)
                    for c, r in held:
                        r.close()
                        c.close()
                    if len(held) == MAX_STREAMS_PER_USER - 1 or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                assert len(held) == MAX_STREAMS_PER_USER - 1, (page, len(held))
    finally:
        for job_id in jobs:
            user.client.post(f"/api/v1/jobs/{job_id}/cancel")
        user.client.close()


# Every host name but the loopback fails to resolve: the browser is offline, as on a plane.
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        # Swagger UI draws an operation block per route; ReDoc its menu of operations.
        ("/docs", ".opblock"),
        ("/redoc", "[role=menuitem], .menu-content li"),
    ],
)
def test_the_api_docs_render_offline(ui_server: str, path: str, rendered: str) -> None:
    """Issue 14 (and 12.2): /docs and /redoc load every asset from the API, with no internet."""
    with chromium(extra_flags=OFFLINE) as driver:
        driver.get(ui_server + path)
        blocks = wait_for(driver, lambda d: find_all(d, rendered))
        assert len(blocks) > 5, f"{path} drew {len(blocks)} operations"
        shoot(driver, "docs" if path == "/docs" else "redoc")
        assert_clean(driver, ui_server)
