"""Text pages rendered by the tests themselves (fonts from Debian packages, see fetch_test_data.py), in the
variants OCR must survive, and the character error rate to judge what comes back. Shared by the OCR tests
and bench/eval_ocr_rendered.py."""

import io
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONTS = os.path.join(os.path.dirname(__file__), "..", ".data", "fonts")

# Each script's page: (font file, lines).
PAGES = {
    "latin": ("DejaVuSans.ttf", [
        "The quick brown fox jumps over the lazy dog.",
        "Invoice 2024-117: total 1,234.56 EUR",
        "Please call +1 (555) 010-4477 before 5 pm",
    ]),
    "accented": ("DejaVuSerif.ttf", [
        "Café déjà vu, naïve façade à Noël",
        "Größe: Straße über Äpfel und Öl",
        "Señor Muñoz pidió açaí e pão",
    ]),
    "chinese": ("DroidSansFallbackFull.ttf", [
        "今天天气很好我们去公园散步",
        "北京是中国的首都",
    ]),
    "japanese": ("DroidSansFallbackFull.ttf", [
        "東京駅から新幹線に乗ります",
        "ありがとうございました",
    ]),
    # The scripts Tesseract reads.
    "cyrillic": ("DejaVuSans.ttf", [
        "Съешь же ещё этих мягких французских булок",
        "Счёт 2024-117: итого 1234,56 руб.",
    ]),
    "arabic": ("DejaVuSans.ttf", [
        "مرحبا بالعالم هذا نص عربي",
        "الرجاء الاتصال قبل الساعة الخامسة",
    ]),
    "greek": ("DejaVuSans.ttf", [
        "Η γρήγορη καφέ αλεπού πηδάει",
        "πάνω από το τεμπέλικο σκυλί",
    ]),
    "hebrew": ("DejaVuSans.ttf", [
        "שלום עולם זהו טקסט בעברית",
        "נא להתקשר לפני השעה חמש",
    ]),
    "korean": ("dotum.ttf", [
        "안녕하세요 한국어 텍스트입니다",
        "서울은 대한민국의 수도입니다",
    ]),
    "devanagari": ("Lohit-Devanagari.ttf", [
        "नमस्ते दुनिया यह हिंदी पाठ है",
        "भारत की राजधानी नई दिल्ली है",
    ]),
    "thai": ("Garuda.ttf", [
        "สวัสดีชาวโลก",
        "กรุงเทพมหานครเป็นเมืองหลวง",
    ]),
}

VARIANTS = ["clean", "noisy", "skew4", "rot90", "rot180", "rot270"]


def render(script, variant="clean", size=32):
    """PNG bytes of the script's page in a variant, and the lines it holds."""
    font_file, lines = PAGES[script]
    font = ImageFont.truetype(os.path.join(FONTS, font_file), size)
    width = max(int(font.getlength(line)) for line in lines) + 2 * size
    height = len(lines) * int(size * 1.8) + 2 * size
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size, size + i * int(size * 1.8)), line, font=font, fill=(20, 20, 20))
    if variant == "noisy":
        # Grain, a slight blur and a grey cast, then lossy JPEG, as a phone photo of a print would have.
        pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(0.8)), np.float32) * 0.85 + 20
        pixels += np.random.default_rng(3).normal(0, 18, pixels.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=60)
        return out.getvalue(), lines
    if variant == "skew4":
        image = image.rotate(4, expand=True, fillcolor="white", resample=Image.BICUBIC)
    elif variant.startswith("rot"):
        # PIL turns counter-clockwise; rot90 means the text's top faces right (clockwise).
        image = image.rotate(-int(variant[3:]), expand=True)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), lines


def page_with_a_line_upside_down(script="latin", size=32):
    """PNG bytes of the script's page with its last line turned over in place (a label upside down on
    an upright page), and the lines it holds."""
    font_file, lines = PAGES[script]
    font = ImageFont.truetype(os.path.join(FONTS, font_file), size)
    width = max(int(font.getlength(line)) for line in lines) + 2 * size
    pitch = int(size * 1.8)
    image = Image.new("RGB", (width, len(lines) * pitch + 2 * size), "white")
    for i, line in enumerate(lines):
        strip = Image.new("RGB", (width, pitch), "white")
        ImageDraw.Draw(strip).text((size, (pitch - size) // 2), line, font=font, fill=(20, 20, 20))
        image.paste(strip.rotate(180) if i == len(lines) - 1 else strip, (0, size + i * pitch))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), lines


def edit_distance(a, b):
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(expected_lines, read_lines):
    """Character error rate of the page read in reading order (lines joined by newlines)."""
    expected, read = "\n".join(expected_lines), "\n".join(read_lines)
    return edit_distance(expected, read) / max(1, len(expected))


def pdf_with_text(pages):
    """A PDF whose pages carry a real text layer (Helvetica, 24 pt, US Letter): `pages` is a list of
    line lists. Written by hand: no PDF library needed."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        ops = "".join(f"BT /F1 24 Tf 72 {720 - 40 * i} Td ({line}) Tj ET\n" for i, line in enumerate(lines))
        objects.append(f"<< /Length {len(ops)} >>\nstream\n{ops}endstream")
        content = len(objects)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
                       f"/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def pdf_of_scans(pages, inches=None):
    """A PDF of page images without any text layer, as a scanner makes (PNG bytes in, 200 dpi; or each
    page stretched to `inches` wide)."""
    images = [Image.open(io.BytesIO(page)).convert("RGB") for page in pages]
    resolution = images[0].width / inches if inches else 200.0
    out = io.BytesIO()
    images[0].save(out, "PDF", resolution=resolution, save_all=True, append_images=images[1:])
    return out.getvalue()
