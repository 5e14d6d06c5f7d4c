#!/usr/bin/env bash
# Boots a real Linux kernel in qemu (TCG, no KVM) with a swtpm-backed TPM (TIS) and
# runs tests/vm/init.sh in it: the tpmkey workflow through /dev/tpmrm0 and through
# /dev/tpm0, kill -9 during key add on /dev/tpm0, concurrent processes on
# /dev/tpmrm0. Prints the guest's console and exits 0 only when the guest printed
# TPMKEY-VM-RESULT rc=0.
#
#   scripts/vm-test.sh            # builds the static musl tpmkey first
#   TPMKEY_MUSL_BIN=path/to/tpmkey scripts/vm-test.sh
#
# Environment: TPMKEY_MUSL_BIN (the static tpmkey), TPMKEY_VM_KERNEL (default: the
# newest /boot/vmlinuz-*cloud*), TPMKEY_VM_TIMEOUT (seconds, default 240),
# TPMKEY_VM_STRICT=1 (fail when tpmkey lacks sign/seal instead of skipping them),
# TPMKEY_MUSL_SO (the musl libtpmkey.so from scripts/build-musl.sh: the guest then
# also signs through the PKCS#11 module, loaded by scripts/musl-p11-load.c),
# TPMKEY_VM_SMP (guest CPUs, default 2); for experiments, TPMKEY_VM_INIT (another
# /init) and TPMKEY_VM_FILES (a directory whose contents are copied into the
# initramfs).
set -euo pipefail
cd "$(dirname "$0")/.."

hint="install with scripts/install-deps.sh (apt-get install qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio swtpm openssh-client)"
die() {
    echo "vm-test: $*" >&2
    exit 2
}
for tool in qemu-system-x86_64 swtpm cpio ssh-keygen; do
    command -v "$tool" >/dev/null || die "$tool not found; $hint"
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || die "busybox not found; $hint"
file -L "$busybox" | grep -q 'statically linked' || die "$busybox is not statically linked (busybox-static is needed); $hint"
kernel=${TPMKEY_VM_KERNEL:-$(ls -1 /boot/vmlinuz-*cloud* 2>/dev/null | sort -V | tail -n 1 || true)}
[ -n "$kernel" ] && [ -r "$kernel" ] || die "no readable kernel /boot/vmlinuz-*cloud*; $hint"

bin=${TPMKEY_MUSL_BIN:-}
if [ -z "$bin" ]; then
    cargo build --profile release-static --target x86_64-unknown-linux-musl --bin tpmkey
    bin=target/x86_64-unknown-linux-musl/release-static/tpmkey
fi
[ -x "$bin" ] || die "no tpmkey binary at $bin"
file -L "$bin" | grep -Eq 'static(-pie)? linked|statically linked' || die "$bin is not statically linked"

work=$(mktemp -d /tmp/tpmkey-vm.XXXXXX)
swtpm_pid=""
qemu_pid=""
cleanup() {
    [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
    [ -n "$swtpm_pid" ] && kill "$swtpm_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The initramfs: busybox, tpmkey, /init, an OpenSSH ECDSA P-256 key to import.
root=$work/root
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp"
cp "$busybox" "$root/bin/busybox"
# tpmkey (as /usr/bin/tpmkey) and the keyscript go in by the README's example
# initramfs-tools hook, run as mkinitramfs runs it: DESTDIR and hook-functions.
hook_functions=/usr/share/initramfs-tools/hook-functions
[ -r "$hook_functions" ] || die "no $hook_functions; $hint (initramfs-tools)"
DESTDIR=$root verbose=n TPMKEY_BIN=$bin TPMKEY_KEYSCRIPT=dist/initramfs-tools/tpmkey-keyscript \
    TPMKEY_SEALED=/nonexistent sh dist/initramfs-tools/hooks/tpmkey ||
    die "the example initramfs hook dist/initramfs-tools/hooks/tpmkey failed"
[ -x "$root/usr/bin/tpmkey" ] && [ -x "$root/usr/lib/tpmkey/tpmkey-keyscript" ] ||
    die "the initramfs hook did not install tpmkey and its keyscript"
cp "${TPMKEY_VM_INIT:-tests/vm/init.sh}" "$root/init"
[ -n "${TPMKEY_VM_FILES:-}" ] && cp -a "$TPMKEY_VM_FILES/." "$root/"
chmod 0755 "$root/init" "$root/bin/busybox"
if [ -n "${TPMKEY_MUSL_SO:-}" ]; then
    command -v musl-gcc >/dev/null || die "musl-gcc not found (TPMKEY_MUSL_SO needs it): apt-get install musl-tools"
    [ -e /lib/ld-musl-x86_64.so.1 ] || die "no /lib/ld-musl-x86_64.so.1 (TPMKEY_MUSL_SO needs it): apt-get install musl"
    mkdir -p "$root/lib"
    cp -L /lib/ld-musl-x86_64.so.1 "$root/lib/ld-musl-x86_64.so.1"
    cp "$TPMKEY_MUSL_SO" "$root/libtpmkey.so"
    musl-gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$root/bin/musl-p11-load" scripts/musl-p11-load.c
fi
ssh-keygen -q -t ecdsa -b 256 -N '' -C vm-test -f "$root/id_ecdsa"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initramfs.cpio"

mkdir "$work/tpmstate"
swtpm socket --tpm2 --ctrl type=unixio,path="$work/swtpm-sock" \
    --tpmstate dir="$work/tpmstate" --log file="$work/swtpm.log" &
swtpm_pid=$!
for _ in $(seq 100); do
    [ -S "$work/swtpm-sock" ] && break
    sleep 0.05
done
[ -S "$work/swtpm-sock" ] || die "swtpm did not create its control socket"

append="console=ttyS0 panic=-1 quiet loglevel=3"
[ "${TPMKEY_VM_STRICT:-1}" = 1 ] && append="$append tpmkey.strict=1"
timeout=${TPMKEY_VM_TIMEOUT:-240}
log=$work/console.log
start=$(date +%s.%N)
qemu-system-x86_64 -accel tcg -cpu qemu64,+rdrand -smp "${TPMKEY_VM_SMP:-2}" -m 512 \
    -nodefaults -display none -no-reboot \
    -kernel "$kernel" -initrd "$work/initramfs.cpio" -append "$append" \
    -chardev socket,id=chrtpm,path="$work/swtpm-sock" \
    -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0 \
    -serial file:"$log" </dev/null >"$work/qemu.out" 2>&1 &
qemu_pid=$!
timed_out=0
deadline=$((SECONDS + timeout))
while kill -0 "$qemu_pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
        timed_out=1
        kill -9 "$qemu_pid" 2>/dev/null || true
        break
    fi
    sleep 0.2
done
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""
elapsed=$(echo "$(date +%s.%N) $start" | awk '{ printf "%.1f", $1 - $2 }')

tr -d '\r' <"$log" || true
if [ -s "$work/qemu.out" ]; then
    echo "--- qemu:"
    cat "$work/qemu.out"
fi
echo "TPMKEY-VM-TIME ${elapsed} s (qemu run: boot + flow + poweroff)"
if ((timed_out)); then
    echo "vm-test: the VM did not power off within ${timeout} s; killed" >&2
    exit 1
fi
result=$(tr -d '\r' <"$log" | sed -n 's/^TPMKEY-VM-RESULT rc=\([0-9]*\)$/\1/p' | tail -n 1)
if [ -z "$result" ]; then
    echo "--- swtpm log:"
    cat "$work/swtpm.log" 2>/dev/null || true
    echo "vm-test: no TPMKEY-VM-RESULT marker in the guest's console" >&2
    exit 1
fi
if [ "$result" != 0 ]; then
    echo "vm-test: $result step(s) failed in the VM (see TPMKEY-VM-FAIL lines)" >&2
    exit 1
fi
echo "vm-test: passed"
