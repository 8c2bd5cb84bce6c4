#!/usr/bin/env python3
"""Drives headless Chromium over `zarr-wavfs serve`'s folder page (tests/browser.rs).

    page.py URL HREF SHOT.png

URL is a folder page, HREF the relative link of one recording on it (its `<audio src>`),
SHOT where the screenshot goes. Uses Playwright for Python with the system's Chromium
(CHROMIUM, default /usr/bin/chromium; Playwright's own browser builds are never used).

Prints one JSON object on stdout with what the page showed: the page's status and
title, the `<audio>` element's duration, its currentTime just after seeking to 80 %
and while playing from there, the spectrogram `<img>`'s natural size after its
`<details>` is opened, the media requests the browser made (with their Range headers)
and its console errors. A step that fails is named in "error"; the steps after it are
not run. Every wait is bounded; the test asserts on the figures.
"""

import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

STEP_MS = 20_000  # the longest any one step may wait


def main() -> None:
    url, href, shot = sys.argv[1:4]
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    out: dict = {"url": url, "href": href, "requests": [], "console_errors": []}
    step = "launch"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                headless=True,
                timeout=STEP_MS,
                args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"],
            )
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.set_default_timeout(STEP_MS)
                page.on(
                    "request",
                    lambda r: out["requests"].append(
                        {"url": r.url, "type": r.resource_type, "range": r.headers.get("range")}
                    )
                    if r.resource_type in ("media", "image")
                    else None,
                )
                page.on(
                    "console",
                    lambda m: out["console_errors"].append(m.text) if m.type == "error" else None,
                )

                step = "load the folder page"
                resp = page.goto(url, wait_until="load")
                out["status"] = resp.status if resp else None
                out["title"] = page.title()

                step = "find the <audio> element"
                audio = page.locator(f'audio[src="{href}"]')
                out["audio_count"] = audio.count()
                el = audio.first.element_handle()

                step = "read the duration (preload=metadata)"
                page.wait_for_function(
                    "a => a.readyState >= 1 && isFinite(a.duration) && a.duration > 0", arg=el
                )
                out["duration"] = el.evaluate("a => a.duration")

                step = "seek to 80 %"
                target = 0.8 * out["duration"]
                out["seek_to"] = target
                el.evaluate(
                    """(a, t) => new Promise(done => {
                        a.muted = true;
                        a.addEventListener('seeked', () => done(), {once: true});
                        a.currentTime = t;
                    })""",
                    target,
                )
                out["after_seek"] = el.evaluate("a => a.currentTime")

                step = "play from there"
                # play() resolves once playback starts; it rejects if it cannot.
                out["play_error"] = el.evaluate(
                    "a => a.play().then(() => null, e => String(e))"
                )
                if out["play_error"] is None:
                    page.wait_for_function(
                        "([a, t]) => a.currentTime >= t + 1.0", arg=[el, target]
                    )
                # a few samples while it plays: all must be at or past the seek target
                samples = []
                for _ in range(5):
                    samples.append(el.evaluate("a => a.currentTime"))
                    time.sleep(0.1)
                out["playing_samples"] = samples
                out["paused"] = el.evaluate("a => a.paused")
                out["media_error"] = el.evaluate("a => a.error && a.error.message")
                el.evaluate("a => a.pause()")

                step = "open the spectrogram's <details>"
                row = page.locator("details").filter(has=page.locator(f'img[src^="{href[:-4]}.png"]'))
                out["details_count"] = row.count()
                details = row.first
                details.locator("summary").click()
                img = details.locator("img").element_handle()
                out["img_src"] = img.get_attribute("src")
                out["details_open"] = details.evaluate("d => d.open")

                step = "load the spectrogram image"
                img.scroll_into_view_if_needed()
                page.wait_for_function("i => i.complete", arg=img)
                out["img_natural"] = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")

                step = "screenshot"
                os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)
                page.screenshot(path=shot, full_page=True)
                out["screenshot"] = shot
                step = None
            finally:
                browser.close()
    except Exception as e:  # reported to the test, which names the step
        out["error"] = f"{step}: {type(e).__name__}: {e}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
