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
if ((${#need_pkgs[@]})); then
    echo "install-deps: installing ${need_pkgs[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
