"""/docs and /redoc work with no internet: every asset from the API, a policy of its own origin.

Issue 12, item 2: the pages loaded Swagger UI and ReDoc from a CDN and were blank offline.
Read here as a browser reads them, from a real server: each URL the HTML references is
resolved against the page, must be on the API's origin and must answer 200 with the type
the tag expects; the Content-Security-Policy names no other origin and allows no inline
script (nothing on the page needs one).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.integration

PAGES = ("/docs", "/redoc")
# What each kind of reference must be.
EXPECTED_TYPE = {"script": "text/javascript", "stylesheet": "text/css", "icon": "image/png"}
# A CSP source that is a scheme of content the page made itself, not an origin.
LOCAL_SCHEMES = {"data:", "blob:"}


class References(HTMLParser):
    """Every URL a page loads: script src, link href (stylesheet, icon), img src, and
    any inline script (a <script> without src)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self.inline_scripts = 0
        self.spec_urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script":
            if a.get("src"):
                self.found.append(("script", a["src"]))
            else:
                self.inline_scripts += 1
        elif tag == "link" and a.get("href"):
            self.found.append((a.get("rel", ""), a["href"]))
        elif tag == "img" and a.get("src"):
            self.found.append(("img", a["src"]))
        # The OpenAPI document the page fetches (ReDoc's attribute, Swagger's data-).
        for key in ("spec-url", "data-openapi-url"):
            if a.get(key):
                self.spec_urls.append(a[key])
        for key, value in a.items():
            if key.startswith("on"):
                self.inline_scripts += 1  # an event handler attribute is inline script too
            assert key != "style", f"<{tag} style=...>: inline style on the page itself"
            assert not value.startswith("javascript:"), (tag, key, value)


def test_the_docs_pages_load_everything_from_the_api(live_server: str) -> None:
    origin = urlsplit(live_server)
    with httpx.Client(timeout=30) as http:
        for path in PAGES:
            page_url = live_server + path
            page = http.get(page_url)
            assert page.status_code == 200, page.text
            assert page.headers["content-type"].startswith("text/html")
            refs = References()
            refs.feed(page.text)
            assert refs.inline_scripts == 0, f"{path}: an inline script"
            kinds = {kind for kind, _ in refs.found}
            assert "script" in kinds and "icon" in kinds, (path, refs.found)
            assert refs.spec_urls, f"{path} names no OpenAPI document"
            for kind, ref in [*refs.found, *(("spec", u) for u in refs.spec_urls)]:
                url = urljoin(page_url, ref)
                where = urlsplit(url)
                assert (where.scheme, where.netloc) == (origin.scheme, origin.netloc), (
                    f"{path} loads {url} from another origin"
                )
                got = http.get(url)
                assert got.status_code == 200, (url, got.status_code)
                content_type = got.headers["content-type"]
                if kind == "spec":
                    assert content_type.startswith("application/json")
                    assert got.json()["openapi"].startswith("3.")
                else:
                    assert content_type.startswith(EXPECTED_TYPE[kind]), (url, content_type)
                    assert len(got.content) > 0
            # The bundles are the real ones: the globals the pages start.
            scripts = {
                urlsplit(ref).path.rsplit("/", 1)[-1] for k, ref in refs.found if k == "script"
            }
            if path == "/docs":
                assert scripts == {"swagger-ui-bundle.js", "swagger-init.js"}
            else:
                assert scripts == {"redoc.standalone.js"}


def csp_sources(policy: str) -> dict[str, list[str]]:
    out = {}
    for directive in filter(None, (d.strip() for d in policy.split(";"))):
        name, *sources = directive.split()
        out[name] = sources
    return out


@pytest.mark.parametrize("path", [*PAGES, "/docs/assets/swagger-ui-bundle.js"])
def test_the_docs_policy_names_no_other_origin(live_server: str, path: str) -> None:
    r = httpx.get(live_server + path, timeout=30)
    assert r.status_code == 200
    policy = csp_sources(r.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"], "scripts: own origin, no inline, no eval"
    assert policy["frame-ancestors"] == ["'none'"]
    for name, sources in policy.items():
        for source in sources:
            quoted = source.startswith("'") and source.endswith("'")
            assert quoted or source in LOCAL_SCHEMES, f"{name} allows {source}"
    # The only relaxations, each needed by a bundle (see security.DOCS_CSP).
    assert "'unsafe-inline'" not in policy["script-src"]
    assert set(policy.get("style-src", [])) <= {"'self'", "'unsafe-inline'"}
    assert set(policy.get("img-src", [])) <= {"'self'", "data:"}
    assert set(policy.get("worker-src", [])) <= {"'self'", "blob:"}
    assert not re.search(r"https?:|\*", r.headers["content-security-policy"])


def test_only_the_named_assets_are_served(live_server: str) -> None:
    r = httpx.get(f"{live_server}/docs/assets/nope.js", timeout=30)
    assert r.status_code == 404
    assert set(r.json()["detail"]) == {"code", "message"}
    # A fixed set of files: no name from the request reaches the disk.
    for name in ("..%2F..%2Fconfig.py", "%2e%2e%2Fdocs.py", "__init__.py"):
        r = httpx.get(f"{live_server}/docs/assets/{name}", timeout=30)
        assert r.status_code == 404, (name, r.text)
        assert "import" not in r.text
