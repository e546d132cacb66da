"""vista studio in a real browser: Debian's chromium driven headless by Playwright (no browser download).
Real photos and a PDF go through the page; the overlay's shapes must equal the JSON's boxes; a wrong key
shows Azure's 401; no request leaves the server's origin; the console stays clean. Screenshots of each
tab are written to tests/.artifacts/studio/."""

import json
import os
import re
import shutil

import pytest
from playwright.sync_api import expect

from conftest import DATA, KEYS, ROOT, Server
from rendered_text import pdf_of_scans, render

ARTIFACTS = os.path.join(ROOT, "tests", ".artifacts", "studio")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: scripts/test.sh installs it with apt-get")
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def studio(browser, server):
    """A fresh page on the studio, with every request, console message and page error recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.requests, page.problems, page.expected = [], [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("console", lambda m: m.type in ("error", "warning") and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.goto(f"{server.url}/studio")
    page.get_by_test_id("key").fill(KEYS[0])
    yield page
    foreign = [u for u in page.requests if not u.startswith((server.url, "blob:", "data:"))]
    assert not foreign, f"requests left the origin: {foreign}"
    # The browser itself logs every failed response; a test names the ones it provokes.
    unexpected = [p for p in page.problems if not any(e in p for e in page.expected)]
    assert not unexpected, unexpected
    context.close()


def shapes(page, kind):
    return page.eval_on_selector_all(f'[data-testid="overlay"] [data-kind="{kind}"]',
                                     "nodes => nodes.map(n => ({label: n.dataset.label, x: +n.getAttribute('x'), "
                                     "y: +n.getAttribute('y'), w: +n.getAttribute('width'), h: +n.getAttribute('height'), "
                                     "hidden: n.classList.contains('hidden')}))")


def test_analyze_draws_exactly_the_boxes_of_the_json(studio):
    studio.get_by_test_id("file").set_input_files(os.path.join(DATA, "motorcycle_left.png"))
    for name in ("caption", "tags", "objects", "people", "smartCrops"):
        studio.get_by_test_id(f"feature-{name}").check()
    studio.get_by_test_id("analyze").click()
    expect(studio.get_by_test_id("json")).not_to_be_empty()
    result = json.loads(studio.get_by_test_id("json").text_content())
    overlay = studio.get_by_test_id("overlay")
    assert overlay.get_attribute("viewBox") == f"0 0 {result['metadata']['width']} {result['metadata']['height']}"
    drawn = sorted((s["label"], s["x"], s["y"], s["w"], s["h"]) for s in shapes(studio, "object"))
    expected = sorted((o["tags"][0]["name"], o["boundingBox"]["x"], o["boundingBox"]["y"], o["boundingBox"]["w"],
                       o["boundingBox"]["h"]) for o in result["objectsResult"]["values"])
    assert drawn == expected and drawn
    assert len(shapes(studio, "person")) == len(result["peopleResult"]["values"])
    assert len(shapes(studio, "smartCrop")) == len(result["smartCropsResult"]["values"])
    assert result["captionResult"]["text"] in studio.locator("#caption").text_content()
    studio.screenshot(path=os.path.join(ARTIFACTS, "analyze.png"), full_page=True)
    # The slider hides weak shapes without removing them; a kind's toggle hides all of its shapes.
    studio.locator("#confidence").fill("1")
    assert all(s["hidden"] for s in shapes(studio, "object"))
    studio.locator("#confidence").fill("0")
    studio.get_by_test_id("show-object").uncheck()
    assert all(s["hidden"] for s in shapes(studio, "object")) and len(shapes(studio, "object")) == len(expected)
    assert "curl -X POST" in studio.locator("#snippet").text_content()


def test_text_lines_and_words_are_drawn_and_a_wrong_key_shows_401(studio, tmp_path):
    page_png, lines = render("latin")
    path = tmp_path / "page.png"
    path.write_bytes(page_png)
    studio.get_by_test_id("file").set_input_files(str(path))
    studio.get_by_test_id("feature-read").check()
    studio.get_by_test_id("analyze").click()
    studio.locator('[data-kind="line"]').first.wait_for(state="attached")
    drawn_lines = studio.eval_on_selector_all('[data-kind="line"]', "n => n.map(x => x.dataset.label)")
    assert drawn_lines == lines
    assert len(studio.eval_on_selector_all('[data-kind="word"]', "n => n")) == len(" ".join(lines).split())
    studio.expected.append("the server responded with a status of 401")
    studio.get_by_test_id("key").fill("wrong-key")
    studio.get_by_test_id("analyze").click()
    error = studio.get_by_test_id("error")
    error.wait_for(state="visible")
    assert error.text_content().startswith("401")


def test_read_background_and_search_tabs(studio, tmp_path):
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(pdf_of_scans([render("latin")[0], render("accented")[0]]))
    studio.get_by_test_id("tab-read").click()
    assert studio.get_by_test_id("tab-read").get_attribute("aria-selected") == "true"
    studio.get_by_test_id("read-file").set_input_files(str(pdf))
    studio.get_by_test_id("read").click()
    expect(studio.get_by_test_id("read-status")).to_have_text("succeeded", timeout=60000)
    assert studio.get_by_test_id("read-page").text_content() == "page 1 of 2"
    assert render("latin")[1][0] in studio.get_by_test_id("read-text").text_content()
    studio.screenshot(path=os.path.join(ARTIFACTS, "read.png"), full_page=True)
    studio.locator("#page-next").click()
    assert studio.get_by_test_id("read-page").text_content() == "page 2 of 2"

    studio.get_by_test_id("tab-background").click()
    studio.get_by_test_id("background-file").set_input_files(os.path.join(DATA, "chelsea.png"))
    studio.get_by_test_id("background").click()
    expect(studio.get_by_test_id("background-matte")).to_have_attribute("src", re.compile("^blob:"))
    expect(studio.get_by_test_id("background-result")).to_have_attribute("src", re.compile("^blob:"))
    for image in ("background-result", "background-matte"):
        assert studio.get_by_test_id(image).evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    studio.screenshot(path=os.path.join(ARTIFACTS, "background.png"), full_page=True)

    studio.get_by_test_id("tab-search").click()
    studio.get_by_test_id("search-files").set_input_files([os.path.join(DATA, n) for n in
                                                          ("chelsea.png", "motorcycle_left.png", "coffee.png")])
    expect(studio.get_by_test_id("search-status")).to_contain_text("ready", timeout=60000)
    studio.get_by_test_id("query").fill("a cat")
    studio.get_by_test_id("search").click()
    expect(studio.locator('[data-testid="ranking"] li')).to_have_count(3)
    assert studio.locator('[data-testid="ranking"] li').first.get_attribute("data-name") == "chelsea.png"
    studio.screenshot(path=os.path.join(ARTIFACTS, "search.png"), full_page=True)


def test_the_studio_is_strict_about_what_it_loads_and_can_be_turned_off(server):
    import requests
    page = requests.get(f"{server.url}/studio")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in page.text, "no inline script"
    assert requests.get(f"{server.url}/studio/favicon.svg").status_code == 200
    with Server("--no-studio") as plain:
        assert requests.get(f"{plain.url}/studio").status_code == 404


def test_the_32_mode_draws_faces_and_the_page_reads_at_phone_width_in_dark(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = context.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.goto(f"{server.url}/studio")
    page.get_by_test_id("key").fill(KEYS[0])
    page.get_by_label("3.2").check()
    page.get_by_test_id("file").set_input_files(os.path.join(DATA, "astronaut.png"))
    page.get_by_test_id("analyze").click()
    expect(page.get_by_test_id("json")).not_to_be_empty()
    result = json.loads(page.get_by_test_id("json").text_content())
    drawn = page.eval_on_selector_all('[data-kind="face"]', "n => n.map(x => [+x.getAttribute('x'), +x.getAttribute('y')])")
    assert drawn == [[f["faceRectangle"]["left"], f["faceRectangle"]["top"]] for f in result["faces"]] and drawn
    # Nothing wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=os.path.join(ARTIFACTS, "analyze-32-phone-dark.png"), full_page=True)
    assert not problems, problems
    context.close()
