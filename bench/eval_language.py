"""Quality of the features that name things, on ../shared/evaldata/coco_mini (skips when absent):
tag precision/recall against the COCO categories present in each image, caption BLEU-4 and CIDEr-D against
the 5 COCO references, text→image retrieval recall@1/@5 with COCO captions as queries, category search in
English and Spanish (this script's own translations of the COCO class names, not evaluation text), and the
p50 latency of 4.0 analyze with all seven features.

    .venv-test/bin/python bench/eval_language.py [--evaldata DIR] [--url URL --key KEY] [--translated FILE]

--translated names a JSON file {image file name: that image's first COCO caption in another language},
kept outside the repository (it is derived from evaluation data); with it, caption→image recall is also
measured with the translated captions as queries.

Tags are scored only where they name a COCO category (other tags, "animal" or "furniture", are neither
right nor wrong against COCO's 80 names); an image counts when COCO annotated its boxes.
"""

import collections
import json
import math
import os
import re
import statistics
import time

import requests

from common import evaluation_args, server_url

ANALYZE = "/computervision/imageanalysis:analyze?api-version=2024-02-01&features="
ALL_FEATURES = "caption,denseCaptions,objects,people,read,smartCrops,tags"


def tokens(sentence):
    return re.findall(r"[a-z0-9]+", sentence.lower())


def ngrams(words, n):
    return collections.Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def bleu4(candidates, references):
    """Corpus BLEU-4 (Papineni et al.): clipped n-gram precisions, brevity penalty by closest reference."""
    matched, total = [0] * 4, [0] * 4
    length, reference_length = 0, 0
    for candidate, refs in zip(candidates, references):
        words, ref_words = tokens(candidate), [tokens(r) for r in refs]
        length += len(words)
        reference_length += min((abs(len(r) - len(words)), len(r)) for r in ref_words)[1]
        for n in range(1, 5):
            counts = ngrams(words, n)
            best = collections.Counter()
            for r in ref_words:
                best |= ngrams(r, n)
            matched[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            total[n - 1] += max(len(words) - n + 1, 0)
    if min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total)) / 4
    brevity = min(0.0, 1 - reference_length / max(length, 1))
    return math.exp(log_precision + brevity)


def cider_d(candidates, references, sigma=6.0):
    """CIDEr-D (Vedantam et al.): TF-IDF n-gram cosine, n = 1..4, with the length penalty and clipping."""
    document_frequency = collections.Counter()
    for refs in references:
        for n in range(1, 5):
            document_frequency.update(set().union(*(ngrams(tokens(r), n).keys() for r in refs)))
    log_images = math.log(len(references))

    def vector(words, n):
        counts = ngrams(words, n)
        return {g: c * (log_images - math.log(max(1.0, document_frequency[g]))) for g, c in counts.items()}

    scores = []
    for candidate, refs in zip(candidates, references):
        words = tokens(candidate)
        score = 0.0
        for n in range(1, 5):
            v = vector(words, n)
            norm_v = math.sqrt(sum(x * x for x in v.values()))
            for ref in refs:
                ref_words = tokens(ref)
                r = vector(ref_words, n)
                norm_r = math.sqrt(sum(x * x for x in r.values()))
                dot = sum(min(v[g], r[g]) * r[g] for g in v if g in r)
                if norm_v and norm_r:
                    penalty = math.exp(-((len(words) - len(ref_words)) ** 2) / (2 * sigma ** 2))
                    score += penalty * dot / (norm_v * norm_r) / len(refs)
        scores.append(score / 4 * 10)
    return sum(scores) / len(scores)


def analyze(url, key, path, features):
    with open(path, "rb") as f:
        body = f.read()
    started = time.perf_counter()
    response = requests.post(url + ANALYZE + features, data=body, timeout=300, headers={
        "Ocp-Apim-Subscription-Key": key, "Content-Type": "application/octet-stream"})
    response.raise_for_status()
    return response.json(), time.perf_counter() - started


def vectors(url, key, path_or_text, kind):
    headers = {"Ocp-Apim-Subscription-Key": key}
    route = f"/computervision/retrieval:vectorize{kind}?api-version=2024-02-01"
    if kind == "Image":
        with open(path_or_text, "rb") as f:
            response = requests.post(url + route, data=f.read(), timeout=300,
                                     headers={**headers, "Content-Type": "application/octet-stream"})
    else:
        response = requests.post(url + route, json={"text": path_or_text}, timeout=300, headers=headers)
    if response.status_code != 200:
        return None
    return response.json()["vector"]


def recall_at(queries, images, ks=(1, 5)):
    """queries: [(vector, index of the right image)]; images: [vector]. Cosine similarity."""
    def normalised(v):
        n = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / n for x in v]
    images = [normalised(v) for v in images]
    hits = collections.Counter()
    for vector, right in queries:
        q = normalised(vector)
        ranked = sorted(range(len(images)), key=lambda i: -sum(a * b for a, b in zip(q, images[i])))
        for k in ks:
            hits[k] += right in ranked[:k]
    return {k: hits[k] / len(queries) for k in ks}


def score_spread(queries, images):
    """How far a query's right image scores above the others: the mean cosine of matches and of
    non-matches, and the share of queries whose right image scores above 95% of the others."""
    def normalised(v):
        n = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / n for x in v]
    images = [normalised(v) for v in images]
    matches, others, separated = [], [], 0
    for vector, right in queries:
        q = normalised(vector)
        scores = [sum(a * b for a, b in zip(q, image)) for image in images]
        rest = sorted(s for i, s in enumerate(scores) if i != right)
        matches.append(scores[right])
        others.extend(rest)
        separated += scores[right] > rest[int(0.95 * (len(rest) - 1))]
    return statistics.mean(matches), statistics.mean(others), statistics.pstdev(others), separated / len(queries)


# COCO's class names in Spanish (written for this script), for "una foto de ..." queries.
SPANISH = {
    "person": "una persona", "bicycle": "una bicicleta", "car": "un coche", "motorcycle": "una motocicleta",
    "airplane": "un avión", "bus": "un autobús", "train": "un tren", "truck": "un camión", "boat": "un barco",
    "traffic light": "un semáforo", "fire hydrant": "una boca de incendios", "stop sign": "una señal de alto",
    "parking meter": "un parquímetro", "bench": "un banco", "bird": "un pájaro", "cat": "un gato",
    "dog": "un perro", "horse": "un caballo", "sheep": "una oveja", "cow": "una vaca", "elephant": "un elefante",
    "bear": "un oso", "zebra": "una cebra", "giraffe": "una jirafa", "backpack": "una mochila",
    "umbrella": "un paraguas", "handbag": "un bolso", "tie": "una corbata", "suitcase": "una maleta",
    "frisbee": "un frisbi", "skis": "unos esquís", "snowboard": "una tabla de snowboard", "sports ball": "una pelota",
    "kite": "una cometa", "baseball bat": "un bate de béisbol", "baseball glove": "un guante de béisbol",
    "skateboard": "un monopatín", "surfboard": "una tabla de surf", "tennis racket": "una raqueta de tenis",
    "bottle": "una botella", "wine glass": "una copa de vino", "cup": "una taza", "fork": "un tenedor",
    "knife": "un cuchillo", "spoon": "una cuchara", "bowl": "un cuenco", "banana": "un plátano",
    "apple": "una manzana", "sandwich": "un sándwich", "orange": "una naranja", "broccoli": "brócoli",
    "carrot": "una zanahoria", "hot dog": "un perrito caliente", "pizza": "una pizza", "donut": "un dónut",
    "cake": "un pastel", "chair": "una silla", "couch": "un sofá", "potted plant": "una planta en maceta",
    "bed": "una cama", "dining table": "una mesa", "toilet": "un inodoro", "tv": "un televisor",
    "laptop": "un portátil", "mouse": "un ratón de ordenador", "remote": "un mando a distancia",
    "keyboard": "un teclado", "cell phone": "un teléfono móvil", "microwave": "un microondas", "oven": "un horno",
    "toaster": "una tostadora", "sink": "un fregadero", "refrigerator": "una nevera", "book": "un libro",
    "clock": "un reloj", "vase": "un jarrón", "scissors": "unas tijeras", "teddy bear": "un oso de peluche",
    "hair drier": "un secador de pelo", "toothbrush": "un cepillo de dientes",
}


def category_search(url, key, records, image_vectors, spanish):
    """Mean precision@1 and @5 of a query naming a class ("a dog", "un perro") over the annotated images,
    one query per class present in at least two of them."""
    annotated = [(set(b[4] for b in r["boxes_xywh"]), v) for r, v in zip(records, image_vectors)
                 if r["boxes_xywh"]]
    counts = collections.Counter(c for classes, _ in annotated for c in classes)
    p1 = p5 = 0.0
    classes = sorted(c for c, n in counts.items() if n >= 2 and c in SPANISH)
    for name in classes:
        query = SPANISH[name] if spanish else f"a {name}"
        q = vectors(url, key, query, "Text")
        ranked = sorted(annotated, key=lambda item: -sum(a * b for a, b in zip(q, item[1])))
        p1 += name in ranked[0][0]
        p5 += sum(name in classes_ for classes_, _ in ranked[:5]) / 5
    return p1 / len(classes), p5 / len(classes), len(classes)


def main():
    args, coco_dir = evaluation_args(__doc__.splitlines()[0], [("--translated", "translated first captions")])
    if coco_dir is None:
        return
    with open(os.path.join(coco_dir, "simple.json")) as f:
        records = [r for r in json.load(f) if os.path.exists(os.path.join(coco_dir, r["image"]))]
    with server_url(args) as url:
        true_positive = predicted = present = 0
        candidates, references, latencies = [], [], []
        coco_names = {b[4] for r in records for b in (r["boxes_xywh"] or [])}
        for record in records:
            path = os.path.join(coco_dir, record["image"])
            result, seconds = analyze(url, args.key, path, ALL_FEATURES)
            latencies.append(seconds)
            candidates.append(result["captionResult"]["text"])
            references.append(record["captions"])
            if record["boxes_xywh"]:
                truth = {b[4] for b in record["boxes_xywh"]}
                named = {t["name"] for t in result["tagsResult"]["values"]} & coco_names
                true_positive += len(named & truth)
                predicted += len(named)
                present += len(truth)
        precision = true_positive / max(predicted, 1)
        recall = true_positive / max(present, 1)
        print(f"images: {len(records)}")
        print("| measure | value |\n|---|---|")
        print(f"| tag precision (COCO names) | {100 * precision:.1f}% |")
        print(f"| tag recall (COCO categories present) | {100 * recall:.1f}% |")
        print(f"| caption BLEU-4 | {100 * bleu4(candidates, references):.1f} |")
        print(f"| caption CIDEr-D | {100 * cider_d(candidates, references):.1f} |")
        print(f"| p50 analyze, all seven features | {1000 * statistics.median(latencies):.0f} ms |")
        image_vectors = [vectors(url, args.key, os.path.join(coco_dir, r["image"]), "Image") for r in records]
        if any(v is None for v in image_vectors):
            print("| retrieval | not measured: this server gives no vectors |")
            return
        queries = [(vectors(url, args.key, r["captions"][0], "Text"), i) for i, r in enumerate(records)]
        recall = recall_at(queries, image_vectors)
        print(f"| text→image recall@1 / @5 (a COCO caption as query, {len(records)} images) | "
              f"{100 * recall[1]:.1f}% / {100 * recall[5]:.1f}% |")
        match, other, spread, separated = score_spread(queries, image_vectors)
        print(f"| caption→image scores: right image / others (sd) / right above 95% of others | "
              f"{match:.3f} / {other:.3f} ({spread:.3f}) / {100 * separated:.1f}% |")
        if args.translated:
            with open(args.translated, encoding="utf-8") as f:
                translated = json.load(f)
            queries = [(vectors(url, args.key, translated[os.path.basename(r["image"])], "Text"), i)
                       for i, r in enumerate(records) if os.path.basename(r["image"]) in translated]
            recall = recall_at(queries, image_vectors)
            print(f"| text→image recall@1 / @5 (translated captions, {len(queries)} queries) | "
                  f"{100 * recall[1]:.1f}% / {100 * recall[5]:.1f}% |")
        for spanish, language in [(False, "English"), (True, "Spanish")]:
            p1, p5, n = category_search(url, args.key, records, image_vectors, spanish)
            print(f"| class search precision@1 / @5 ({language}, {n} classes) | {100 * p1:.1f}% / {100 * p5:.1f}% |")


if __name__ == "__main__":
    main()
