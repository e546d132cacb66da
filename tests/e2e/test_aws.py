"""The AWS Rekognition surface through the unmodified boto3 client (SigV4-signed JSON 1.1), redirected
both with `endpoint_url` and with nothing but environment variables."""

import os
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import AWS_PAIR, CLOUD_ENV, KEYS, Server, encoded, photo
from rendered_text import render


def rekognition(server, key_id=AWS_PAIR[0], secret=AWS_PAIR[1]):
    return boto3.client("rekognition", endpoint_url=server.url, region_name="eu-west-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_labels_carry_instances_parents_categories_and_image_properties(cloud):
    response = rekognition(cloud).detect_labels(Image={"Bytes": photo("chelsea.png")}, MaxLabels=10,
                                                Features=["GENERAL_LABELS", "IMAGE_PROPERTIES"],
                                                Settings={"ImageProperties": {"MaxDominantColors": 3}})
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    labels = {l["Name"]: l for l in response["Labels"]}
    assert 1 <= len(labels) <= 10 and all(l["Confidence"] >= 55 for l in labels.values()), "MinConfidence 55"
    cat = labels["Cat"]
    [instance] = cat["Instances"]
    box = instance["BoundingBox"]
    assert 0 <= box["Left"] < box["Left"] + box["Width"] <= 1.0001 and instance["Confidence"] > 30
    assert {"Name": "Mammal"} in cat["Parents"] and "Mammal" in labels, "ancestors are labels too"
    assert {"Name": "Animal"} in labels["Mammal"]["Parents"], "a parent has its own parents"
    assert cat["Categories"] == [{"Name": "Animals and Pets"}]
    assert response["LabelModelVersion"].startswith("vista-")
    properties = response["ImageProperties"]
    assert set(properties["Quality"]) == {"Brightness", "Sharpness", "Contrast"}
    assert all(0 <= v <= 100 for v in properties["Quality"].values())
    colors = properties["DominantColors"]
    assert len(colors) == 3 and all(c["HexCode"] == "#%02x%02x%02x" % (c["Red"], c["Green"], c["Blue"]) for c in colors)
    only_dogs = rekognition(cloud).detect_labels(Image={"Bytes": photo("chelsea.png")},
                                                 Settings={"GeneralLabels": {"LabelInclusionFilters": ["Dog"]}})
    assert only_dogs["Labels"] == []


def test_faces_have_five_landmarks_a_pose_and_quality_and_unmodelled_attributes_are_refused(cloud):
    client = rekognition(cloud)
    [face] = client.detect_faces(Image={"Bytes": photo("astronaut.png")})["FaceDetails"]
    marks = {m["Type"]: (m["X"], m["Y"]) for m in face["Landmarks"]}
    assert set(marks) == {"eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"}
    assert marks["eyeLeft"][0] < marks["nose"][0] < marks["eyeRight"][0]
    box = face["BoundingBox"]
    assert all(box["Left"] < x < box["Left"] + box["Width"] for x, _ in marks.values())
    assert set(face["Pose"]) == {"Roll", "Yaw", "Pitch"} and abs(face["Pose"]["Roll"]) < 15
    assert 0 < face["Quality"]["Brightness"] < 100 and face["Confidence"] > 50
    [everything] = client.detect_faces(Image={"Bytes": photo("astronaut.png")}, Attributes=["ALL"])["FaceDetails"]
    assert "AgeRange" not in everything and "Smile" not in everything, "no model: omitted under ALL"
    with pytest.raises(ClientError) as smile:
        client.detect_faces(Image={"Bytes": photo("astronaut.png")}, Attributes=["SMILE"])
    assert code(smile) == "InvalidParameterException" and "SMILE" in str(smile.value)
    with pytest.raises(ClientError) as age:
        client.detect_faces(Image={"Bytes": photo("astronaut.png")}, Attributes=["AGE_RANGE"])
    assert code(age) == "InvalidParameterException" and "faceres" in str(age.value)
    # With the optional face-attribute model on, ALL adds age range and gender.
    with Server("--face-attributes", env=CLOUD_ENV) as attributes:
        [aged] = rekognition(attributes).detect_faces(Image={"Bytes": photo("astronaut.png")},
                                                      Attributes=["ALL"])["FaceDetails"]
    assert 0 <= aged["AgeRange"]["Low"] < aged["AgeRange"]["High"] < 100
    assert aged["Gender"]["Value"] in ("Male", "Female") and "Smile" not in aged


def test_text_lines_come_first_and_words_name_their_line(cloud):
    page, lines = render("latin")
    client = rekognition(cloud)
    detections = client.detect_text(Image={"Bytes": page})["TextDetections"]
    found_lines = [d for d in detections if d["Type"] == "LINE"]
    words = [d for d in detections if d["Type"] == "WORD"]
    assert [d["DetectedText"] for d in found_lines] == lines
    assert detections[:len(found_lines)] == found_lines and [d["Id"] for d in detections] == list(range(len(detections)))
    by_id = {d["Id"]: d for d in found_lines}
    for word in words:
        assert word["DetectedText"] in by_id[word["ParentId"]]["DetectedText"].split()
        polygon = word["Geometry"]["Polygon"]
        assert len(polygon) == 4 and all(0 <= p["X"] <= 1 for p in polygon)
    assert len(words) == len(" ".join(lines).split())
    none = client.detect_text(Image={"Bytes": page}, Filters={"WordFilter": {"MinConfidence": 100}})
    assert none["TextDetections"] == []
    top_only = client.detect_text(Image={"Bytes": page}, Filters={"RegionsOfInterest": [
        {"BoundingBox": {"Left": 0, "Top": 0, "Width": 1, "Height": 0.35}}]})
    assert [d["DetectedText"] for d in top_only["TextDetections"] if d["Type"] == "LINE"] == lines[:1]


def test_moderation_says_what_it_covers(cloud, tmp_path):
    response = rekognition(cloud).detect_moderation_labels(Image={"Bytes": photo("coffee.png")})
    assert response["ModerationLabels"] == [] and "nudity-only" in response["ModerationModelVersion"]
    with pytest.raises(ClientError) as loop:
        rekognition(cloud).detect_moderation_labels(Image={"Bytes": photo("coffee.png")},
                                                    HumanLoopConfig={"HumanLoopName": "h", "FlowDefinitionArn": "arn:aws:x"})
    assert code(loop) == "InvalidParameterException"
    with Server("--aws-moderation", "refuse", env=CLOUD_ENV) as refusing:
        with pytest.raises(ClientError) as refused:
            rekognition(refusing).detect_moderation_labels(Image={"Bytes": photo("coffee.png")})
        assert code(refused) == "AccessDeniedException"


def test_inputs_aws_does_not_take_are_refused_with_its_exceptions(cloud):
    client = rekognition(cloud)
    cases = [
        ({"S3Object": {"Bucket": "my-bucket", "Name": "n.jpg"}}, "InvalidParameterException"),
        ({"Bytes": b"not an image"}, "InvalidImageFormatException"),
        ({"Bytes": encoded("chelsea.png", "GIF")}, "InvalidImageFormatException"),
        ({"Bytes": b"\xff" * (5 * 1024 * 1024 + 1)}, "ImageTooLargeException"),
    ]
    for image, expected in cases:
        with pytest.raises(ClientError) as refused:
            client.detect_labels(Image=image)
        assert code(refused) == expected, image.keys()
    with pytest.raises(ClientError) as unknown:
        client.compare_faces(SourceImage={"Bytes": photo("astronaut.png")}, TargetImage={"Bytes": photo("astronaut.png")})
    assert code(unknown) == "UnknownOperationException"


def test_signatures_are_checked_and_only_aws_credentials_open_the_surface(cloud):
    image = {"Bytes": photo("chelsea.png")}
    with pytest.raises(ClientError) as wrong_secret:
        rekognition(cloud, secret="wrong").detect_labels(Image=image)
    assert code(wrong_secret) == "InvalidSignatureException"
    with pytest.raises(ClientError) as unknown:
        rekognition(cloud, key_id="AKIDUNKNOWN").detect_labels(Image=image)
    assert code(unknown) == "UnrecognizedClientException"
    with pytest.raises(ClientError) as azure_key:
        rekognition(cloud, key_id=KEYS[0], secret=KEYS[0]).detect_labels(Image=image)
    assert code(azure_key) == "UnrecognizedClientException"
    # Redirected by the environment alone, as an existing app would be.
    script = ("import boto3, sys; r = boto3.client('rekognition').detect_labels("
              "Image={'Bytes': open(sys.argv[1], 'rb').read()}); print(r['Labels'][0]['Name'])")
    env = {**os.environ, "AWS_ENDPOINT_URL_REKOGNITION": cloud.url, "AWS_ACCESS_KEY_ID": AWS_PAIR[0],
           "AWS_SECRET_ACCESS_KEY": AWS_PAIR[1], "AWS_DEFAULT_REGION": "us-east-1"}
    path = os.path.join(os.path.dirname(__file__), "..", ".data", "chelsea.png")
    done = subprocess.run([sys.executable, "-c", script, path], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
