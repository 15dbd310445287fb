"""The page in a real browser: Debian's Chromium, headless, driven by Playwright, against
the demo host (agents doing request/reply and contract net) with its dashboard.

Checks: the topology shows the demo's agents, the metrics move, a swimlane appears for a
request/reply, the tail filters by topic, a wrong filter and a missing token are shown;
a screenshot is saved as an artefact; first paint is measured and reported (not asserted).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from loom_dashboard import DashboardServer, DashboardSettings, DemoHost

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-t0ken"
DEMO_AGENTS = {"frontdesk", "worker", "planner", "bidder-fast", "bidder-cheap"}
# What the machine's Chromium needs to run headless as root, offline (env notes).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    return os.environ.get("LOOM_CHROMIUM") or shutil.which("chromium")


def _ready() -> bool:
    return _chromium() is not None and importlib.util.find_spec("playwright") is not None


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser; installed by scripts/browser-deps.sh when missing, else a skip saying why."""
    if not _ready():
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "browser-deps.sh")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if not _ready():
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            pytest.skip("chromium or playwright cannot be installed: " + " | ".join(tail))
    path = _chromium()
    assert path is not None
    return path


@pytest.fixture
async def demo():
    host = DemoHost(rate=5.0)
    await host.start()
    yield host
    await host.stop()


@pytest.fixture
async def served(demo):
    settings = DashboardSettings(port=0, token=TOKEN, tick_s=0.25)
    async with DashboardServer(demo, settings) as server:
        yield server


def _artefact(path: Path) -> None:
    target = os.environ.get("LOOM_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(target) / path.name)


async def test_the_page_in_chromium(chromium, served, tmp_path):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1700})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{served.url}#token={TOKEN}", wait_until="load")

            # The topology shows the demo's agents (table and graph), and the stream is live.
            await page.wait_for_selector('#agents tr[data-agent="frontdesk"]', timeout=10_000)
            rows = await page.eval_on_selector_all(
                "#agents tr[data-agent]", "rows => rows.map(r => r.dataset.agent)"
            )
            assert set(rows) == DEMO_AGENTS
            nodes = await page.eval_on_selector_all(
                "#graph g.agent", "gs => gs.map(g => g.dataset.agent)"
            )
            assert set(nodes) == DEMO_AGENTS
            await page.wait_for_selector("#status.live", timeout=10_000)

            # The metrics move.
            await page.wait_for_function(
                "() => Number(document.getElementById('m-published').dataset.value) > 0"
            )
            first = int(await page.get_attribute("#m-published", "data-value") or 0)
            await page.wait_for_function(
                "v => Number(document.getElementById('m-published').dataset.value) > v",
                arg=first,
                timeout=10_000,
            )
            assert int(await page.get_attribute("#m-tools", "data-value") or 0) > 0
            await page.wait_for_selector("#latency div[title]")
            await page.wait_for_selector("#routing .hbar")

            # A swimlane for a request/reply: pick one in the thread list.
            thread = page.locator("#thread-list .t", has_text="request/reply").first
            await thread.wait_for(timeout=10_000)
            await thread.click()
            await page.wait_for_selector(
                '#swimlane circle[data-type="collab.reply"]', timeout=10_000
            )
            lanes = await page.eval_on_selector_all(
                "#swimlane g.lane", "gs => gs.map(g => g.dataset.lane)"
            )
            assert lanes[0] == "agent.frontdesk" and len(lanes) == 2
            phases = await page.eval_on_selector_all(
                "#swimlane g.event", "gs => gs.map(g => g.dataset.phase)"
            )
            assert phases[:2] == ["request", "reply"]
            assert await page.locator("#swimlane path.msg").count() >= 1

            # The live tail, and its topic filter.
            await page.wait_for_selector("#tail-rows tr")
            await page.fill("#topic-filter", "demo.work")
            await page.press("#topic-filter", "Enter")
            await page.wait_for_function(
                """() => {
                    const rows = [...document.querySelectorAll('#tail-rows tr')];
                    return rows.length > 0 && rows.every(r => r.dataset.topic === 'demo.work');
                }""",
                timeout=10_000,
            )
            await page.fill("#topic-filter", "demo..work")
            await page.press("#topic-filter", "Enter")
            await page.wait_for_selector("#tail-error:has-text('invalid topic')")

            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            _artefact(shot)
            assert shot.stat().st_size > 10_000

            timing = await page.evaluate(
                """() => ({
                    fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {})
                        .startTime,
                    fp: (performance.getEntriesByName('first-paint')[0] || {}).startTime,
                    dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
                })"""
            )
            note = tmp_path / "first-paint.json"
            note.write_text(json.dumps(timing))
            _artefact(note)
            # Reported, not asserted (no timed assertions in tests): the issue asks < 2 s.
            print(
                f"\ndashboard first paint: {timing['fp']:.0f} ms, first contentful paint "
                f"{timing['fcp']:.0f} ms, DOMContentLoaded {timing['dcl']:.0f} ms "
                "(target < 2000 ms)"
            )
            assert errors == []

            # Without the token, the page asks for it instead of showing data.
            bare = await browser.new_context()
            other = await bare.new_page()
            await other.goto(served.url)
            await other.wait_for_selector("#auth", state="visible", timeout=10_000)
            assert "bearer token is required" in (await other.text_content("#auth-msg") or "")
            assert await other.locator("#agents tr[data-agent]").count() == 0
            await bare.close()
        finally:
            await browser.close()
    # The host went on throughout.
    assert served.tap.seq > 0 and served.hub.counts()["dropped_slow"] == 0
