#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (metadata in Cargo.toml,
# [package.metadata.deb]) and checks it with lintian:
#
#   scripts/build-deb.sh              # target/debian/tpmkey_<version>-1_amd64.deb
#   scripts/build-deb.sh --no-lintian
#
# Steps: the release CLI and module; the man pages and completions from the clap
# definition (examples/gen_docs.rs, into target/packaging/, which the package's
# assets name); `cargo deb --no-build`; lintian, which must report no error (the
# warnings left are explained in the README). Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
lintian=1
[ "${1:-}" = --no-lintian ] && lintian=0
die() {
    echo "build-deb: $*" >&2
    exit 1
}
cargo deb --version >/dev/null 2>&1 ||
    die "cargo-deb not found: scripts/install-deps.sh installs it (cargo install cargo-deb --locked)"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps not found: apt-get install dpkg-dev"

cargo build --release --lib --bins
rm -rf target/packaging
cargo run --quiet --example gen_docs -- target/packaging >&2
deb=$(cargo deb --no-build --no-strip --output target/debian/ 2>&1 | tee /dev/stderr | tail -n 1)
[ -f "$deb" ] || die "cargo deb did not say where the package is (last line: $deb)"

if ((lintian)); then
    command -v lintian >/dev/null || die "lintian not found: apt-get install lintian (or --no-lintian)"
    # lintian refuses to run as root without this; it only reads the package.
    report=$(lintian --allow-root --info "$deb" 2>&1 || true)
    echo "$report" >&2
    if grep -q '^E: ' <<<"$report"; then
        die "lintian reports errors on $deb"
    fi
fi
echo "$deb"
