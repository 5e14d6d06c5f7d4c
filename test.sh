#!/usr/bin/env bash
# The whole test suite: installs what a fresh Debian 12 machine lacks (swtpm,
# tpm2-tools, …), then runs unit tests, vectors, recorded reference frames, the
# fuzz-corpus replay, and integration tests against a real swtpm.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
command -v swtpm >/dev/null || { echo "test.sh: swtpm not found: apt-get install swtpm swtpm-tools" >&2; exit 1; }
# The ssh tests log in with `ssh -I target/release/libtpmkey.so`, the module users run.
cargo build --release --lib --bins
export TPMKEY_TEST_MODULE="$PWD/target/release/libtpmkey.so"
# The musl builds: the static binary, size-checked (fails over 3 MiB), and the module
# as a musl shared object, loaded by a musl program that signs on a swtpm; both then
# go into the VM of tests/vm.rs.
scripts/check-musl-size.sh
scripts/build-musl.sh
export TPMKEY_MUSL_BIN="$PWD/target/x86_64-unknown-linux-musl/release-static/tpmkey"
export TPMKEY_MUSL_SO="$PWD/target/musl-cdylib/x86_64-unknown-linux-musl/release/libtpmkey.so"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo prints one summary per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
