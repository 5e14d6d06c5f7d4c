#!/usr/bin/env bash
# The static release tarball for minimal hosts (initramfs builders, containers,
# other distributions), by one command:
#
#   scripts/build-tarball.sh [--out DIR]     # default DIR: target/dist
#
# gives DIR/tpmkey-<version>-x86_64-linux-musl.tar.gz and, beside it, its
# .sha256. Inside, under tpmkey-<version>-x86_64-linux-musl/:
#
#   bin/tpmkey                         static-pie (musl): runs with no libc at all
#   lib/pkcs11/libtpmkey.so            the PKCS#11 module for musl programs: needs only libc
#   share/p11-kit/modules/tpmkey.module
#   share/man/man1/*.1, share/man/man7/libtpmkey.7
#   share/bash-completion/completions/tpmkey, share/zsh/site-functions/_tpmkey,
#   share/fish/vendor_completions.d/tpmkey.fish
#   share/tpmkey/initramfs-tools/      the example hook and keyscript (README)
#   README.md, COPYRIGHT
#   SHA256SUMS                         sha256sum -c SHA256SUMS checks every file above
#
# Both musl artifacts come from scripts/build-musl.sh, which also checks their
# linking and loads the module with a musl program that signs on a swtpm.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/dist
if [ "${1:-}" = --out ] && [ -n "${2:-}" ]; then
    out=$2
fi
die() {
    echo "build-tarball: $*" >&2
    exit 1
}
target=x86_64-unknown-linux-musl
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml"
name=tpmkey-$version-x86_64-linux-musl

scripts/build-musl.sh >&2
bin=${CARGO_TARGET_DIR:-target}/$target/release-static/tpmkey
so=target/musl-cdylib/$target/release/libtpmkey.so
docs=target/tarball-docs
rm -rf "$docs"
cargo run --quiet --example gen_docs -- "$docs" >&2

mkdir -p "$out"
stage=$(mktemp -d "${TMPDIR:-/tmp}/tpmkey-tarball.XXXXXX")
trap 'rm -rf "$stage"' EXIT
dir=$stage/$name
install -D -m 0755 "$bin" "$dir/bin/tpmkey"
install -D -m 0644 "$so" "$dir/lib/pkcs11/libtpmkey.so"
install -D -m 0644 dist/tpmkey.module "$dir/share/p11-kit/modules/tpmkey.module"
install -d "$dir/share/man/man1" "$dir/share/man/man7"
install -m 0644 "$docs"/man1/*.1 "$dir/share/man/man1/"
install -m 0644 dist/libtpmkey.7 "$dir/share/man/man7/"
install -D -m 0644 "$docs"/completions/tpmkey "$dir/share/bash-completion/completions/tpmkey"
install -D -m 0644 "$docs"/completions/_tpmkey "$dir/share/zsh/site-functions/_tpmkey"
install -D -m 0644 "$docs"/completions/tpmkey.fish "$dir/share/fish/vendor_completions.d/tpmkey.fish"
install -D -m 0755 dist/initramfs-tools/hooks/tpmkey "$dir/share/tpmkey/initramfs-tools/hooks/tpmkey"
install -D -m 0755 dist/initramfs-tools/tpmkey-keyscript "$dir/share/tpmkey/initramfs-tools/tpmkey-keyscript"
install -m 0644 README.md "$dir/README.md"
install -m 0644 dist/debian/copyright "$dir/COPYRIGHT"
(cd "$dir" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)

# Reproducible: sorted names, root owner, the last commit's time.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
tarball=$out/$name.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$stage" -cf - "$name" | gzip -9n >"$tarball"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "build-tarball: $(stat -c %s "$tarball") bytes, $(tar -tzf "$tarball" | grep -vc '/$') files" >&2
echo "$tarball"
