"""U2-Net-p salience features against a running vista: 4.0 smartCrops through Azure's SDK, and
`imageanalysis:segment` (background removal, foreground matting) checked by decoding the PNG."""

import io

import pytest
import requests
from azure.ai.vision.imageanalysis.models import VisualFeatures
from azure.core.exceptions import HttpResponseError
from PIL import Image

from conftest import KEYS, photo

SEGMENT = "/computervision/imageanalysis:segment"


def test_smart_crops_echo_each_ratio_and_keep_the_astronauts_head(client):
    ratios = [0.9, 1.33, 1.8]
    result = client.analyze(image_data=photo("astronaut.png"), visual_features=[VisualFeatures.SMART_CROPS],
                            smart_crops_aspect_ratios=ratios)
    crops = result.smart_crops.list
    assert [c.aspect_ratio for c in crops] == ratios  # echoed exactly, in request order
    for crop in crops:
        box = crop.bounding_box
        assert box.x >= 0 and box.y >= 0 and box.x + box.width <= 512 and box.y + box.height <= 512
        assert abs(box.width / box.height - crop.aspect_ratio) < 0.01
        assert max(box.width, box.height) == 512, "the largest window of the ratio"
        assert box.y <= 40, f"the face (rows ~40..200) stays in the crop: {box}"
    assert result.objects is None and result.people is None


def test_a_default_crop_when_no_ratio_is_given(client):
    result = client.analyze(image_data=photo("motorcycle_left.png"), visual_features=[VisualFeatures.SMART_CROPS])
    (crop,) = result.smart_crops.list
    assert 0.75 <= crop.aspect_ratio <= 1.8
    box = crop.bounding_box
    assert box.x + box.width <= 741 and box.y + box.height <= 500


def test_crops_of_a_portrait_slide_vertically(client):
    portrait = Image.open(io.BytesIO(photo("motorcycle_left.png"))).rotate(90, expand=True)  # 500 x 741
    out = io.BytesIO()
    portrait.save(out, "PNG")
    result = client.analyze(image_data=out.getvalue(), visual_features=[VisualFeatures.SMART_CROPS],
                            smart_crops_aspect_ratios=[1.5])
    box = result.smart_crops.list[0].bounding_box
    assert (box.x, box.width) == (0, 500) and box.height == 333


def test_smart_crop_ratio_out_of_range_is_a_bad_argument(client):
    with pytest.raises(HttpResponseError) as e:
        client.analyze(image_data=photo("coffee.png"), visual_features=[VisualFeatures.SMART_CROPS],
                       smart_crops_aspect_ratios=[0.5])
    assert e.value.status_code == 400 and e.value.error.innererror["code"] == "BadArgument"


def segment(server, mode, data, version="2023-02-01-preview", key=KEYS[0]):
    headers = {"Content-Type": "application/octet-stream"}
    if key:
        headers["Ocp-Apim-Subscription-Key"] = key
    return requests.post(f"{server.url}{SEGMENT}?api-version={version}&mode={mode}", data=data, headers=headers,
                         timeout=120)


def test_background_removal_returns_an_rgba_cutout(server):
    response = segment(server, "backgroundRemoval", photo("astronaut.png"))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    cutout = Image.open(io.BytesIO(response.content))
    assert cutout.mode == "RGBA" and cutout.size == (512, 512)
    alpha = cutout.getchannel("A")
    assert alpha.getpixel((230, 120)) > 200, "the face is foreground"
    assert alpha.getpixel((480, 30)) < 30, "the backdrop is transparent"
    original = Image.open(io.BytesIO(photo("astronaut.png"))).convert("RGB")
    assert cutout.convert("RGB").getpixel((230, 120)) == original.getpixel((230, 120)), "colours are kept"


def test_foreground_matting_returns_a_one_channel_matte_of_the_input_size(server):
    response = segment(server, "foregroundMatting", photo("motorcycle_left.png"), version="2023-04-01-preview")
    assert response.status_code == 200, response.text
    matte = Image.open(io.BytesIO(response.content))
    assert matte.mode == "L" and matte.size == (741, 500)
    assert matte.getpixel((370, 250)) > 200 and matte.getpixel((10, 10)) < 30


def test_large_cutouts_are_capped_at_16_megapixels(server):
    big = Image.new("RGB", (5000, 4000), (40, 90, 160))  # 20 megapixels
    big.paste((230, 200, 40), (1500, 1000, 3500, 3000))
    out = io.BytesIO()
    big.save(out, "JPEG", quality=80)
    response = segment(server, "backgroundRemoval", out.getvalue())
    assert response.status_code == 200, response.text
    width, height = Image.open(io.BytesIO(response.content)).size
    assert 15_900_000 < width * height <= 16_000_000
    assert abs(width / height - 1.25) < 0.001
    matte = segment(server, "foregroundMatting", out.getvalue())
    assert Image.open(io.BytesIO(matte.content)).size == (5000, 4000), "mattes keep the input size"


def test_segment_errors_are_azure_shaped(server):
    for response, status, inner in [
        (segment(server, "blur", photo("coffee.png")), 400, "BadArgument"),
        (segment(server, "backgroundRemoval", photo("coffee.png"), version="2023-10-01"), 400, None),
        (segment(server, "backgroundRemoval", b"not an image"), 400, "InvalidImageFormat"),
        (segment(server, "backgroundRemoval", photo("coffee.png"), key=None), 401, None),
    ]:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert response.headers["x-ms-error-code"] == error["code"]
        assert error.get("innererror", {}).get("code") == inner
