"""Builds the two customization measurement sets the way a user would, as COCO files Azure's
customization accepts (relative boxes, images named next to the file):

  scenes/  a scene classifier from the COCO development images grouped by what is in them
           (street, food, sports, kitchen, wildlife, living room), alternate images of each scene
           in train.json and test.json;
  logos/   a synthetic detection task: three logo-like "products" rendered with Debian's fonts and
           pasted at random scales, rotations and partial occlusion onto photos, the training
           photos and the test photos disjoint.

Deterministic (seeded). Needs Pillow and ../shared/evaldata/coco_mini; writes under --out.

    python bench/custom_sets.py --out bench-out/custom
"""

import argparse
import json
import os
import random
import sys

from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
COCO = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "evaldata", "coco_mini"))

# First rule that matches wins (a kitchen often has bowls: kitchen before food).
SCENES = [
    ("kitchen", {"oven", "refrigerator", "microwave", "sink", "toaster"}),
    ("street", {"car", "bus", "truck", "traffic light", "motorcycle", "stop sign", "fire hydrant"}),
    ("wildlife", {"giraffe", "zebra", "elephant", "bear", "sheep", "cow", "horse", "bird"}),
    ("sports", {"sports ball", "tennis racket", "skis", "snowboard", "surfboard", "skateboard", "baseball bat", "frisbee", "kite"}),
    ("living room", {"couch", "tv", "bed"}),
    ("food", {"pizza", "sandwich", "cake", "donut", "hot dog", "broccoli", "banana", "orange", "bowl"}),
]

# Three "products": a word in a font on a coloured label.
LOGOS = [
    ("lemon soda", "LEMONA", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", (250, 220, 40), (20, 90, 30)),
    ("oat crackers", "OATY", "/usr/share/fonts/truetype/liberation/LiberationSerif-Bold.ttf", (150, 60, 20), (250, 240, 210)),
    ("blue mints", "mint+", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf", (30, 60, 200), (255, 255, 255)),
]


def scene_of(labels):
    for name, keys in SCENES:
        if labels & keys:
            return name
    return None


def link_images(out):
    """The COCO images, reachable from `out` by the relative names the files use."""
    target = os.path.join(out, "images")
    if not os.path.exists(target):
        os.symlink(os.path.join(COCO, "images"), target)


def coco_file(images, categories, annotations):
    return {"images": images, "categories": [{"id": i + 1, "name": n} for i, n in enumerate(categories)],
            "annotations": annotations}


def build_scenes(out):
    os.makedirs(out, exist_ok=True)
    link_images(out)
    simple = json.load(open(os.path.join(COCO, "simple.json")))
    names = [n for n, _ in SCENES]
    by_scene = {n: [] for n in names}
    for entry in simple:
        scene = scene_of({b[4] for b in entry["boxes_xywh"]})
        if scene:
            by_scene[scene].append(entry)
    files = {"train": ([], []), "test": ([], [])}
    for scene in names:
        for k, entry in enumerate(by_scene[scene]):
            images, annotations = files["train" if k % 2 == 0 else "test"]
            image_id = len(images) + 1
            images.append({"id": image_id, "width": entry["width"], "height": entry["height"], "file_name": entry["image"]})
            annotations.append({"id": image_id, "image_id": image_id, "category_id": names.index(scene) + 1})
    for split, (images, annotations) in files.items():
        with open(os.path.join(out, f"{split}.json"), "w") as f:
            json.dump(coco_file(images, names, annotations), f)
    return {s: len(files[s][0]) for s in files}


def logo_image(text, font_path, background, ink, height):
    font = ImageFont.truetype(font_path, height)
    box = font.getbbox(text)
    w, h = box[2] - box[0] + height // 2, box[3] - box[1] + height // 2
    label = Image.new("RGBA", (w, h), background + (255,))
    draw = ImageDraw.Draw(label)
    draw.text((height // 4 - box[0], height // 4 - box[1]), text, font=font, fill=ink + (255,))
    draw.rectangle([0, 0, w - 1, h - 1], outline=ink + (255,), width=max(2, height // 12))
    return label


def paste_logos(photo, rng):
    """Pastes 1-3 logos without overlap; returns their (category index, relative box)."""
    canvas = photo.convert("RGB")
    W, H = canvas.size
    placed, boxes = [], []
    for _ in range(rng.randint(1, 3)):
        category = rng.randrange(len(LOGOS))
        _, text, font, background, ink = LOGOS[category]
        logo = logo_image(text, font, background, ink, rng.randint(18, 60))
        logo = logo.rotate(rng.uniform(-20, 20), expand=True, resample=Image.BICUBIC)
        if logo.width >= W * 0.8 or logo.height >= H * 0.8:
            continue
        for _attempt in range(20):
            x, y = rng.randint(0, W - logo.width), rng.randint(0, H - logo.height)
            rect = (x, y, x + logo.width, y + logo.height)
            if all(rect[2] <= p[0] or rect[0] >= p[2] or rect[3] <= p[1] or rect[1] >= p[3] for p in placed):
                break
        else:
            continue
        canvas.paste(logo, (x, y), logo)
        # Partial occlusion: a grey bar over up to a quarter of the logo, now and then.
        if rng.random() < 0.3:
            bw = int(logo.width * rng.uniform(0.1, 0.25))
            ImageDraw.Draw(canvas).rectangle([x + logo.width - bw, y, x + logo.width, y + logo.height], fill=(90, 90, 90))
        placed.append(rect)
        boxes.append((category, [x / W, y / H, logo.width / W, logo.height / H]))
    return canvas, boxes


def build_logos(out):
    os.makedirs(os.path.join(out, "photos"), exist_ok=True)
    simple = json.load(open(os.path.join(COCO, "simple.json")))
    rng = random.Random(20261205)
    files = {"train": ([], []), "test": ([], [])}
    for k, entry in enumerate(simple):
        split = "train" if k < len(simple) // 2 else "test"
        photo = Image.open(os.path.join(COCO, entry["image"]))
        canvas, boxes = paste_logos(photo, rng)
        name = f"photos/{split}-{k:03d}.jpg"
        canvas.save(os.path.join(out, name), quality=90)
        images, annotations = files[split]
        image_id = len(images) + 1
        images.append({"id": image_id, "width": canvas.width, "height": canvas.height, "file_name": name})
        for category, box in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category + 1,
                                "bbox": [round(v, 6) for v in box]})
    for split, (images, annotations) in files.items():
        with open(os.path.join(out, f"{split}.json"), "w") as f:
            json.dump(coco_file(images, [l[0] for l in LOGOS], annotations), f)
    return {s: (len(files[s][0]), len(files[s][1])) for s in files}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench-out/custom")
    args = parser.parse_args()
    if not os.path.isdir(COCO):
        sys.exit(f"{COCO} is not here: the measurement sets are built from the development data")
    scenes = build_scenes(os.path.join(args.out, "scenes"))
    logos = build_logos(os.path.join(args.out, "logos"))
    print(f"scenes: {scenes['train']} training and {scenes['test']} test images")
    print(f"logos: {logos['train'][0]} training images ({logos['train'][1]} boxes), "
          f"{logos['test'][0]} test images ({logos['test'][1]} boxes)")


if __name__ == "__main__":
    main()
