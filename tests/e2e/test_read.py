"""Reading text: 4.0 `read` through the 4.0 SDK and 3.2 `/ocr` through the 3.2 SDK, on pages the tests
render themselves (Latin, accented, Chinese, Japanese; clean, noisy, skewed, turned), judged by exact
character error rates."""

import io
import os
import time

import pytest
import requests
from azure.ai.vision.imageanalysis.models import VisualFeatures
from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from msrest.authentication import CognitiveServicesCredentials
from PIL import Image, ImageFont

from conftest import DATA, KEYS, Server, pack_without
from rendered_text import (FONTS, PAGES, VARIANTS, cer, page_with_a_line_upside_down, pdf_of_scans, pdf_with_text,
                           render)

# The most errors each page may have (share of characters): Latin scripts read perfectly today; the
# bounds leave room for a stray accent or punctuation mark, not for a lost word.
CER_BOUNDS = {"latin": 0.02, "accented": 0.03, "chinese": 0.05, "japanese": 0.05}


@pytest.fixture(scope="module")
def cv(server):
    return ComputerVisionClient(server.url, CognitiveServicesCredentials(KEYS[0]))


def read(client, image):
    return client.analyze(image_data=image, visual_features=[VisualFeatures.READ]).read


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("script", list(CER_BOUNDS))
def test_pages_are_read_within_their_error_bound(client, script, variant):
    image, expected = render(script, variant)
    result = read(client, image)
    assert len(result.blocks) == 1
    lines = [line.text for line in result.blocks[0].lines]
    assert cer(expected, lines) <= CER_BOUNDS[script], f"{script}/{variant} read as {lines}"


@pytest.mark.parametrize("script", ["latin", "accented", "chinese"])
def test_a_line_upside_down_on_an_upright_page_is_turned_and_read(client, script):
    image, expected = page_with_a_line_upside_down(script)
    lines = read(client, image).blocks[0].lines
    assert cer(expected, [line.text for line in lines]) <= CER_BOUNDS[script], [line.text for line in lines]
    # The turned line's polygon starts at its own top-left: the bottom right of the ink as drawn.
    turned = lines[-1].bounding_polygon
    assert turned[0].x > turned[1].x and turned[0].y > turned[3].y


def test_without_the_line_classifier_the_line_upside_down_is_lost(tmp_path):
    image, expected = page_with_a_line_upside_down("accented")
    with Server(models=str(pack_without(tmp_path, lambda name: name == "ppocr-cls.onnx"))) as server:
        response = requests.post(f"{server.url}/computervision/imageanalysis:analyze?api-version=2024-02-01"
                                 "&features=read", data=image, headers={"Ocp-Apim-Subscription-Key": KEYS[0],
                                                                         "Content-Type": "application/octet-stream"})
    lines = [line["text"] for line in response.json()["readResult"]["blocks"][0]["lines"]]
    assert lines[:-1] == expected[:-1] and expected[-1] not in lines


def test_lines_and_words_have_polygons_inside_the_image_and_words_make_the_line(client):
    image, expected = render("latin", "skew4")
    width, height = Image.open(io.BytesIO(image)).size
    lines = read(client, image).blocks[0].lines
    assert len(lines) == len(expected)
    for line in lines:
        assert len(line.bounding_polygon) == 4
        assert all(0 <= p.x <= width and 0 <= p.y <= height for p in line.bounding_polygon)
        assert " ".join(w.text for w in line.words) == line.text
        assert all(0.5 < w.confidence <= 1 and len(w.bounding_polygon) == 4 for w in line.words)
        # Words run left to right along their line.
        starts = [w.bounding_polygon[0].x for w in line.words]
        assert starts == sorted(starts)


def test_word_boxes_cover_their_words(client):
    image, lines = render("latin")
    first = read(client, image).blocks[0].lines[0]
    # Where the renderer put the ink of each word of the first line (render() draws it at (32, 32)).
    font = ImageFont.truetype(os.path.join(FONTS, PAGES["latin"][0]), 32)
    for word in first.words[:4]:
        offset = font.getlength(lines[0][:lines[0].index(word.text)])
        left, _, right, _ = font.getbbox(word.text)
        ink = (32 + offset + left, 32 + offset + right)
        xs = [p.x for p in word.bounding_polygon]
        overlap = min(ink[1], max(xs)) - max(ink[0], min(xs))
        assert overlap / (max(ink[1], max(xs)) - min(ink[0], min(xs))) >= 0.75, (word.text, ink, xs)


def test_cjk_characters_are_words_of_their_own(client):
    image, expected = render("japanese")
    line = read(client, image).blocks[0].lines[0]
    assert [w.text for w in line.words] == list(expected[0])


def test_a_page_without_text_has_one_empty_block(client):
    blank = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(blank, "PNG")
    result = read(client, blank.getvalue())
    assert len(result.blocks) == 1 and result.blocks[0].lines == []


@pytest.mark.parametrize("variant,orientation", [("clean", "Up"), ("rot90", "Right"), ("rot180", "Down"),
                                                  ("rot270", "Left")])
def test_legacy_ocr_reports_orientation_and_string_boxes(cv, variant, orientation):
    image, expected = render("latin", variant)
    result = cv.recognize_printed_text_in_stream(io.BytesIO(image), detect_orientation=True, language="en")
    assert result.orientation == orientation and result.language == "en"
    assert abs(result.text_angle) < 0.05  # radians, after the orientation is corrected
    lines = [" ".join(w.text for w in line.words) for region in result.regions for line in region.lines]
    assert cer(expected, lines) <= CER_BOUNDS["latin"]
    x, y, w, h = map(int, result.regions[0].lines[0].words[0].bounding_box.split(","))
    assert w > 0 and h > 0


def test_legacy_ocr_without_orientation_detection_reads_the_page_as_it_stands(cv):
    image, _ = render("latin", "clean")
    result = cv.recognize_printed_text_in_stream(io.BytesIO(image), detect_orientation=False)
    assert result.orientation == "NotDetected" and result.regions


def test_legacy_ocr_refuses_a_language_it_does_not_know(server):
    # The SDK checks the language itself, so this goes over plain HTTP.
    image, _ = render("latin")
    response = requests.post(f"{server.url}/vision/v3.2/ocr?language=xx", data=image, headers={
        "Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["innererror"]["code"]) == ("InvalidRequest", "NotSupportedLanguage")


def wait_for(cv, operation_id, timeout=120):
    from azure.cognitiveservices.vision.computervision.models import OperationStatusCodes
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = cv.get_read_result(operation_id)
        if result.status not in (OperationStatusCodes.not_started, OperationStatusCodes.running):
            return result
        time.sleep(0.2)
    raise AssertionError(f"operation {operation_id} did not finish in {timeout} s")


def submit(cv, body, **kwargs):
    response = cv.read_in_stream(io.BytesIO(body), raw=True, **kwargs)
    return response.headers["Operation-Location"].split("/")[-1]


def tiff_of(*pages, mode="RGB", compression=None):
    images = [Image.open(io.BytesIO(page)).convert(mode) for page in pages]
    out = io.BytesIO()
    images[0].save(out, "TIFF", save_all=True, append_images=images[1:], compression=compression)
    return out.getvalue()


def test_read_api_reads_an_image_through_the_sdk(cv):
    image, expected = render("latin", "rot180")
    result = wait_for(cv, submit(cv, image, language="en"))
    assert result.status == "succeeded" and result.created_date_time and result.last_updated_date_time
    (page,) = result.analyze_result.read_results
    assert (page.page, page.unit, page.language) == (1, "pixel", "en")
    assert abs(abs(page.angle) - 180) < 5
    assert cer(expected, [line.text for line in page.lines]) <= CER_BOUNDS["latin"]
    line = page.lines[0]
    assert len(line.bounding_box) == 8 and line.appearance.style.name == "other"
    assert all(len(w.bounding_box) == 8 and 0 < w.confidence <= 1 for w in line.words)


def test_read_api_reads_every_page_of_a_tiff_and_honours_page_ranges(cv):
    pages = [render("latin")[0], render("accented")[0], render("latin", "rot90")[0]]
    result = wait_for(cv, submit(cv, tiff_of(*pages)))
    assert [p.page for p in result.analyze_result.read_results] == [1, 2, 3]
    second = result.analyze_result.read_results[1]
    assert cer(render("accented")[1], [line.text for line in second.lines]) <= CER_BOUNDS["accented"]
    chosen = wait_for(cv, submit(cv, tiff_of(*pages), pages=["1", "3-"]))
    assert [p.page for p in chosen.analyze_result.read_results] == [1, 3]


def test_read_api_reads_a_bilevel_fax_tiff(cv):
    # Scanners and fax software write one bit per pixel, CCITT Group 4 compressed.
    pages = [render("latin")[0], render("accented")[0]]
    result = wait_for(cv, submit(cv, tiff_of(*pages, mode="1", compression="group4")))
    for page, script in zip(result.analyze_result.read_results, ["latin", "accented"]):
        assert cer(render(script)[1], [line.text for line in page.lines]) <= CER_BOUNDS[script]


def test_read_api_fetches_a_document_larger_than_an_image_may_be_by_url(cv, file_server):
    # An uncompressed 4000 x 2000 scan after a page of text: 24 MB, over analyze's 20 MB, within Read's 50.
    blank = io.BytesIO()
    Image.new("RGB", (4000, 2000), "white").save(blank, "PNG")
    document = tiff_of(render("latin")[0], blank.getvalue())
    assert 20 * 2**20 < len(document) < 50 * 2**20
    with open(os.path.join(DATA, "large-document.tif"), "wb") as f:
        f.write(document)
    response = cv.read(f"{file_server}/large-document.tif", raw=True)
    result = wait_for(cv, response.headers["Operation-Location"].split("/")[-1])
    first, second = result.analyze_result.read_results
    assert cer(render("latin")[1], [line.text for line in first.lines]) <= CER_BOUNDS["latin"]
    assert second.lines == []


def test_operation_location_names_the_scheme_and_host_a_tls_proxy_in_front_gives(server):
    response = requests.post(f"{server.url}/vision/v3.2/read/analyze", data=render("latin")[0], headers={
        "Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream",
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "vision.example.com"})
    assert response.status_code == 202
    location = response.headers["Operation-Location"]
    assert location.startswith("https://vision.example.com/vision/v3.2/read/analyzeResults/")


def test_read_api_errors_unknown_ids_and_unreadable_documents(server, cv):
    headers = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
    missing = requests.get(f"{server.url}/vision/v3.2/read/analyzeResults/no-such-id", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"
    bad_range = requests.post(f"{server.url}/vision/v3.2/read/analyze?pages=3-1", data=render("latin")[0],
                              headers=headers)
    assert bad_range.status_code == 400 and bad_range.json()["error"]["code"] == "InvalidPageRange"
    # A document that only turns out unreadable when its pages are decoded (a Group 3 fax TIFF: its
    # headers are fine) makes its operation fail, with a reason in the body; it is not lost.
    fax = tiff_of(render("latin")[0], mode="1", compression="group3")
    operation = submit(cv, fax)
    failed = wait_for(cv, operation)
    assert failed.status == "failed" and failed.analyze_result is None
    body = requests.get(f"{server.url}/vision/v3.2/read/analyzeResults/{operation}", headers=headers).json()
    assert body["error"]["code"] == "InvalidImage" and "format" in body["error"]["message"].lower(), body


def test_read_operations_survive_a_restart_and_expire(tmp_path):
    image, expected = render("latin")
    data = str(tmp_path / "data")
    with Server("--data-dir", data, "--read-ttl", "3") as first:
        cv = ComputerVisionClient(first.url, CognitiveServicesCredentials(KEYS[0]))
        operation = submit(cv, image)
        done = wait_for(cv, operation)
    with Server("--data-dir", data, "--read-ttl", "3") as second:
        cv = ComputerVisionClient(second.url, CognitiveServicesCredentials(KEYS[0]))
        # Another process, same store: the result is still there, and nothing of it is readable on disk.
        again = cv.get_read_result(operation)
        assert again.status == done.status == "succeeded"
        assert [l.text for l in again.analyze_result.read_results[0].lines] == expected
        raw = open(os.path.join(data, "operations.redb"), "rb").read()
        assert expected[0].encode() not in raw
        assert oct(os.stat(os.path.join(data, "store.key")).st_mode & 0o777) == "0o600"
        assert oct(os.stat(data).st_mode & 0o777) == "0o700"
        time.sleep(3.5)
        headers = {"Ocp-Apim-Subscription-Key": KEYS[0]}
        expired = requests.get(f"{second.url}/vision/v3.2/read/analyzeResults/{operation}", headers=headers)
        assert expired.status_code == 404


def test_read_api_takes_a_pdfs_text_layer_as_it_is(cv):
    pages = [["Hello PDF world", "Second line here"], ["Page two"]]
    result = wait_for(cv, submit(cv, pdf_with_text(pages)))
    read = result.analyze_result.read_results
    assert [[line.text for line in page.lines] for page in read] == pages
    first = read[0]
    assert (first.unit, first.width, first.height) == ("inch", 8.5, 11)
    # "Hello" starts one inch from the left edge, as the PDF places it; text-layer words are certain.
    assert abs(first.lines[0].bounding_box[0] - 1.0) < 0.05
    assert [w.text for w in first.lines[0].words] == ["Hello", "PDF", "world"]
    assert all(w.confidence == 1 for w in first.lines[0].words)


def test_read_api_reads_a_scanned_pdf_by_ocr_in_inches(cv):
    image, expected = render("latin")
    result = wait_for(cv, submit(cv, pdf_of_scans([image, render("accented")[0]]), pages=["1"]))
    (page,) = result.analyze_result.read_results
    assert page.unit == "inch" and abs(page.width - Image.open(io.BytesIO(image)).width / 200) < 0.05
    assert cer(expected, [line.text for line in page.lines]) <= CER_BOUNDS["latin"]
    assert all(0 <= v <= page.width + 0.01 for v in page.lines[0].bounding_box[0::2])


def test_a_damaged_pdf_is_refused_when_submitted(server):
    response = requests.post(f"{server.url}/vision/v3.2/read/analyze", data=b"%PDF-1.7 not really a pdf",
                             headers={"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/pdf"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidImage"
