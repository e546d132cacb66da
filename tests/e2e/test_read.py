"""Reading text: 4.0 `read` through the 4.0 SDK and 3.2 `/ocr` through the 3.2 SDK, on pages the tests
render themselves (Latin, accented, Chinese, Japanese; clean, noisy, skewed, turned), judged by exact
character error rates."""

import io
import os

import pytest
import requests
from azure.ai.vision.imageanalysis.models import VisualFeatures
from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from msrest.authentication import CognitiveServicesCredentials
from PIL import Image, ImageFont

from conftest import KEYS
from rendered_text import FONTS, PAGES, VARIANTS, cer, render

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
