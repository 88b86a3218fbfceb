"""Headless Chromium for the pages people look at (the funnel report, `cm3-data view`, `cm3-generate`'s
index.html): what the browser tests drive, and `python -m pipeline.screenshot` for PNGs of them.

Only Debian's `chromium` and `chromium-driver` packages are used (`make setup` installs them when missing);
selenium is given both paths explicitly, so its selenium-manager never downloads a browser or driver.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH = 1280
MAX_HEIGHT = 12000  # a screenshot of a very long page stops here

# Every <img> of the page and of its frames (the viewer's documents are sandboxed srcdoc frames).
_IMAGES = (
    "return Array.from(document.images).map(i => [i.currentSrc.startsWith('data:') ? "
    "i.currentSrc.slice(0, 40) + '...' : i.currentSrc, i.complete, i.naturalWidth])"
)


class NoBrowser(RuntimeError):
    """No headless Chromium here: one line saying what to install."""


def chromium_driver():
    """A headless Chromium WebDriver with the console log kept (for SEVERE entries); NoBrowser if selenium,
    chromium or chromedriver is missing or does not start."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise NoBrowser("selenium is not installed (pip install -e '.[test]')") from None
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        raise NoBrowser(f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={WIDTH},900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except WebDriverException as err:
        raise NoBrowser(f"chromium did not start: {' '.join(str(err).split())[:300]}") from None


def open_page(driver, path: Path) -> dict:
    """Load a local page (the load event waits for its images and frames) -> its images as (src, complete,
    naturalWidth), those of each frame included, and the console's SEVERE entries."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(Path(path).resolve().as_uri())
    images = [tuple(image) for image in driver.execute_script(_IMAGES)]
    for frame in driver.find_elements("tag name", "iframe"):
        driver.switch_to.frame(frame)
        images += [tuple(image) for image in driver.execute_script(_IMAGES)]
        driver.switch_to.default_content()
    severe = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return {"images": images, "severe": severe}


def problems(page: dict) -> list[str]:
    """What is wrong with a loaded page: images that did not load, console errors."""
    broken = [src for src, complete, width in page["images"] if not complete or width == 0]
    return [f"image did not load: {src}" for src in broken] + [f"console: {m}" for m in page["severe"]]


def save_screenshot(driver, path: Path, out: Path) -> dict:
    """A PNG of the whole page (up to MAX_HEIGHT pixels high) -> the page as `open_page` saw it."""
    page = open_page(driver, path)
    height = driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"
    )
    height = min(int(height), MAX_HEIGHT)
    # a viewport as high as the page: Chromium does not paint iframes outside the viewport, so the viewer's
    # documents below the first screen would come out blank
    metrics = {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        clip = {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.screenshot",
        description="PNG screenshots of local pages in headless Chromium; without Chromium, one line and exit 0.",
    )
    parser.add_argument("--output", "--out", dest="out", required=True, help="folder for the PNGs")
    parser.add_argument(
        "pages", nargs="+", metavar="[NAME=]PAGE", help="an HTML file; NAME.png (default: its stem)"
    )
    args = parser.parse_args(argv)
    pages = [(spec.split("=", 1) if "=" in spec else (Path(spec).stem, spec)) for spec in args.pages]
    try:
        driver = chromium_driver()
    except NoBrowser as err:
        print(f"screenshots skipped: {err}", file=sys.stderr)
        return 0
    try:
        for name, page in pages:
            if not Path(page).is_file():
                print(f"screenshot: {page} does not exist, skipped", file=sys.stderr)
                continue
            out = Path(args.out) / f"{name}.png"
            found = problems(save_screenshot(driver, Path(page), out))
            print(
                f"screenshot: {page} -> {out}" + (f" ({'; '.join(found)})" if found else ""), file=sys.stderr
            )
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
