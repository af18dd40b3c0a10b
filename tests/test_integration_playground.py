"""The playground page (/playground) in a real browser against the running application.

Debian's chromium, headless, driven by Playwright's Python API (`executable_path`: Playwright's
own browser downloads are never used). The page must load with no key, no console errors and no
request to another host; its forms must follow the OpenAPI document; a vocoder request made
through the page (a WAV uploaded, or one recorded from Chromium's fake microphone) must move the
progress bar to the end and give a playable, downloadable WAV; a JSON result is shown indented;
an error shows the server's `detail`.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",                      # the suite runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # No traffic of Chromium's own (the machines have no internet, and the test asserts none).
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    # A microphone that plays a test tone, granted without a prompt.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
VOCODER_ROUTE = "/api/vocoder/hifigan"
TIMEOUT_MS = 60_000
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: scripts/install.sh installs it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageWatch:
    """A page with what it logged and every URL it asked for (HTTP and WebSocket)."""

    def __init__(self, browser, base_url: str):
        self.context = browser.new_context(viewport={"width": 1100, "height": 1300}, base_url=base_url)
        self.context.grant_permissions(["microphone"])
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.urls: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.on("request", lambda r: self.urls.append(r.url))
        self.page.on("websocket", lambda ws: self.urls.append(ws.url))

    def open(self, fragment: str = ""):
        self.page.goto("/playground" + fragment)
        self.page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)
        return self.page

    def close(self):
        self.context.close()


@pytest.fixture
def watched(browser, served):
    watch = PageWatch(browser, served.base_url)
    yield watch
    watch.close()


def wav_file(tmp_path, seconds=1.0, sr=24000):
    t = np.arange(int(seconds * sr)) / sr
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


def form_routes(spec: dict) -> dict[str, dict]:
    """POST routes with a form body -> their body schema (what the page must offer)."""
    routes = {}
    for path, methods in spec["paths"].items():
        if "{" in path:
            continue
        content = methods.get("post", {}).get("requestBody", {}).get("content", {})
        for form_type in FORM_TYPES:
            if form_type in content:
                ref = content[form_type]["schema"]["$ref"].rsplit("/", 1)[-1]
                routes[path] = spec["components"]["schemas"][ref]
                break
    return routes


def test_playground_needs_no_key_and_serves_its_assets_with_their_types(served):
    page = httpx.get(served.base_url + "/playground", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # Everything the page loads is ours: no absolute URLs to other hosts in it.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
    assets = re.findall(r"""(?:src|href)="(/playground/[^"]+)\"""", page.text)
    assert sorted(assets) == ["/playground/playground.css", "/playground/playground.js"]
    for asset, media_type in (("/playground/playground.js", "text/javascript"),
                              ("/playground/playground.css", "text/css")):
        r = httpx.get(served.base_url + asset, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].split(";")[0] == media_type, asset
        assert r.headers["x-content-type-options"] == "nosniff" and len(r.content) > 1000
    missing = httpx.get(served.base_url + "/playground/secrets.txt", timeout=30)
    assert missing.status_code == 404 and missing.json() == {"detail": "no such playground file"}
    # The page is not part of the API description, and the API itself still needs a key.
    spec = httpx.get(served.base_url + "/api/openapi.json", timeout=30).json()
    assert not any(path.startswith("/playground") for path in spec["paths"])
    assert httpx.post(served.base_url + VOCODER_ROUTE, timeout=30).status_code == 401


def test_page_renders_every_model_route_with_no_console_error_and_no_other_host(served, watched, tmp_path):
    from PIL import Image

    page = watched.open()
    spec = httpx.get(served.base_url + "/api/openapi.json", timeout=30).json()
    routes = form_routes(spec)
    offered = page.locator("#route option").evaluate_all("options => options.map(o => o.value)")
    assert sorted(offered) == sorted(routes) and len(offered) >= 25
    groups = page.locator("#route optgroup").evaluate_all("groups => groups.map(g => g.label)")
    assert {"TTS", "VC", "Vocoder", "Codec"} <= set(groups)

    shot = tmp_path / "playground.png"
    page.screenshot(path=str(shot), full_page=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape[0] >= 1000 and pixels.std() > 10, "the screenshot is blank"
    # Text and controls: a good share of the pixels differ from the page's background.
    background = np.median(pixels)
    assert (np.abs(pixels - background) > 40).mean() > 0.01
    for selector in ("h1", "#api-key", "#route", "#fields .field", "#send", "#progress"):
        box = page.locator(selector).first.bounding_box()
        assert box and box["width"] > 20 and box["height"] > 8, selector

    assert watched.console_errors == []
    origin = urlsplit(served.base_url).netloc
    assert watched.urls and all(urlsplit(u).netloc == origin for u in watched.urls), watched.urls


def test_form_fields_follow_the_openapi_schema(served, watched):
    from playwright.sync_api import expect

    spec = httpx.get(served.base_url + "/api/openapi.json", timeout=30).json()
    body = form_routes(spec)["/api/vocoder/generic"]
    page = watched.open("#/api/vocoder/generic")
    assert page.locator("#route").input_value() == "/api/vocoder/generic"
    names = page.locator("#fields [name]").evaluate_all("controls => controls.map(c => c.name)")
    assert set(names) == set(body["properties"])
    assert page.locator("#field-audio").get_attribute("type") == "file"
    assert page.locator("#field-audio").evaluate("input => input.required") is True
    for name in ("vocoder_name", "response_format"):
        options = page.locator(f"#field-{name} option").evaluate_all("options => options.map(o => o.value)")
        assert options == body["properties"][name]["enum"], name
    # Labelled, and reachable from the keyboard in reading order.
    assert page.get_by_label("Audio").first.get_attribute("id") == "field-audio"
    page.get_by_label("Your key").focus()
    for expected in ("#forget-key", "#route", "#field-audio"):
        page.keyboard.press("Tab")
        expect(page.locator(expected)).to_be_focused()


def test_vocoder_round_trip_through_the_page(served, watched, tmp_path):
    from playwright.sync_api import expect

    page = watched.open()
    page.get_by_label("Your key").fill(served.fresh_key())
    page.get_by_label("Choose a route").select_option(VOCODER_ROUTE)
    page.set_input_files("#field-audio", str(wav_file(tmp_path, seconds=1.0)))
    page.get_by_role("button", name="Send").click()

    expect(page.locator("#audio")).to_have_attribute("src", re.compile(r"^blob:"), timeout=TIMEOUT_MS)
    # The bar moved from the progress socket's events, to the task's final one.
    expect(page.locator("#progress")).to_have_js_property("value", 1, timeout=TIMEOUT_MS)
    expect(page.locator("#progress-text")).to_contain_text("completed")
    headers = page.locator("#headers").inner_text()
    for shown in ("X-Task-ID", "X-Sample-Rate", "X-Audio-Duration", "X-Amphion-Weights", "Server-Timing"):
        assert shown in headers, headers
    task_id = re.search(r"X-Task-ID\s+(pg-[0-9a-f]+)", headers).group(1)
    assert any(f"/ws/progress/{task_id}?api_key=" in u for u in watched.urls), watched.urls

    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    data = open(download.value.path(), "rb").read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    audio, sr = sf.read(io.BytesIO(data))
    assert sr == 24000 and abs(len(audio) / sr - 1.0) < 0.05
    assert download.value.suggested_filename.endswith(".wav")


def test_json_result_is_shown_pretty_printed(served, watched, tmp_path):
    from playwright.sync_api import expect

    page = watched.open("#/api/codec/dualcodec/encode")
    page.get_by_label("Your key").fill(served.fresh_key())
    page.set_input_files("#field-audio", str(wav_file(tmp_path, seconds=0.8)))
    page.get_by_role("button", name="Send").click()
    result = page.get_by_label("JSON result")
    expect(result).to_be_visible(timeout=TIMEOUT_MS)
    text = result.inner_text()
    encoded = json.loads(text)
    assert encoded["model"] == "12hz_v1" and len(encoded["tokens"]) == encoded["num_quantizers"]
    assert text.startswith('{\n  "')         # indented, one key a line
    expect(page.locator("#progress")).to_have_js_property("value", 1, timeout=TIMEOUT_MS)
    assert page.locator("#audio-result").is_hidden()


def test_recording_from_the_microphone_is_sent_as_wav(served, watched):
    from playwright.sync_api import expect

    page = watched.open("#" + VOCODER_ROUTE)
    page.get_by_label("Your key").fill(served.fresh_key())
    record = page.get_by_role("button", name="Record from microphone")
    record.click()
    expect(page.get_by_role("button", name="Stop recording")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(1200)
    page.get_by_role("button", name="Stop recording").click()
    expect(page.locator(".record-status")).to_contain_text("recorded", timeout=TIMEOUT_MS)
    assert page.locator("#field-audio").evaluate("input => input.files[0].name") == "recording.wav"
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#audio")).to_have_attribute("src", re.compile(r"^blob:"), timeout=TIMEOUT_MS)
    seconds = float(re.search(r"X-Audio-Duration\s+([\d.]+)", page.locator("#headers").inner_text()).group(1))
    assert seconds > 0.5


def test_errors_show_the_servers_detail(served, watched, tmp_path):
    from playwright.sync_api import expect

    page = watched.open("#" + VOCODER_ROUTE)
    page.set_input_files("#field-audio", str(wav_file(tmp_path)))
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter your API key")

    page.get_by_label("Your key").fill("not-a-key")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("401")
    expect(page.get_by_role("alert")).to_contain_text("missing or invalid API key")

    text_file = tmp_path / "notes.wav"
    text_file.write_text("these are not audio bytes " * 20)
    page.get_by_label("Your key").fill(served.fresh_key())
    page.set_input_files("#field-audio", str(text_file))
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("415", timeout=TIMEOUT_MS)
    assert page.locator("#audio-result").is_hidden()
