"""Image Analysis 3.2 routes, judged by Azure's own 3.2 SDK (azure-cognitiveservices-vision-computervision
0.9.1, which uploads with chunked transfer encoding) against a running vista."""

import io

import pytest
import requests
from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from azure.cognitiveservices.vision.computervision.models import ComputerVisionErrorResponseException, Details, \
    VisualFeatureTypes
from msrest.authentication import CognitiveServicesCredentials
from msrest.exceptions import HttpOperationError
from PIL import Image

from conftest import KEYS, Server, photo


@pytest.fixture(scope="module")
def cv(server):
    return ComputerVisionClient(server.url, CognitiveServicesCredentials(KEYS[0]))


def stream(name):
    return io.BytesIO(photo(name))


def error_codes(call):
    with pytest.raises(ComputerVisionErrorResponseException) as e:
        call()
    return e.value.error.error.code, e.value.error.error.innererror.code


def test_analyze_objects(cv):
    result = cv.analyze_image_in_stream(stream("motorcycle_left.png"), visual_features=[VisualFeatureTypes.objects])
    assert (result.metadata.width, result.metadata.height, result.metadata.format) == (741, 500, "Png")
    assert result.request_id and result.model_version == "2021-05-01"
    motorcycle = next(o for o in result.objects if o.object_property == "motorcycle")
    assert 0 < motorcycle.confidence <= 1
    assert motorcycle.rectangle.x + motorcycle.rectangle.w <= 741 and motorcycle.rectangle.h > 200
    assert result.tags is None and result.faces is None, "only what was asked for"


def parent_chain(detected):
    chain, parent = [], detected.parent
    while parent is not None:
        chain.append(parent.object_property)
        parent = parent.parent
    return chain


def test_objects_carry_their_wordnet_parents(cv):
    motorcycle = next(o for o in cv.detect_objects_in_stream(stream("motorcycle_left.png")).objects
                      if o.object_property == "motorcycle")
    assert parent_chain(motorcycle) == ["vehicle"]
    cat = next(o for o in cv.detect_objects_in_stream(stream("chelsea.png")).objects if o.object_property == "cat")
    assert parent_chain(cat) == ["carnivore", "mammal", "animal"]
    cup = next(o for o in cv.detect_objects_in_stream(stream("coffee.png")).objects if o.object_property == "cup")
    assert parent_chain(cup) == ["tableware"]


def test_detect(cv):
    result = cv.detect_objects_in_stream(stream("coffee.png"))
    assert "cup" in [o.object_property for o in result.objects]
    assert result.metadata.format == "Png"


def test_area_of_interest_surrounds_the_astronaut(cv):
    area = cv.get_area_of_interest_in_stream(stream("astronaut.png")).area_of_interest
    assert area.x < 60 and area.y < 40 and area.w > 300 and area.h > 400
    assert area.x + area.w <= 512 and area.y + area.h <= 512


@pytest.mark.parametrize("smart", [True, False])
def test_thumbnails_decode_to_the_requested_size_in_the_input_format(cv, smart):
    jpeg = io.BytesIO()
    Image.open(stream("astronaut.png")).convert("RGB").save(jpeg, "JPEG")
    for data, fmt in [(photo("astronaut.png"), "PNG"), (jpeg.getvalue(), "JPEG")]:
        chunks = cv.generate_thumbnail_in_stream(160, 90, io.BytesIO(data), smart_cropping=smart)
        thumbnail = Image.open(io.BytesIO(b"".join(chunks)))
        assert thumbnail.size == (160, 90) and thumbnail.format == fmt


def test_smart_thumbnails_keep_the_face(cv):
    chunks = cv.generate_thumbnail_in_stream(300, 100, stream("astronaut.png"), smart_cropping=True)
    thumbnail = Image.open(io.BytesIO(b"".join(chunks))).convert("RGB")
    # A 3:1 strip of the portrait: the smart one is taken from the top, where the face is; a centred
    # strip would show the orange suit. Skin is red-dominant but much less saturated than the suit.
    r, g, b = thumbnail.resize((1, 1), Image.BOX).getpixel((0, 0))
    assert not (r > 150 and g < 90), (r, g, b)


def test_models_lists_no_domain_model(cv):
    assert cv.list_models().models_property == []


def test_features_without_a_model_are_refused_with_their_name(cv, server):
    code, inner = error_codes(lambda: cv.analyze_image_in_stream(stream("coffee.png"), visual_features=[
        VisualFeatureTypes.objects], details=[Details.celebrities]))
    assert inner == "InvalidDetails"
    response = requests.post(f"{server.url}/vision/v3.2/analyze?visualFeatures=Objects,Brands", data=photo("coffee.png"),
                             headers={"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"})
    assert response.status_code == 400 and "Brands" in response.json()["error"]["innererror"]["message"]
    code, inner = error_codes(lambda: cv.analyze_image_by_domain_in_stream("celebrities", stream("coffee.png")))
    assert inner == "InvalidModel"


def test_v32_input_rules(cv):
    tiny = io.BytesIO()
    Image.new("RGB", (20, 20)).save(tiny, "PNG")
    assert error_codes(lambda: cv.detect_objects_in_stream(tiny)) == ("InvalidRequest", "InvalidImageSize")
    webp = io.BytesIO()
    Image.open(stream("coffee.png")).save(webp, "WEBP")
    webp.seek(0)
    assert error_codes(lambda: cv.detect_objects_in_stream(webp)) == ("InvalidRequest", "InvalidImageFormat")
    big = io.BytesIO(b"\xff\xd8" + b"\0" * (4 * 1024 * 1024))
    assert error_codes(lambda: cv.detect_objects_in_stream(big)) == ("InvalidRequest", "InvalidImageSize")
    # The SDK raises its untyped HttpOperationError for thumbnails; the body is Azure's envelope all the same.
    with pytest.raises(HttpOperationError) as e:
        cv.generate_thumbnail_in_stream(2000, 10, stream("coffee.png"))
    assert e.value.response.status_code == 400
    assert e.value.response.json()["error"]["innererror"]["code"] == "InvalidThumbnailSize"


def test_v32_url_images_over_4_mb_get_the_32_error(cv, file_server, tmp_path):
    import os
    from conftest import DATA
    big = Image.effect_noise((1200, 1200), 100).convert("RGB")
    path = os.path.join(DATA, "noise-large.bmp")  # served by file_server; over 4 MB as BMP
    big.save(path)
    try:
        assert os.path.getsize(path) > 4 * 1024 * 1024
        assert error_codes(lambda: cv.detect_objects(f"{file_server}/noise-large.bmp")) == \
            ("InvalidRequest", "InvalidImageSize")
    finally:
        os.remove(path)


def test_v32_needs_a_key(server):
    wrong = ComputerVisionClient(server.url, CognitiveServicesCredentials("wrong"))
    with pytest.raises(ComputerVisionErrorResponseException) as e:
        wrong.detect_objects_in_stream(stream("coffee.png"))
    assert e.value.response.status_code == 401


def test_faces(cv):
    result = cv.analyze_image_in_stream(stream("astronaut.png"), visual_features=[VisualFeatureTypes.faces])
    (face,) = result.faces
    box = face.face_rectangle
    assert box.left < 226 < box.left + box.width and box.top < 118 < box.top + box.height  # her nose
    assert 60 < box.width < 160 and face.age is None and face.gender is None
    assert result.objects is None
    assert cv.analyze_image_in_stream(stream("coffee.png"), visual_features=[VisualFeatureTypes.faces]).faces == []


def test_face_age_and_gender_only_when_the_deployment_turns_them_on():
    """The optional FaceRes model (installed by scripts/test.sh) is used only with --face-attributes."""
    with Server("--face-attributes") as on:
        client = ComputerVisionClient(on.url, CognitiveServicesCredentials(KEYS[0]))
        (astronaut,) = client.analyze_image_in_stream(stream("astronaut.png"), visual_features=[VisualFeatureTypes.faces]).faces
        (cameraman,) = client.analyze_image_in_stream(stream("camera.png"), visual_features=[VisualFeatureTypes.faces]).faces
    # Eileen Collins was about 40 when photographed; the cameraman is a young man.
    assert astronaut.gender == "Female" and 25 <= astronaut.age <= 55
    assert cameraman.gender == "Male" and 18 <= cameraman.age <= 50
    assert 60 < astronaut.face_rectangle.width < 160


def drawing(kind, fmt="PNG"):
    from PIL import ImageDraw
    if kind == "clip art":
        image = Image.new("RGB", (400, 300), "white")
        d = ImageDraw.Draw(image)
        d.ellipse((50, 50, 200, 200), fill=(230, 40, 40), outline="black", width=4)
        d.rectangle((220, 80, 360, 250), fill=(40, 90, 220))
        d.polygon([(100, 280), (200, 220), (300, 280)], fill=(250, 200, 0))
    elif kind == "line drawing":
        image = Image.new("RGB", (400, 300), "white")
        d = ImageDraw.Draw(image)
        for i in range(0, 400, 37):
            d.line((i, 0, 400 - i, 300), fill="black", width=2)
        d.ellipse((100, 80, 250, 220), outline="black", width=3)
    else:  # a red disc on blue
        image = Image.new("RGB", (400, 300), (30, 60, 200))
        ImageDraw.Draw(image).ellipse((120, 70, 280, 230), fill=(220, 30, 30))
    out = io.BytesIO()
    image.save(out, fmt)
    out.seek(0)
    return out


def test_image_type_tells_clip_art_and_line_drawings_from_photos(cv):
    kinds = [VisualFeatureTypes.image_type]
    for data in [drawing("clip art"), drawing("clip art", "JPEG")]:
        assert cv.analyze_image_in_stream(data, visual_features=kinds).image_type.clip_art_type >= 2
    line = cv.analyze_image_in_stream(drawing("line drawing"), visual_features=kinds).image_type
    assert line.line_drawing_type == 1
    for name in ["astronaut.png", "coffee.png", "chelsea.png", "camera.png", "motorcycle_left.png"]:
        photo_type = cv.analyze_image_in_stream(stream(name), visual_features=kinds).image_type
        assert (photo_type.clip_art_type, photo_type.line_drawing_type) == (0, 0), name


def test_color_separates_foreground_from_background(cv):
    color = cv.analyze_image_in_stream(drawing("disc"), visual_features=[VisualFeatureTypes.color]).color
    assert (color.dominant_color_foreground, color.dominant_color_background) == ("Red", "Blue")
    assert set(color.dominant_colors) == {"Red", "Blue"} and not color.is_bw_img
    assert len(color.accent_color) == 6 and int(color.accent_color, 16) >= 0
    grey = cv.analyze_image_in_stream(stream("camera.png"), visual_features=[VisualFeatureTypes.color]).color
    assert grey.is_bw_img and grey.dominant_colors[0] in ("Grey", "Black", "White")


def test_adult_scores_ordinary_photos_as_safe_and_omits_gore(cv):
    for name in ["astronaut.png", "coffee.png", "chelsea.png", "camera.png", "motorcycle_left.png"]:
        adult = cv.analyze_image_in_stream(stream(name), visual_features=[VisualFeatureTypes.adult]).adult
        assert not adult.is_adult_content and not adult.is_racy_content, name
        assert 0 <= adult.adult_score < 0.1 and 0 <= adult.racy_score < 0.1, name
        # No gore model: the fields are absent, and the SDK reads them as None rather than a fake score.
        assert adult.is_gory_content is None and adult.gore_score is None


def test_all_pixel_and_model_features_together(cv):
    features = [VisualFeatureTypes.faces, VisualFeatureTypes.adult, VisualFeatureTypes.color,
                VisualFeatureTypes.image_type, VisualFeatureTypes.objects]
    result = cv.analyze_image_in_stream(stream("astronaut.png"), visual_features=features)
    assert len(result.faces) == 1 and result.adult and result.color and result.image_type
    assert "person" in [o.object_property for o in result.objects]
