"""The Google Cloud Vision surface through the unmodified `google-cloud-vision` client (REST transport,
`http://` endpoint, API key), and raw REST where the client cannot show the wire (enum spelling,
`?key=`, whole-call errors)."""

import base64
import json
import os

import pytest
import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import vision
from google.oauth2.credentials import Credentials as BearerCredentials

from conftest import GOOGLE_KEY, KEYS, photo
from rendered_text import pdf_with_text, render

T = vision.Feature.Type


def google(server, **options):
    return vision.ImageAnnotatorClient(transport="rest", client_options=ClientOptions(
        api_endpoint=server.url, **({"api_key": GOOGLE_KEY} | options)))


def annotate(client, content, *types, context=None):
    features = [vision.Feature(type_=t) for t in types]
    request = vision.AnnotateImageRequest(image=vision.Image(content=content), features=features,
                                          image_context=context)
    return client.batch_annotate_images(requests=[request]).responses[0]


def test_every_feature_of_a_portrait_is_answered_and_unsupported_ones_are_named(cloud):
    response = annotate(google(cloud), photo("astronaut.png"), T.LABEL_DETECTION, T.OBJECT_LOCALIZATION,
                        T.FACE_DETECTION, T.SAFE_SEARCH_DETECTION, T.IMAGE_PROPERTIES, T.CROP_HINTS,
                        T.LANDMARK_DETECTION, T.WEB_DETECTION,
                        context=vision.ImageContext(crop_hints_params=vision.CropHintsParams(aspect_ratios=[1.0, 1.77])))
    assert response.error.code == 12, "LANDMARK and WEB have no model"
    assert "LANDMARK_DETECTION" in response.error.message and "WEB_DETECTION" in response.error.message
    labels = {l.description: l.score for l in response.label_annotations}
    assert labels["Person"] > 0.8 and labels["Human face"] > 0.5, labels
    assert all(l.topicality == l.score and not l.mid for l in response.label_annotations)
    [person] = [o for o in response.localized_object_annotations if o.name == "Person"]
    corners = person.bounding_poly.normalized_vertices
    assert len(corners) == 4 and all(0 <= v.x <= 1 and 0 <= v.y <= 1 for v in corners)
    [face] = response.face_annotations
    marks = {m.type_.name: m.position for m in face.landmarks}
    assert set(marks) == {"LEFT_EYE", "RIGHT_EYE", "NOSE_TIP", "MOUTH_LEFT", "MOUTH_RIGHT"}
    box = face.fd_bounding_poly.vertices
    assert all(box[0].x < p.x < box[1].x and box[0].y < p.y < box[2].y for p in marks.values()), "inside the box"
    assert marks["LEFT_EYE"].x < marks["NOSE_TIP"].x < marks["RIGHT_EYE"].x, "left is the viewer's left"
    assert marks["LEFT_EYE"].y < marks["NOSE_TIP"].y < marks["MOUTH_LEFT"].y
    assert abs(face.roll_angle) < 15 and abs(face.pan_angle) < 30 and face.detection_confidence > 0.5
    # Emotions and headwear have no model: UNKNOWN.
    assert face.joy_likelihood.name == "UNKNOWN" and face.headwear_likelihood.name == "UNKNOWN"
    assert face.under_exposed_likelihood.name == "VERY_UNLIKELY"
    safe = response.safe_search_annotation
    assert safe.adult.name == "VERY_UNLIKELY" and safe.violence.name == "UNKNOWN"
    colors = response.image_properties_annotation.dominant_colors.colors
    assert len(colors) >= 3 and 0.9 < sum(c.pixel_fraction for c in colors) <= 1.0001
    assert colors[0].pixel_fraction >= colors[-1].pixel_fraction
    hints = response.crop_hints_annotation.crop_hints
    assert len(hints) == 2
    for hint, ratio in zip(hints, [1.0, 1.77]):
        v = hint.bounding_poly.vertices
        assert abs((v[1].x - v[0].x) / (v[2].y - v[1].y) - ratio) < 0.02
        assert 0 < hint.importance_fraction <= 1


def test_text_comes_as_words_and_as_a_tree_down_to_symbols_with_breaks(cloud):
    page, lines = render("latin")
    client = google(cloud)
    response = annotate(client, page, T.DOCUMENT_TEXT_DETECTION, T.TEXT_DETECTION,
                        context=vision.ImageContext(language_hints=["en"]))
    assert not response.error.message
    whole, *words = response.text_annotations
    assert whole.locale == "en" and whole.description == "".join(line + "\n" for line in lines)
    assert [w.description for w in words] == " ".join(lines).split()
    full = response.full_text_annotation
    assert full.text == whole.description
    [page_tree] = full.pages
    tree_words = [w for b in page_tree.blocks for p in b.paragraphs for w in p.words]
    assert ["".join(s.text for s in w.symbols) for w in tree_words] == [w.description for w in words]
    breaks = [w.symbols[-1].property.detected_break.type_.name for w in tree_words]
    assert breaks.count("LINE_BREAK") + breaks.count("EOL_SURE_SPACE") == len(lines)
    assert breaks[-1] == "LINE_BREAK" and breaks[0] == "SPACE"
    assert all(b.block_type.name == "TEXT" for b in page_tree.blocks)
    assert page_tree.property.detected_languages[0].language_code == "en"


def test_a_batch_answers_each_image_and_a_bad_one_gets_its_own_error(cloud):
    client = google(cloud)
    requests_ = [vision.AnnotateImageRequest(image=vision.Image(content=content), features=[vision.Feature(type_=T.LABEL_DETECTION, max_results=5)])
                 for content in [photo("chelsea.png"), b"not an image", photo("coffee.png")]]
    cat, bad, coffee = client.batch_annotate_images(requests=requests_).responses
    assert "Cat" in [l.description for l in cat.label_annotations] and len(cat.label_annotations) == 5
    assert bad.error.code == 3 and bad.error.message == "Bad image data." and not bad.label_annotations
    assert coffee.label_annotations and not coffee.error.message
    # Over Google's 20 MB a file: that image's error, not the call's.
    [huge] = client.batch_annotate_images(requests=[vision.AnnotateImageRequest(
        image=vision.Image(content=b"\xff" * (20 * 1024 * 1024 + 1)),
        features=[vision.Feature(type_=T.LABEL_DETECTION)])]).responses
    assert huge.error.code == 3 and "20971520" in huge.error.message
    # The single-feature helper.
    assert len(client.label_detection(image=vision.Image(content=photo("chelsea.png")), max_results=1).label_annotations) == 1
    # More than 16 images is a whole-call error.
    with pytest.raises(gexc.BadRequest):
        client.batch_annotate_images(requests=requests_[:1] * 17)


def test_keys_are_google_keys_in_any_of_the_three_places(cloud):
    content = vision.Image(content=photo("chelsea.png"))
    with pytest.raises(gexc.BadRequest) as wrong:
        google(cloud, api_key="not-a-key").label_detection(image=content)
    assert wrong.value.reason == "API_KEY_INVALID" and wrong.value.domain == "googleapis.com"
    with pytest.raises(gexc.BadRequest):  # an Azure key does not open the Google surface
        google(cloud, api_key=KEYS[0]).label_detection(image=content)
    anonymous = vision.ImageAnnotatorClient(transport="rest", credentials=AnonymousCredentials(),
                                            client_options=ClientOptions(api_endpoint=cloud.url))
    with pytest.raises(gexc.Forbidden):
        anonymous.label_detection(image=content)
    bearer = vision.ImageAnnotatorClient(transport="rest", credentials=BearerCredentials(token=GOOGLE_KEY),
                                         client_options=ClientOptions(api_endpoint=cloud.url))
    assert bearer.label_detection(image=content).label_annotations
    body = {"requests": [{"image": {"content": base64.b64encode(photo("chelsea.png")).decode()},
                          "features": [{"type": "SAFE_SEARCH_DETECTION"}]}]}
    by_query = requests.post(f"{cloud.url}/v1/images:annotate?key={GOOGLE_KEY}", json=body)
    assert by_query.status_code == 200
    assert by_query.json()["responses"][0]["safeSearchAnnotation"]["adult"] == "VERY_UNLIKELY", "names by default"
    numbers = requests.post(f"{cloud.url}/v1/projects/p/locations/eu/images:annotate?%24alt=json%3Benum-encoding%3Dint",
                            json=body, headers={"x-goog-api-key": GOOGLE_KEY})
    assert numbers.json()["responses"][0]["safeSearchAnnotation"]["adult"] == 1, "numbers when asked"
    missing = requests.post(f"{cloud.url}/v1/images:annotate", json=body)
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    broken = requests.post(f"{cloud.url}/v1/images:annotate", data=b"{", headers={"x-goog-api-key": GOOGLE_KEY})
    assert broken.status_code == 400 and broken.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_files_are_read_page_by_page_and_negative_pages_count_from_the_end(cloud):
    pdf = pdf_with_text([["Page one says hello"], ["Page two says goodbye"], ["Page three says nothing"]])
    request = vision.AnnotateFileRequest(input_config=vision.InputConfig(content=pdf, mime_type="application/pdf"),
                                         features=[vision.Feature(type_=T.DOCUMENT_TEXT_DETECTION)], pages=[1, -1])
    [file] = google(cloud).batch_annotate_files(requests=[request]).responses
    assert file.total_pages == 3
    assert [p.context.page_number for p in file.responses] == [1, 3]
    assert file.responses[0].full_text_annotation.text == "Page one says hello\n"
    assert file.responses[1].full_text_annotation.text == "Page three says nothing\n"
    page = file.responses[0].full_text_annotation.pages[0]
    assert (page.width, page.height) == (612, 792), "PDF pages in points"
    word = page.blocks[0].paragraphs[0].words[0]
    assert all(0 <= v.x <= 1 for v in word.bounding_box.normalized_vertices)


def test_an_asynchronous_file_is_read_from_a_mapped_bucket_and_written_back(cloud):
    pages = [[f"Line {n} of the report"] for n in range(1, 4)]
    (cloud.storage / "vista-in" / "report.pdf").write_bytes(pdf_with_text(pages))
    request = vision.AsyncAnnotateFileRequest(
        input_config=vision.InputConfig(gcs_source=vision.GcsSource(uri="gs://vista-in/report.pdf"),
                                        mime_type="application/pdf"),
        features=[vision.Feature(type_=T.DOCUMENT_TEXT_DETECTION)],
        output_config=vision.OutputConfig(gcs_destination=vision.GcsDestination(uri="gs://vista-in/out/"), batch_size=2))
    client = google(cloud)
    operation = client.async_batch_annotate_files(requests=[request])
    result = operation.result(timeout=120)
    assert result.responses[0].output_config.gcs_destination.uri == "gs://vista-in/out/"
    written = sorted(os.listdir(cloud.storage / "vista-in" / "out"))
    assert written == ["output-1-to-2.json", "output-3-to-3.json"]
    first = json.loads((cloud.storage / "vista-in" / "out" / written[0]).read_text())
    assert [r["context"]["pageNumber"] for r in first["responses"]] == [1, 2]
    assert first["responses"][1]["fullTextAnnotation"]["text"] == "Line 2 of the report\n"
    # An unmapped bucket is refused before anything is accepted.
    request.input_config.gcs_source.uri = "gs://elsewhere/report.pdf"
    with pytest.raises(gexc.BadRequest, match="bucket 'elsewhere' is not mapped"):  # FAILED_PRECONDITION is a 400
        client.async_batch_annotate_files(requests=[request])
    # An Azure Read client cannot see the Google operation.
    name = operation.operation.name
    assert requests.get(f"{cloud.url}/vision/v3.2/read/analyzeResults/{name.split('/')[-1]}",
                        headers={"Ocp-Apim-Subscription-Key": KEYS[0]}).status_code == 404
