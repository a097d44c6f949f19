"""The web page in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright)
opens the page, types a prompt, generates, waits for the video element to play the result, reads
its Content Credentials, and checks the served file with the page's "check a file" form. In the
same browser session, what users ran into: the API token (asked for up front, kept over a reload),
a double click on Generate, fractional fps and guidance with the Advanced section closed, a reload
and a lost connection while a job runs, the queue-full message, a huge seed, a 320 px screen.
The screenshot is kept as a test artifact: test-artifacts/serve-browser.png."""

import json
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")

from spacetime.pipeline import SpacetimePipeline  # noqa: E402
from spacetime.serve import OutputMarks, ServerThread, create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# no network, no first-run or background traffic; the sandbox needs user namespaces CI may not have
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "s3cret"
BIG_SEED = "9007199254740993"  # 2^53 + 1: a JSON number read as a double would come out ...992
# the console errors this test provokes on purpose: Chromium logs every refused or failed request
# (and the 404 of the deleted job, whose URL is checked)
EXPECTED = ("status of 401", "status of 429", "net::ERR_FAILED")


class Gated:
    """The pipeline, held before each sampler step while `gate` is clear: a job that runs as long
    as the test needs (the gate starts open)."""

    def __init__(self, pipe):
        self.pipe, self.gate = pipe, threading.Event()
        self.gate.set()

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def __call__(self, *args, callback=None, **kwargs):
        def held(step, total):
            assert self.gate.wait(30), "gate never opened"
            callback(step, total)

        return self.pipe(*args, callback=held, **kwargs)


def call(url, path, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method, headers={
        "Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def message_has(page, text, timeout=15_000):
    page.wait_for_function("t => document.getElementById('message').textContent.includes(t)", arg=text, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_page_generates_and_plays_a_video(tiny_model_dir, tmp_path):
    gated = Gated(SpacetimePipeline.from_pretrained(tiny_model_dir))
    marks = OutputMarks.resolve(tiny_model_dir, name="tiny")
    # queue_size=1: one job running and one waiting fill it
    running = ServerThread.start(create_app(gated, tmp_path / "outputs", marks=marks, default_steps=2,
                                            token=TOKEN, queue_size=1))
    open_ = ServerThread.start(create_app(gated, tmp_path / "open", marks=marks, default_steps=2))
    elsewhere, errors, posts = [], [], []

    def watch(page):
        page.on("request", lambda r: None if r.url.startswith((running.url, open_.url, "blob:", "data:"))
                else elsewhere.append(r.url))
        page.on("console", lambda m: errors.append((m.text, m.location.get("url", ""))) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append((str(e), "")))
        return page

    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
                viewport={"width": 900, "height": 1000})
            page = watch(browser.new_page())
            page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/v1/videos") else None)
            page.goto(running.url + "/")
            page.wait_for_selector("#size option", state="attached")
            sizes = page.locator("#size option").all_inner_texts()
            assert sizes[0].startswith("1:1 square")  # aspect ratio labelled
            assert "≈16:9 landscape · 64x32" in sizes  # 64x32 is 2:1, near 16:9 at the model's multiple
            # the server needs a token: the field is there from the start, and a refusal says where it goes
            assert page.is_visible("#token") and not page.locator("#advanced").get_attribute("open")
            page.fill("#prompt", "a red ball bounces off the left wall")
            page.click("#generate")
            message_has(page, "enter the API token")
            page.fill("#token", TOKEN)
            assert page.inner_text("#message") == ""  # a stale error goes once the field changes
            # durations relabelled at the fps typed; a fractional fps and guidance (the API takes
            # them) do not block Generate, even with the Advanced section closed
            page.click("#advanced summary")
            page.fill("#fps", "7.5")
            assert page.locator("#num_frames option[value='5']").inner_text() == "0.667 s · 5 frames"
            page.fill("#guidance_scale", "2.25")
            page.fill("#steps", "0")  # invalid: the browser's message needs the section open
            page.click("#advanced summary")
            page.click("#generate")
            assert page.locator("#advanced").get_attribute("open") is not None
            page.fill("#steps", "2")
            page.click("#advanced summary")
            assert page.locator("#advanced").get_attribute("open") is None
            posts.clear()
            page.dblclick("#generate")  # one job, not two
            # playable: the element has a source and enough data to show a frame
            page.wait_for_function("() => { const v = document.getElementById('video-out');"
                                   " return v.currentSrc && v.readyState >= 2 && v.duration > 0; }", timeout=60_000)
            assert len(posts) == 1, posts
            video = page.evaluate("() => { const v = document.getElementById('video-out');"
                                  " return {w: v.videoWidth, h: v.videoHeight, src: v.currentSrc, d: v.duration}; }")
            assert (video["w"], video["h"]) == (32, 32) and video["src"].startswith("blob:")
            assert video["d"] == pytest.approx(5 / 7.5, abs=0.15)  # 5 frames at 7.5 fps
            assert "5 frames at 7.5 fps · 2 steps · guidance 2.25 · seed " in page.inner_text("#details")
            message = page.inner_text("#message")
            assert message.startswith("done · seed ") and message.split()[-1].isdigit()  # random, echoed back
            assert page.get_attribute("#download", "href").startswith("blob:")
            page.wait_for_selector("#gallery .item img")
            assert page.locator("#gallery .item").count() == 1
            # (functions, not expressions: the page's CSP forbids eval, which expressions need)
            page.wait_for_function("() => document.querySelector('#gallery img').naturalWidth === 32")
            # the result's credentials, as the server checks them
            page.wait_for_selector("#credentials .verdict")
            credentials = page.inner_text("#credentials")
            assert "AI-generated by spacetime (trusted Content Credentials)" in credentials
            assert "AI-generated: yes, by spacetime" in credentials and "model: tiny (sha256 " in credentials
            assert "created: 20" in credentials and "trusted here" in credentials and "watermark: " in credentials
            # the page's check of a file: the served MP4, as a user would upload it
            first = page.get_attribute("#video-out", "data-id")
            page.set_input_files("#verify-file", str(tmp_path / "outputs" / first / "video.mp4"))
            page.click("#verify")
            page.wait_for_selector("#verify-out .verdict")
            checked = page.inner_text("#verify-out")
            assert "AI-generated by spacetime (trusted Content Credentials)" in checked and "model: tiny" in checked
            assert page.get_attribute("#verify-out", "class") == "credentials ok"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "serve-browser.png"), full_page=True)

            # a reload keeps the token, and with it the gallery
            page.reload()
            page.wait_for_selector("#gallery .item img")
            assert page.input_value("#token") == TOKEN

            # a job held running: its exact seed, followed again after a reload, through a lost connection
            gated.gate.clear()
            page.fill("#prompt", "a held job")
            page.fill("#seed", BIG_SEED)
            page.click("#generate")
            message_has(page, "in progress · seed " + BIG_SEED)
            page.reload()
            message_has(page, "in progress · seed " + BIG_SEED)
            assert page.is_visible("#cancel") and page.is_visible("#progress") and page.is_disabled("#generate")
            held = page.evaluate("() => sessionStorage.getItem('spacetime-running')")
            page.route(running.url + "/v1/videos/" + held, lambda route: route.abort())
            message_has(page, "lost contact with the server, retrying…")
            page.unroute(running.url + "/v1/videos/" + held)
            message_has(page, "in progress · seed " + BIG_SEED)
            # the queue full (one running, one waiting): the server's message, once
            waiting = call(running.url, "/v1/videos", "POST", {"prompt": "waits"})
            other = watch(browser.new_page())  # another tab: its own session, nothing running
            other.goto(running.url + "/")
            other.wait_for_selector("#size option", state="attached")
            other.fill("#token", TOKEN)
            other.fill("#prompt", "one too many")
            other.click("#generate")
            message_has(other, "the queue is full")
            full = other.inner_text("#message")
            assert full.startswith("the queue is full; retry after ") and full.count("queue is full") == 1, full
            other.close()
            call(running.url, f"/v1/videos/{waiting['id']}/cancel", "POST")
            # Cancel still stops the job followed after the reload
            page.click("#cancel")
            gated.gate.set()
            message_has(page, "cancelled · seed " + BIG_SEED)
            assert page.is_hidden("#progress") and page.is_hidden("#cancel") and page.is_enabled("#generate")
            # a deleted job leaves the gallery, its id forgotten
            call(running.url, "/v1/videos/" + first, "DELETE")
            page.reload()
            page.wait_for_function("() => sessionStorage.getItem('spacetime-gallery') === '[]'")
            assert page.locator("#gallery .item").count() == 0

            # 320 px wide: nothing sticks out sideways, the Advanced section open
            page.set_viewport_size({"width": 320, "height": 800})
            page.click("#advanced summary")
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 320
            # a server without a token: no token field, the Advanced section open or not
            page.goto(open_.url + "/")
            page.wait_for_selector("#size option", state="attached")
            page.click("#advanced summary")
            assert page.is_hidden("#token")
            browser.close()
    finally:
        running.stop()
        open_.stop()
    assert not elsewhere, f"the page reached beyond the server: {elsewhere}"
    unexpected = [(text, url) for text, url in errors if not any(e in text for e in EXPECTED)
                  and not ("status of 404" in text and url.endswith("/v1/videos/" + first))]
    assert not unexpected, unexpected
    assert (ARTIFACTS / "serve-browser.png").stat().st_size > 1000
