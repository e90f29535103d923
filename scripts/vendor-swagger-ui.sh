#!/usr/bin/env bash
# Refresh the Swagger UI files that /docs serves (api/static/swagger-ui/) from the npm registry's
# swagger-ui-dist, the Swagger project's own prebuilt distribution (Apache-2.0).
#
#   bash scripts/vendor-swagger-ui.sh            # needs npm; pinned version and integrity below
#
# Only the browser bundle, its stylesheet and the licence texts are kept. To move to a newer release, change
# VERSION and INTEGRITY (`npm view swagger-ui-dist@<version> dist.integrity`) and run the script again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="5.35.0"
INTEGRITY="sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
FILES=(swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE)
OUT="$ROOT/api/static/swagger-ui"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
tarball="$(npm pack --silent "swagger-ui-dist@$VERSION")"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
  echo "swagger-ui-dist@$VERSION: integrity $got, expected $INTEGRITY" >&2
  exit 1
fi
tar xzf "$tarball"
rm -rf "$OUT"
mkdir -p "$OUT"
for file in "${FILES[@]}"; do
  cp "package/$file" "$OUT/$file"
done
echo "$VERSION" > "$OUT/VERSION"
echo "api/static/swagger-ui: swagger-ui-dist $VERSION"
