"""Extract a few real photos for the end-to-end tests from the scikit-image wheel (a registry package),
checking the wheel's sha256. Images: astronaut (person), coffee (cup), chelsea (cat),
motorcycle_left (motorcycle), camera (grayscale person)."""

import hashlib
import os
import subprocess
import sys
import zipfile

WHEEL = "scikit_image-0.24.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "fa27b3a0dbad807b966b8db2d78da734cb812ca4787f7fbb143764800ce2fa9c"
IMAGES = ["astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "camera.png"]


def main(dest):
    os.makedirs(dest, exist_ok=True)
    if all(os.path.exists(os.path.join(dest, name)) for name in IMAGES):
        return
    cache = os.path.join(dest, ".cache")
    wheel = os.path.join(cache, WHEEL)
    if not os.path.exists(wheel):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                        "3.11", "--platform", "manylinux_2_17_x86_64", "--disable-pip-version-check", "-q",
                        "scikit-image==0.24.0", "-d", cache], check=True)
    actual = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
    if actual != WHEEL_SHA256:
        sys.exit(f"{WHEEL}: sha256 {actual} does not match {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        for name in IMAGES:
            with open(os.path.join(dest, name), "wb") as out:
                out.write(archive.read(f"skimage/data/{name}"))


if __name__ == "__main__":
    main(sys.argv[1])
