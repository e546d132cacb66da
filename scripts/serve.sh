#!/usr/bin/env bash
# Sets everything up on a fresh machine and starts the server at http://127.0.0.1:5000 with the
# default model pack. Extra arguments go to `vista serve` (e.g. --addr 0.0.0.0:5000).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
./target/release/vista models fetch --models ./models

if [ -z "${VISTA_API_KEYS:-}" ] && [ -z "${VISTA_KEYS_FILE:-}" ]; then
  export VISTA_KEYS_FILE="$PWD/.vista-keys"
  if [ ! -s "$VISTA_KEYS_FILE" ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_hex(16)); print(secrets.token_hex(16))' > "$VISTA_KEYS_FILE")
    echo "Generated two API keys in $VISTA_KEYS_FILE (use either; rotate by editing the file):"
  else
    echo "API keys are in $VISTA_KEYS_FILE:"
  fi
  sed 's/^/  /' "$VISTA_KEYS_FILE"
fi
exec ./target/release/vista serve --models ./models "$@"
