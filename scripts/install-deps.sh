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
# TSS2 key-file interop (tests/tss2.rs): OpenSSL 3 with the tpm2 provider, reaching
# swtpm through tpm2-tss's swtpm TCTI.
need openssl openssl
need_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$1"); }
need_pkg tpm2-openssl
need_pkg libtss2-tcti-swtpm0
# The PKCS#11 client tests (tests/pkcs11_clients.rs): openssl pkeyutl/cms/x509 and
# the OpenSSL engine that loads a PKCS#11 module.
[ -e /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so ] || need_pkgs+=(libengine-pkcs11-openssl)
# Certificates and TLS client authentication (tests/cli_cert.rs, tests/pkcs11_objects.rs,
# tests/tls_client.rs): openssl for the test CA and s_server, NSS's tools (certutil,
# modutil, tstclnt), GnuTLS's (gnutls-cli, p11tool), curl with the OpenSSL pkcs11
# engine, and Chromium and Firefox (ESR, driven over Marionette) on a private Xvfb
# display driven by xdotool.
need curl curl
need certutil libnss3-tools
need tstclnt libnss3-tools
need gnutls-cli gnutls-bin
need p11tool gnutls-bin
need chromium chromium
need firefox-esr firefox-esr
need Xvfb xvfb
need xdotool xdotool
# The VM test (tests/vm.rs): qemu, a kernel with the TPM drivers built in, a static
# busybox for the initramfs, cpio to pack it.
need qemu-system-x86_64 qemu-system-x86
need cpio cpio
busybox_bin=$(command -v busybox || true)
if [ -z "$busybox_bin" ] || ! LC_ALL=C file -L "$busybox_bin" 2>/dev/null | grep -q 'statically linked'; then
    need_pkgs+=(busybox-static)
fi
ls /boot/vmlinuz-*cloud* >/dev/null 2>&1 || need_pkgs+=(linux-image-cloud-amd64)
# The Debian package (scripts/build-deb.sh, tests/deb.rs): cargo-deb's dependency
# lookup (dpkg-shlibdeps), lintian, and what the install test drives: man, the
# bash-completion loader, GnuTLS's p11tool, NSS's modutil; the VM test runs the example initramfs-tools hook with
# initramfs-tools' hook-functions.
need dpkg-shlibdeps dpkg-dev
need lintian lintian
need man man-db
need p11tool gnutls-bin
need modutil libnss3-tools
[ -r /usr/share/bash-completion/bash_completion ] || need_pkgs+=(bash-completion)
# tests/deb.rs: the zsh and fish completions, loaded by those shells as installed.
need zsh zsh
need fish fish
[ -r /usr/share/initramfs-tools/hook-functions ] || need_pkgs+=(initramfs-tools)
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
# cargo-deb, pinned; `cargo install` leaves it in ~/.cargo/bin, where a later run
# finds it and skips the build.
cargo_deb=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb" ]; then
    echo "install-deps: cargo install cargo-deb --version $cargo_deb --locked"
    cargo install cargo-deb --version "$cargo_deb" --locked --quiet
fi
