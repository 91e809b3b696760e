"""mitmweb as a user sees it: `stabilizer run --web`, one Claude Code turn, the page in headless Chromium.

`STABILIZER_SCREENSHOT=1` also writes the turn's stabilizer view to docs/ for the README.
"""

import json
import os
import re
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from tests.browser import Browser
from tests.conftest import POLICY, PROJECT_ROOT
from tests.procs import StabilizerRun, free_port, get_json, poll_until, post_json
from tests.stack.test_shaping import recorded_request

# The content view addons/inspection.py registers, and the first line of what it shows for a
# shaped request: mitmweb's "auto" view must pick it for a turn the stabilizer changed.
VIEW_NAME = "stabilizer"
VIEW_HEADING = "What Claude Code sent vs what went upstream"
# qwen-plus's backend takes at most 8192; the recorded request asks for 32000.
CAPPED = "capped max_tokens 32000->8192"
SCREENSHOT = PROJECT_ROOT / "docs" / "mitmweb-stabilizer-view.png"
PAGE_TIMEOUT = 20.0
# The flow list's rows as text. The list is virtual: only the rows in view are in the page.
ROWS = (
    "[...document.querySelectorAll('.flow-table tbody tr')]"
    ".map(row => row.innerText.replace(/\\s+/g, ' ').trim()).filter(text => text)"
)

pytestmark = pytest.mark.skipif(not Browser.available(), reason="no /usr/bin/chromium (make chromium installs it)")


@dataclass
class Web:
    url: str  # mitmweb's address with its token, as `stabilizer run --web` prints it
    flow_id: str  # the Claude Code turn


@pytest.fixture(scope="module")
def web(tmp_path_factory, litellm_config, child_env, master_key, backend):
    """`stabilizer run --web` with one Claude Code turn through it (qwen-plus: max_tokens capped)."""
    folder = tmp_path_factory.mktemp("stabilizer-web")
    web_port = free_port()
    run = StabilizerRun(
        folder,
        litellm_config=litellm_config,
        policy=POLICY,
        env=child_env,
        extra_args=("--web", "--web-port", str(web_port)),
    ).start()
    try:
        line = run.stderr.wait_for("mitmweb:", timeout=5)
        match = re.search(rf"http://127\.0\.0\.1:{web_port}/\?token=(\S+)", line)
        assert match, line
        backend.reset()
        request, headers = recorded_request("qwen-plus")
        status, _, body = post_json(
            run.url + "/v1/messages?beta=true", request, {**headers, "authorization": f"Bearer {master_key}"}
        )
        assert status == 200, body[:500]

        def turn():
            status, flows = get_json(f"http://127.0.0.1:{web_port}/flows", {"authorization": f"Bearer {match[1]}"})
            assert status == 200, flows
            return next((flow["id"] for flow in flows if flow["request"]["path"].startswith("/v1/messages")), None)

        yield Web(match[0], poll_until(turn, 5, "the turn in mitmweb's flows"))
    finally:
        run.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    browser = Browser(tmp_path_factory.mktemp("chromium-profile")).start()
    yield browser
    browser.close()


def test_the_turn_is_listed_with_what_changed(web, browser):
    # Filtered to the turn, its row is in view however many flows came before it.
    with browser.page(f"{web.url}#/flows?s={quote('~u /v1/messages')}") as page:
        # The comment is written when the response has passed, and reaches the page as an update.
        page.wait_for(
            f"{ROWS}.some(row => row.includes('/v1/messages') && row.includes({json.dumps(CAPPED)}))",
            PAGE_TIMEOUT,
            f"the turn's row with {CAPPED!r}",
        )


def test_no_status_probe_is_listed(web, browser):
    with browser.page(web.url) as page:
        # Every flow arrives in the page at once, in order; the start-up probes would be the first rows.
        rows = page.wait_for(f"(rows => rows.length && rows)({ROWS})", PAGE_TIMEOUT, "the flow list")
    probes = [row for row in rows if "/_stabilizer/status" in row]
    assert not probes, f"{len(probes)} of {len(rows)} rows in view are status probes: {probes[:3]}"


def test_the_turn_opens_in_the_stabilizer_view(web, browser):
    with browser.page(f"{web.url}#/flows/{web.flow_id}/request") as page:
        # The view's title: "<view> <description>", or "Loading..." until mitmweb has answered.
        title = page.wait_for(
            "(h => h && h.innerText !== 'Loading...' && h.innerText)(document.querySelector('.contentview h5'))",
            PAGE_TIMEOUT,
            "the request's content view",
        )
        offered = page.evaluate("fetch('./state').then(r => r.json()).then(state => state.contentViews)")
        assert title.lower().startswith(VIEW_NAME), f"mitmweb chose the {title!r} view; it offers {offered}"
        assert VIEW_HEADING in page.evaluate("document.querySelector('.contentview').innerText")
        if os.environ.get("STABILIZER_SCREENSHOT") == "1":
            # The view, not the headers above it, at the top of the pane.
            page.evaluate("document.querySelector('.contentview').scrollIntoView()")
            page.screenshot(SCREENSHOT)
