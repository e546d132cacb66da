"""Reading the scripts PP-OCR lacks (Cyrillic, Arabic, Greek, Hebrew, Hangul, Devanagari, Thai) with
Tesseract, found by script detection or named by the request's language, and the Read API's
`natural` reading order, on pages the tests render themselves."""

import io
import os

import pytest
import requests
from azure.ai.vision.imageanalysis.models import VisualFeatures
from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from msrest.authentication import CognitiveServicesCredentials
from PIL import Image, ImageDraw, ImageFont

from conftest import KEYS, Server, pack_without
from rendered_text import FONTS, VARIANTS, cer, render
from test_read import submit, wait_for

# The most errors each page may have, from what Tesseract's fast models read today: Greek loses
# "τεμπέλικο" (read with a micro sign, then dropped as doubtful), Thai turned pages a few marks,
# Korean a few spaces (Tesseract splits Korean words between syllables; vista rejoins them by the gaps).
CER_BOUNDS = {"cyrillic": 0.02, "arabic": 0.02, "greek": 0.22, "hebrew": 0.02, "korean": 0.15,
              "devanagari": 0.02, "thai": 0.15}
# Turned pages that read worse than their script's bound: the Arabic page turned 180° loses its first
# word (10%).
VARIANT_BOUNDS = {("arabic", "rot180"): 0.12}


@pytest.fixture(scope="module")
def cv(server):
    return ComputerVisionClient(server.url, CognitiveServicesCredentials(KEYS[0]))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("script", list(CER_BOUNDS))
def test_other_scripts_are_detected_and_read_within_their_error_bound(client, script, variant):
    image, expected = render(script, variant)
    result = client.analyze(image_data=image, visual_features=[VisualFeatures.READ]).read
    lines = [line.text for line in result.blocks[0].lines]
    bound = VARIANT_BOUNDS.get((script, variant), CER_BOUNDS[script])
    assert cer(expected, lines) <= bound, f"{script}/{variant} read as {lines}"


def tesseract_runs(server):
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    counts = [line.split()[-1] for line in metrics.splitlines()
              if line.startswith('vista_model_inference_seconds_count{model="tesseract"}')]
    return float(counts[0]) if counts else 0.0


def test_legacy_ocr_reads_cyrillic_when_asked_for_russian(cv, server):
    runs_before = tesseract_runs(server)
    image, expected = render("cyrillic", "rot180")
    result = cv.recognize_printed_text_in_stream(io.BytesIO(image), detect_orientation=True, language="ru")
    assert result.orientation == "Down" and result.language == "ru"
    lines = [" ".join(w.text for w in line.words) for region in result.regions for line in region.lines]
    assert cer(expected, lines) <= CER_BOUNDS["cyrillic"], lines
    # Tesseract's runs are model time like ONNX Runtime's, in the same per-model metric.
    assert tesseract_runs(server) > runs_before


def test_read_api_reads_arabic_right_to_left_with_word_boxes_in_order(cv):
    image, expected = render("arabic")
    result = wait_for(cv, submit(cv, image, language="ar"))
    (page,) = result.analyze_result.read_results
    assert page.language == "ar"
    assert cer(expected, [line.text for line in page.lines]) <= CER_BOUNDS["arabic"]
    words = page.lines[0].words
    assert [w.text for w in words] == expected[0].split()
    # Arabic reads right to left: each word's box lies left of the one before it.
    lefts = [min(w.bounding_box[0::2]) for w in words]
    assert lefts == sorted(lefts, reverse=True), lefts


def two_column_page():
    font = ImageFont.truetype(os.path.join(FONTS, "DejaVuSans.ttf"), 28)
    image = Image.new("RGB", (1150, 560), "white")
    draw = ImageDraw.Draw(image)
    draw.text((40, 30), "Quarterly report of the northern office", font=font, fill=(20, 20, 20))
    left = ["Sales rose in spring", "as new stores opened", "across the region"]
    right = ["Costs fell in autumn", "after the move to", "the smaller building"]
    for i, (a, b) in enumerate(zip(left, right)):
        draw.text((40, 130 + 50 * i), a, font=font, fill=(20, 20, 20))
        draw.text((620, 130 + 50 * i), b, font=font, fill=(20, 20, 20))
    draw.text((40, 480), "Prepared by the finance team", font=font, fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), left, right


def test_natural_reading_order_reads_column_by_column(cv):
    image, left, right = two_column_page()
    natural = wait_for(cv, submit(cv, image, reading_order="natural"))
    lines = [line.text for line in natural.analyze_result.read_results[0].lines]
    assert lines == ["Quarterly report of the northern office", *left, *right, "Prepared by the finance team"]
    basic = wait_for(cv, submit(cv, image, reading_order="basic"))
    lines = [line.text for line in basic.analyze_result.read_results[0].lines]
    assert lines[1:3] == [left[0], right[0]], "basic order reads across the columns, row by row"


def test_a_language_whose_model_is_not_installed_is_refused(tmp_path):
    pack = pack_without(tmp_path, lambda name: name == "tesseract")
    image, _ = render("cyrillic")
    headers = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
    with Server(models=str(pack)) as server:
        legacy = requests.post(f"{server.url}/vision/v3.2/ocr?language=ru", data=image, headers=headers)
        read = requests.post(f"{server.url}/vision/v3.2/read/analyze?language=ru", data=image, headers=headers)
        english = requests.post(f"{server.url}/vision/v3.2/ocr?language=en", data=image, headers=headers)
    assert legacy.status_code == 400 and legacy.json()["error"]["innererror"]["code"] == "NotSupportedLanguage"
    assert "'rus'" in legacy.json()["error"]["innererror"]["message"]
    assert read.status_code == 400 and read.json()["error"]["code"] == "NotSupportedLanguage"
    assert english.status_code == 200
