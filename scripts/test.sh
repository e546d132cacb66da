#!/usr/bin/env bash
# Runs every test on a fresh machine: Rust unit tests, then the end-to-end suite with the real model
# pack through the unmodified Azure, Google and AWS clients (Python and Node). Installs what it needs (model pack, Python venv, test photos).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build (release, reused by every test)"
cargo build --release --locked

echo "== model pack"
# faceres is optional (off by default); the tests turn it on for one server to check it.
./target/release/vista models fetch --models ./models --include faceres

echo "== Rust unit tests"
# The CLIP tokenizer's test reads the real vocabulary from the pack.
VISTA_MODELS="$PWD/models" cargo test --release --locked

echo "== Python test environment"
if [ ! -x .venv-test/bin/python ] || ! cmp -s tests/requirements.txt .venv-test/requirements.txt; then
  python3 -m venv .venv-test
  .venv-test/bin/pip install --disable-pip-version-check -q -r tests/requirements.txt
  .venv-test/bin/pip install --disable-pip-version-check -q ./models/.cache/onnxruntime-1.31.1-*.whl
  cp tests/requirements.txt .venv-test/requirements.txt
fi
.venv-test/bin/python tests/fetch_test_data.py tests/.data

echo "== chromium (the studio's browser tests; Playwright drives the system's, it downloads none)"
if ! command -v chromium > /dev/null; then
  install="apt-get install -y -q chromium"
  [ "$(id -u)" = 0 ] || install="sudo $install"
  $install || { ${install%% install*} update -q && $install; }
fi

echo "== Node clients (Google Cloud Vision and AWS Rekognition, pinned in tests/node)"
if ! cmp -s tests/node/package-lock.json tests/node/node_modules/.vista-lock.json; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  cp tests/node/package-lock.json tests/node/node_modules/.vista-lock.json
fi

echo "== converter and end-to-end tests"
VISTA_BIN="$PWD/target/release/vista" VISTA_MODELS="$PWD/models" \
  .venv-test/bin/python -m pytest -q -p no:cacheprovider tests "$@"
