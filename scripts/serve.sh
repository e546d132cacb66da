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
    # Shown once, when made; later starts name only the file, so keys stay out of service logs.
    echo "Generated two API keys in $VISTA_KEYS_FILE (use either; rotate by editing the file):"
    sed 's/^/  /' "$VISTA_KEYS_FILE"
  else
    echo "API keys: $VISTA_KEYS_FILE"
  fi
fi
exec ./target/release/vista serve --models ./models "$@"
