#!/usr/bin/env bash
# The main job, end to end: a key made inside a TPM, used for a real ssh login
# through the PKCS#11 module, with nothing left behind.
#
#   1. installs what a fresh Debian 12 machine lacks (swtpm, openssh-server, …)
#   2. builds tpmkey and libtpmkey.so (cargo build --release)
#   3. uses this machine's TPM (/dev/tpmrm0) when there is one and it is usable,
#      else starts a throwaway swtpm; TPMKEY_TCTI, when set, wins
#   4. in a temporary store: init (SRK left transient), a token with a PIN, a P-256 key
#   5. prints the public key as `ssh-keygen -D libtpmkey.so` shows it
#   6. starts an sshd on 127.0.0.1 that accepts only that key and logs in with
#      `ssh -I target/release/libtpmkey.so`, the PIN given through SSH_ASKPASS
#   7. stops everything it started and removes its temporary files
#
# Nothing touches ~/.ssh, the real tpmkey store, or persistent TPM handles.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

pids=()
work=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        shuf -i 20000-60000 -n 1
}

step "Installing missing Debian packages (swtpm, openssh-server, …)"
scripts/install-deps.sh
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs), then run ./demo.sh again"

step "Building tpmkey and the PKCS#11 module (cargo build --release)"
cargo build --release --quiet --bin tpmkey --lib
TPMKEY=$PWD/target/release/tpmkey
MODULE=$PWD/target/release/libtpmkey.so
[ -x "$TPMKEY" ] && [ -f "$MODULE" ] || die "build did not produce $TPMKEY and $MODULE"
echo "    $TPMKEY"
echo "    $MODULE"

work=$(mktemp -d /tmp/tpmkey-demo.XXXXXX)
export TPMKEY_STORE=$work/store
unset TPM2TOOLS_TCTI

step "Finding a TPM"
if [ -n "${TPMKEY_TCTI:-}" ]; then
    echo "    using TPMKEY_TCTI=$TPMKEY_TCTI"
elif [ -r /dev/tpmrm0 ] && [ -w /dev/tpmrm0 ] && TPMKEY_TCTI=device:/dev/tpmrm0 "$TPMKEY" check >/dev/null 2>&1; then
    export TPMKEY_TCTI=device:/dev/tpmrm0
    echo "    this machine's TPM through the kernel resource manager (/dev/tpmrm0)"
else
    [ -e /dev/tpmrm0 ] && echo "    /dev/tpmrm0 exists but is not usable here (see: tpmkey check); using a simulator"
    port=$(free_port)
    mkdir -p "$work/swtpm"
    swtpm socket --tpm2 --server type=tcp,port="$port",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
        --tpmstate dir="$work/swtpm" --flags not-need-init,startup-clear \
        --log file="$work/swtpm.log" &
    pids+=($!)
    export TPMKEY_TCTI=swtpm:host=127.0.0.1,port=$port
    up=""
    for _ in $(seq 100); do "$TPMKEY" random 1 >/dev/null 2>&1 && up=1 && break; sleep 0.1; done
    [ -n "$up" ] || die "swtpm did not come up within 10 s on 127.0.0.1:$port; its log: $(cat "$work/swtpm.log" 2>/dev/null)"
    echo "    no TPM here: started swtpm (pid ${pids[-1]}), TPMKEY_TCTI=$TPMKEY_TCTI"
fi
"$TPMKEY" info >"$work/info.txt"
head -3 "$work/info.txt" | sed "s/^/    /"

step "Creating a token and a key inside the TPM (store: $TPMKEY_STORE)"
PIN=1234
"$TPMKEY" init --no-persist
"$TPMKEY" token add --label demo --userpin "$PIN" --sopin "demo-so-pin-$RANDOM$RANDOM"
"$TPMKEY" key add --token demo --label demo-key --algorithm ecc256 --userpin "$PIN"
echo "    the private key never left the TPM; the store holds only its TPM-wrapped blob"

step "The public key, as ssh-keygen -D $MODULE prints it"
ssh-keygen -D "$MODULE" | tee "$work/authorized_keys"

step "Starting a throwaway sshd on 127.0.0.1 that accepts only that key"
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
sport=$(free_port)
user=$(id -un)
cat >"$work/sshd_config" <<EOF
Port $sport
ListenAddress 127.0.0.1
HostKey $work/hostkey
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers $user
EOF
if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; fi
"$(command -v sshd || echo /usr/sbin/sshd)" -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && break; sleep 0.05; done
echo "    sshd pid ${pids[-1]} on port $sport"

step "Logging in with ssh -I $MODULE (PIN $PIN given through SSH_ASKPASS)"
printf '#!/bin/sh\necho "askpass: $1" >&2\necho %s\n' "$PIN" >"$work/askpass"
chmod 700 "$work/askpass"
if SSH_ASKPASS="$work/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY="${DISPLAY:-:0}" \
    ssh -F /dev/null -p "$sport" -I "$MODULE" \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=${DEMO_SSH_LOGLEVEL:-ERROR} \
    -o PreferredAuthentications=publickey \
    "$user@127.0.0.1" 'echo "    logged in as $(id -un) on $(hostname) with a TPM-held key"' </dev/null; then
    step "Done: a TPM-backed key was used for a real ssh login. Cleaning up."
else
    echo "sshd log:" >&2
    cat "$work/sshd.log" >&2
    die "the ssh login failed"
fi
