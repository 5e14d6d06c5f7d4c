#!/usr/bin/env bash
# The musl builds: the static `tpmkey` CLI and the PKCS#11 module libtpmkey.so as a
# shared object for musl programs (Alpine's ssh).
#
# Rust's musl target links with crt-static by default, which gives a static
# executable and cannot make a cdylib (cargo drops the crate type). So the module
# is built with RUSTFLAGS='-C target-feature=-crt-static', in its own target
# directory: flags differ, and sharing a directory would rebuild the one for the
# other every time.
#
#   target/x86_64-unknown-linux-musl/release-static/tpmkey                static-pie
#   target/musl-cdylib/x86_64-unknown-linux-musl/release/libtpmkey.so  needs libc.musl only
#
# Then checks both with file/readelf, and loads the module with a musl-gcc program
# (scripts/musl-p11-load.c, dynamically linked against musl's libc) that signs
# with a key made by the static tpmkey on a swtpm. --no-load skips that part.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
load=1
[ "${1:-}" = --no-load ] && load=0

die() {
    echo "build-musl: $*" >&2
    exit 1
}
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
    die "the $target target is not installed: rustup target add $target"
fi

cargo build --profile release-static --target "$target" --bin tpmkey

# The module. Without crt-static rustc links through the system's C compiler
# driver: musl-gcc, not cc (which would pull in glibc's libc.so.6). And the
# standard library then asks for libgcc_s as its unwinder (panic = "unwind", which
# the module's catch_unwind guards need); Rust's musl target ships LLVM's libunwind
# as a static archive, so -lgcc_s is pointed at it and the module needs nothing but
# libc. (musl's loader resolves any libc.* NEEDED entry to itself, so "libc.so"
# from Debian's musl-gcc and Alpine's "libc.musl-x86_64.so.1" both load.)
command -v musl-gcc >/dev/null || die "musl-gcc not found: apt-get install musl-tools"
unwind=$PWD/target/musl-cdylib/unwind
mkdir -p "$unwind"
cp -p "$(rustc --print sysroot)/lib/rustlib/$target/lib/self-contained/libunwind.a" "$unwind/libgcc_s.a"
CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc \
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=-crt-static -L native=$unwind" \
    cargo build --release --target "$target" --lib --target-dir target/musl-cdylib

bin=${CARGO_TARGET_DIR:-target}/$target/release-static/tpmkey
so=target/musl-cdylib/$target/release/libtpmkey.so

echo "== $bin: $(stat -c %s "$bin") bytes"
file "$bin"
file "$bin" | grep -Eq 'static-pie linked|statically linked' || die "$bin is not statically linked"

echo "== $so: $(stat -c %s "$so") bytes"
file "$so"
file "$so" | grep -q 'shared object' || die "$so is not a shared object"
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "needs: ${needed:-nothing}"
# musl has one libc.so (libc, libm, libdl, libpthread and the loader in one).
[ "$needed" = "libc.so" ] || die "$so needs more than musl's libc.so: $needed"
readelf -h "$so" | grep -q 'DYN' || die "$so is not ET_DYN"
readelf --dyn-syms -W "$so" | awk '$8 == "C_GetFunctionList" && $7 != "UND" { found = 1 } END { exit !found }' ||
    die "$so does not export C_GetFunctionList"
echo "exports: $(readelf --dyn-syms -W "$so" | awk '$7 != "UND" && $8 ~ /^C_/' | wc -l) C_* functions, C_GetFunctionList among them"

((load)) || exit 0
command -v swtpm >/dev/null || die "swtpm not found: apt-get install swtpm"
[ -e /lib/ld-musl-x86_64.so.1 ] || die "no musl dynamic loader /lib/ld-musl-x86_64.so.1 (Debian's musl package ships it)"
work=$(mktemp -d /tmp/tpmkey-musl.XXXXXX)
swtpm_pid=""
cleanup() {
    [ -n "$swtpm_pid" ] && kill "$swtpm_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
musl-gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$work/musl-p11-load" scripts/musl-p11-load.c
echo "== loader: $(file -b "$work/musl-p11-load" | cut -d, -f1-5)"
readelf -l "$work/musl-p11-load" | grep -q 'ld-musl-x86_64.so.1' || die "the loader is not linked against musl's loader"

mkdir "$work/state"
swtpm socket --tpm2 --server type=unixio,path="$work/tpm.sock" --ctrl type=unixio,path="$work/ctrl.sock" \
    --tpmstate dir="$work/state" --flags not-need-init,startup-clear &
swtpm_pid=$!
for _ in $(seq 100); do
    [ -S "$work/tpm.sock" ] && break
    sleep 0.05
done
export TPMKEY_TCTI="swtpm:path=$work/tpm.sock" TPMKEY_STORE="$work/store"
"$bin" init >/dev/null
"$bin" token add --label musl --userpin 1234 --sopin 5678 >/dev/null
"$bin" key add --token musl --label k --algorithm ecc256 --userpin 1234 >/dev/null
"$work/musl-p11-load" "$PWD/$so" 1234
