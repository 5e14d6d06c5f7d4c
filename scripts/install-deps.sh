#!/usr/bin/env bash
# Installs the Debian 12 packages the tests and the main job need, only those missing.
set -euo pipefail
need_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
need swtpm swtpm
need swtpm_setup swtpm-tools
need tpm2_getrandom tpm2-tools
need sshd openssh-server
need ssh openssh-client
need pkcs11-tool opensc
need p11-kit p11-kit
need musl-gcc musl-tools
need file file
# Certificates and TLS client authentication (tests/cli_cert.rs, tests/pkcs11_objects.rs,
# tests/tls_client.rs): openssl for the test CA and s_server, NSS's tools (certutil,
# modutil, tstclnt), GnuTLS's (gnutls-cli, p11tool), curl with the OpenSSL pkcs11
# engine, and Chromium on a private Xvfb display driven by xdotool.
need openssl openssl
need curl curl
need certutil libnss3-tools
need tstclnt libnss3-tools
need gnutls-cli gnutls-bin
need p11tool gnutls-bin
need chromium chromium
need Xvfb xvfb
need xdotool xdotool
[ -e "/usr/lib/$(uname -m)-linux-gnu/engines-3/pkcs11.so" ] || need_pkgs+=(libengine-pkcs11-openssl)
# The VM test (tests/vm.rs): qemu, a kernel with the TPM drivers built in, a static
# busybox for the initramfs, cpio to pack it.
need qemu-system-x86_64 qemu-system-x86
need cpio cpio
busybox_bin=$(command -v busybox || true)
if [ -z "$busybox_bin" ] || ! LC_ALL=C file -L "$busybox_bin" 2>/dev/null | grep -q 'statically linked'; then
    need_pkgs+=(busybox-static)
fi
ls /boot/vmlinuz-*cloud* >/dev/null 2>&1 || need_pkgs+=(linux-image-cloud-amd64)
if ((${#need_pkgs[@]})); then
    echo "install-deps: installing ${need_pkgs[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# The static musl build (tests/vm.rs, scripts/build-musl.sh).
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    echo "install-deps: rustup target add x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
fi
