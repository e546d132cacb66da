"""Take from Debian's `darknet` data the two lists vista's object hierarchy needs, as one JSON file:
`coco80`, the WordNet synset of each COCO-80 class (YOLO9000's coco9k.map into its WordTree labels), and
`readable`, the Open Images class names, used as the vocabulary of everyday category names a
hierarchy may show (Azure's own object parents look like Open Images: "Land vehicle", "Mammal").
Standard library only; deterministic output.

Usage: wordtree_names.py COCO9K_MAP WORDTREE_LABELS OPENIMAGES_NAMES OUT
"""

import json
import sys


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def main(coco_map, labels, openimages, out):
    wordtree = lines(labels)
    coco80 = [wordtree[int(index)] for index in lines(coco_map)]
    if len(coco80) != 80:
        sys.exit(f"expected 80 COCO classes in {coco_map}, found {len(coco80)}")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        json.dump({"coco80": coco80, "readable": lines(openimages)}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
