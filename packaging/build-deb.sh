#!/usr/bin/env bash
# Builds the zenedge .deb: installs cargo-deb if missing, builds the release binary, packages
# it with the metadata in Cargo.toml ([package.metadata.deb]) and prints the .deb's path.
#   packaging/build-deb.sh            -> target/debian/zenedge_<version>_<arch>.deb
#   packaging/build-deb.sh ARGS...    passes ARGS to `cargo deb` (e.g. --deb-version V --output DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb.sh: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi

# cargo deb runs `cargo build --release` itself (progress on stderr) and prints the path of
# the package on stdout; --locked keeps Cargo.lock as committed. --strip: the release profile
# keeps line tables for backtraces (86 MB); the installed binary does not need them.
deb="$(cargo deb --locked --strip "$@" | tail -n 1)"
[ -f "$deb" ] || { echo "build-deb.sh: cargo deb did not report a package (got: $deb)" >&2; exit 1; }
echo "$deb"
