#!/usr/bin/env bash
# Builds the static musl tpmkey, prints its size and what `file` says about it, and
# fails when it is not statically linked or is over 3 MiB (the goal is < 2 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
limit=3145728
cargo build --profile release-static --target "$target" --bin tpmkey
bin=${CARGO_TARGET_DIR:-target}/$target/release-static/tpmkey
size=$(stat -c %s "$bin")
echo "$bin: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB; limit $limit)"
file "$bin"
file "$bin" | grep -Eq 'static-pie linked|statically linked' || {
    echo "check-musl-size: $bin is not statically linked" >&2
    exit 1
}
if [ "$size" -gt "$limit" ]; then
    echo "check-musl-size: $bin is $size bytes, over the $limit-byte limit" >&2
    exit 1
fi
