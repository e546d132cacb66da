"""`vista bundle`: the archive serves the API from any directory on a machine with no network at all
(a network namespace with only loopback), with nothing but what it holds."""

import os
import shutil
import subprocess
import tarfile
import time

from conftest import DATA, MODELS, VISTA_BIN

INSIDE = r"""
set -eu
ip link set lo up
cd "$1"
VISTA_API_KEYS=bundle-key ./start.sh --addr 127.0.0.1:5099 > server.log 2>&1 &
server=$!
for i in $(seq 1 300); do
  curl -sf http://127.0.0.1:5099/ready > /dev/null && break
  sleep 0.1
done
curl -s -X POST "http://127.0.0.1:5099/computervision/imageanalysis:analyze?api-version=2024-02-01&features=tags,read" \
  -H "Ocp-Apim-Subscription-Key: bundle-key" -H "Content-Type: application/octet-stream" --data-binary @"$2"
echo
curl -s -m 3 https://pypi.org > /dev/null && echo "NETWORK REACHABLE" || echo "no network"
kill $server
wait $server || true
"""


def test_the_bundle_serves_from_anywhere_without_network(tmp_path):
    archive = tmp_path / "vista.tar.gz"
    made = subprocess.run([VISTA_BIN, "bundle", "--models", MODELS, "--out", str(archive)],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        start = tar.getmember("start.sh")
        tar.extractall(tmp_path / "unpacked", filter="tar")
    assert start.mode & 0o111, "start.sh is executable"
    assert "bin/vista" in names and "models/centernet.onnx" in names
    assert not any(n.startswith("models/.cache") for n in names), "no fetch cache"
    assert not any(n.startswith(("lib/libc.so", "lib/ld-linux")) for n in names), "the C library is the system's"
    # Moved after unpacking: nothing in it may name the directory it was made or unpacked in.
    home = tmp_path / "elsewhere"
    shutil.move(tmp_path / "unpacked", home)
    shutil.copy(os.path.join(DATA, "chelsea.png"), home / "cat.png")
    ran = subprocess.run(["unshare", "--net", "sh", "-c", INSIDE, "inside", str(home), str(home / "cat.png")],
                         capture_output=True, text=True, timeout=300, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    log = (home / "server.log").read_text() if (home / "server.log").exists() else ""
    assert ran.returncode == 0, ran.stderr + log
    first, verdict = ran.stdout.strip().splitlines()[-2:]
    assert '"name":"cat"' in first, ran.stdout + log
    assert '"readResult"' in first
    assert verdict == "no network"


def test_the_debian_package_installs_into_a_root_and_serves_as_its_unit_says(tmp_path):
    import requests
    from conftest import free_port, photo
    package = tmp_path / "vista.deb"
    made = subprocess.run([VISTA_BIN, "bundle", "--format", "deb", "--models", MODELS, "--out", str(package)],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").touch()
    # Into a temporary root: the maintainer scripts run outside a chroot with DPKG_ROOT set; the
    # empty root has no libc6 package, hence --force-depends.
    installed = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                                "-i", str(package)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    keys = (root / "etc/vista/keys").read_text().split()
    assert len(keys) == 2 and oct((root / "etc/vista/keys").stat().st_mode)[-3:] == "600"
    unit = (root / "lib/systemd/system/vista.service").read_text()
    for line in ("DynamicUser=yes", "StateDirectory=vista", "LoadCredential=keys:/etc/vista/keys",
                 "--data-dir /var/lib/vista"):
        assert line in unit
    # Run the installed files the way the unit does, with the root's paths.
    exec_start = next(l for l in unit.splitlines() if l.startswith("ExecStart="))
    assert exec_start.startswith("ExecStart=/usr/bin/vista serve --models /usr/lib/vista/models")
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": str(root / "usr/lib/vista/lib")}
    server = subprocess.Popen([str(root / "usr/bin/vista"), "serve", "--models", str(root / "usr/lib/vista/models"),
                               "--data-dir", str(tmp_path / "state"), "--keys-file", str(root / "etc/vista/keys"),
                               "--addr", f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if requests.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        response = requests.post(f"http://127.0.0.1:{port}/computervision/imageanalysis:analyze?api-version=2024-02-01&features=tags",
                                 data=photo("chelsea.png"), headers={"Ocp-Apim-Subscription-Key": keys[1],
                                                                     "Content-Type": "application/octet-stream"})
        assert any(t["name"] == "cat" for t in response.json()["tagsResult"]["values"])
    finally:
        server.terminate()
        server.wait(timeout=30)
