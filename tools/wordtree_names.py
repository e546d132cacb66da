"""Take from Debian's `darknet` data the lists vista's object hierarchy and tags need, as one JSON file:
`coco80`, the WordNet synset of each COCO-80 class (YOLO9000's coco9k.map into its WordTree labels),
`readable`, the Open Images class names, used as the vocabulary of everyday category names a
hierarchy may show (Azure's own object parents look like Open Images: "Land vehicle", "Mammal"), and
`imagenet1k`, [synset, short name] of each ImageNet-1k class in the classifiers' order (sorted synsets;
darknet's ImageNet-22k list starts with the 1k classes). Standard library only; deterministic output.

Usage: wordtree_names.py COCO9K_MAP WORDTREE_LABELS OPENIMAGES_NAMES IMAGENET_LABELS IMAGENET_NAMES OUT
"""

import json
import sys


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def main(coco_map, labels, openimages, imagenet_labels, imagenet_names, out):
    wordtree = lines(labels)
    coco80 = [wordtree[int(index)] for index in lines(coco_map)]
    if len(coco80) != 80:
        sys.exit(f"expected 80 COCO classes in {coco_map}, found {len(coco80)}")
    imagenet1k = sorted(zip(lines(imagenet_labels)[:1000], lines(imagenet_names)[:1000]))
    if len({synset for synset, _ in imagenet1k}) != 1000:
        sys.exit(f"expected 1000 distinct ImageNet classes at the start of {imagenet_labels}")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        json.dump({"coco80": coco80, "readable": lines(openimages), "imagenet1k": imagenet1k}, f, indent=1,
                  sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    main(*sys.argv[1:])
