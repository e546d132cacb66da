#!/usr/bin/env bash
# Sets everything up on a fresh machine and starts the server at http://127.0.0.1:5000 with the
# default model pack. Extra arguments go to `vista serve` (e.g. --addr 0.0.0.0:5000).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
./target/release/vista models fetch --models ./models

# Makes FILE (mode 0600) with the lines GENERATOR prints, unless the surface is configured already;
# shown once, when made: later starts name only the file, so secrets stay out of service logs.
credentials() {
  local what=$1 variable=$2 file_variable=$3 file=$4 generator=$5
  if [ -n "${!variable:-}" ] || [ -n "${!file_variable:-}" ]; then
    return
  fi
  export "$file_variable=$PWD/$file"
  if [ ! -s "$file" ]; then
    (umask 077; python3 -c "import secrets; $generator" > "$file")
    echo "Generated $what in $PWD/$file (rotate by editing the file):"
    sed 's/^/  /' "$file"
  else
    echo "$what: $PWD/$file"
  fi
}
credentials "two Azure API keys" VISTA_API_KEYS VISTA_KEYS_FILE .vista-keys \
  'print(secrets.token_hex(16)); print(secrets.token_hex(16))'
credentials "a Google API key" VISTA_GOOGLE_API_KEYS VISTA_GOOGLE_KEYS_FILE .vista-google-keys \
  'print(secrets.token_urlsafe(30))'
credentials "an AWS access key id:secret" VISTA_AWS_CREDENTIALS VISTA_AWS_CREDENTIALS_FILE .vista-aws-credentials \
  'print("VISTA" + secrets.token_hex(8).upper() + ":" + secrets.token_urlsafe(30))'
exec ./target/release/vista serve --models ./models "$@"
