#!/usr/bin/env bash
# Re-pins every requirement file from its .in file: exact versions plus hashes, for
# Python 3.11 on Linux. Our own packages are installed from the working tree and are
# left out of the pins. Run through `make lock` after changing a dependency.
set -euo pipefail
cd "$(dirname "$0")/.."

uv_bin="${UV:-uv}"
own=(--no-emit-package playlog --no-emit-package playlog-api
     --no-emit-package playlog-collector --no-emit-package playlog-frontend)

for name in api collector frontend dev; do
  "$uv_bin" pip compile "requirements/$name.in" \
    --output-file "requirements/$name.txt" \
    --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --no-header --quiet "${own[@]}" "$@"
  # uv writes editable lines for our own packages even with --no-emit-package on some
  # versions; hash-checking mode refuses them, so drop any that slipped through.
  sed -i '/^-e /d' "requirements/$name.txt"
  echo "pinned requirements/$name.txt ($(grep -c '==' "requirements/$name.txt") packages)"
done
