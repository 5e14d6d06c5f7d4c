#!/usr/bin/env bash
# The whole test suite: installs what a fresh Debian 12 machine lacks (swtpm,
# tpm2-tools, …), then runs unit tests, vectors, recorded reference frames, the
# fuzz-corpus replay, and integration tests against a real swtpm.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
command -v swtpm >/dev/null || { echo "test.sh: swtpm not found: apt-get install swtpm swtpm-tools" >&2; exit 1; }
cargo test --workspace --all-targets "$@"
