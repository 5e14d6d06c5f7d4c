#!/usr/bin/env bash
# Records TPM command/response frames from the reference stack (tpm2-tools on swtpm)
# through examples/tpm_record_proxy.rs into vendor-testvectors/recorded/*.txt.
# Regenerate with: bash vendor-testvectors/record.sh   (needs swtpm, tpm2-tools, openssl)
set -euo pipefail
cd "$(dirname "$0")/.."
out=vendor-testvectors/recorded
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# A port P such that P and P+1 are both free (data and control channels).
free_port() {
    python3 - <<'PY'
import socket, random
while True:
    p = random.randrange(20000, 60000, 2)
    try:
        a = socket.socket(); a.bind(("127.0.0.1", p)); b = socket.socket(); b.bind(("127.0.0.1", p + 1))
        a.close(); b.close(); print(p); break
    except OSError:
        pass
PY
}
cargo build -q --example tpm_record_proxy
proxy_bin=target/debug/examples/tpm_record_proxy

run_scenario() { # name, then a function to run
    local name=$1; shift
    local sp pp file="$out/$name.txt"
    sp=$(free_port); pp=$(free_port)
    while [ "$pp" = "$sp" ]; do pp=$(free_port); done
    mkdir -p "$work/$name"
    swtpm socket --tpm2 --server type=tcp,port=$sp,bindaddr=127.0.0.1 --ctrl type=tcp,port=$((sp+1)),bindaddr=127.0.0.1 \
        --tpmstate dir="$work/$name" --flags not-need-init,startup-clear &
    local swtpm_pid=$!; pids+=("$swtpm_pid")
    {
        echo "# $name: tpm2-tools frames recorded through a proxy to swtpm"
        echo "# $(tpm2_getrandom --version 2>&1 | head -1)"
        echo "# $(swtpm --version 2>&1 | head -1)"
        echo "# recorded $(date -u +%Y-%m-%d) by vendor-testvectors/record.sh; '>' command, '<' response, hex"
    } > "$file"
    "$proxy_bin" --listen "$pp" --target "$sp" --out "$file" 2>/dev/null &
    local proxy_pid=$!; pids+=("$proxy_pid")
    sleep 0.3
    export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$pp"
    (cd "$work/$name" && "$@") >"$work/$name.log" 2>&1 || { echo "record.sh: scenario $name failed:" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
    kill "$proxy_pid" "$swtpm_pid" 2>/dev/null || true
    wait "$proxy_pid" "$swtpm_pid" 2>/dev/null || true
    echo "$name: $(grep -c '^>' "$file") frames"
}

# One step: run it (failing the scenario if it fails), then flush what tpm2-tools
# leaves loaded, since a raw swtpm has no resource manager.
t() {
    "$@" || { echo "record.sh: step failed: $*" >&2; exit 1; }
    case "$1" in tpm2_*) tpm2_flushcontext -t >/dev/null 2>&1 || true ;; esac
}

s_getrandom() { t tpm2_getrandom 16; t tpm2_getrandom --hex 32; }
s_getcap() { for c in properties-fixed properties-variable algorithms ecc-curves pcrs handles-persistent handles-transient commands; do tpm2_getcap "$c"; done; }
s_pcr() { t tpm2_pcrread sha256:0,1,2,16; t tpm2_pcrextend 16:sha256=0000000000000000000000000000000000000000000000000000000000000001; t tpm2_pcrread sha1:16+sha256:16; t tpm2_pcrreset 16; }
s_primary() {
    t tpm2_createprimary -C o -G ecc -c ecc.ctx; t tpm2_readpublic -c ecc.ctx; t tpm2_flushcontext -t
    t tpm2_createprimary -C o -G rsa -c rsa.ctx; t tpm2_evictcontrol -C o -c rsa.ctx 0x81000001; t tpm2_readpublic -c 0x81000001
    t tpm2_evictcontrol -C o -c 0x81000001
}
s_keys() {
    t tpm2_createprimary -C o -G ecc -c p.ctx
    t tpm2_create -C p.ctx -G ecc256:ecdsa -u e.pub -r e.priv; t tpm2_load -C p.ctx -u e.pub -r e.priv -c e.ctx
    t echo hello > msg; t tpm2_sign -c e.ctx -g sha256 -o e.sig msg; t tpm2_verifysignature -c e.ctx -g sha256 -m msg -s e.sig
    t tpm2_create -C p.ctx -G rsa2048:rsassa -p keypass -u r.pub -r r.priv; t tpm2_load -C p.ctx -u r.pub -r r.priv -c r.ctx
    t tpm2_sign -c r.ctx -p keypass -g sha256 -o r.sig msg; t tpm2_verifysignature -c r.ctx -g sha256 -m msg -s r.sig
    t tpm2_changeauth -c r.ctx -C p.ctx -p keypass -r r2.priv newpass
    t tpm2_create -C p.ctx -G rsa2048:rsapss:null -u s.pub -r s.priv; t tpm2_load -C p.ctx -u s.pub -r s.priv -c s.ctx
    t tpm2_sign -c s.ctx -g sha256 -s rsapss -o s.sig msg
    t tpm2_create -C p.ctx -G rsa2048:oaep:null -u d.pub -r d.priv; t tpm2_load -C p.ctx -u d.pub -r d.priv -c d.ctx
    t tpm2_rsaencrypt -c d.ctx -s oaep -o ct msg; t tpm2_rsadecrypt -c d.ctx -s oaep -o pt ct
    t tpm2_create -C p.ctx -G ecc256:ecdh:null -u x.pub -r x.priv; t tpm2_load -C p.ctx -u x.pub -r x.priv -c x.ctx
    t tpm2_ecephemeral -u q.pub -t q.ctr ecc256
    t tpm2_ecdhkeygen -u z.pub -o z.priv -c x.ctx; t tpm2_ecdhzgen -u z.pub -o zz.priv -c x.ctx
    t tpm2_testparms rsa2048 ecc256 ecc384 aes128cfb
}
s_seal() {
    t tpm2_createprimary -C o -c p.ctx
    t echo -n topsecret > secret
    t tpm2_create -C p.ctx -i secret -p sealpass -u s.pub -r s.priv; t tpm2_load -C p.ctx -u s.pub -r s.priv -c s.ctx
    t tpm2_unseal -c s.ctx -p sealpass
    t tpm2_startauthsession -S t.ctx; t tpm2_policypcr -S t.ctx -l sha256:16 -L pol; t tpm2_flushcontext t.ctx
    t tpm2_create -C p.ctx -i secret -L pol -u q.pub -r q.priv; t tpm2_load -C p.ctx -u q.pub -r q.priv -c q.ctx
    t tpm2_startauthsession --policy-session -S ps.ctx; t tpm2_policypcr -S ps.ctx -l sha256:16
    t tpm2_unseal -c q.ctx -p session:ps.ctx; t tpm2_flushcontext ps.ctx
    t tpm2_startauthsession -S h.ctx --hmac-session; t tpm2_sessionconfig h.ctx --enable-encrypt
    t tpm2_unseal -c s.ctx -p sealpass -S h.ctx; t tpm2_flushcontext h.ctx
}
s_policy() {
    t tpm2_startauthsession -S t.ctx
    t tpm2_policyauthvalue -S t.ctx; t tpm2_policycommandcode -S t.ctx -L d1 TPM2_CC_Sign
    t tpm2_flushcontext t.ctx
    t tpm2_startauthsession -S t.ctx; t tpm2_policypassword -S t.ctx -L d2; t tpm2_flushcontext t.ctx
    t tpm2_startauthsession -S t.ctx; t tpm2_policysecret -S t.ctx -c o -L d3; t tpm2_flushcontext t.ctx
    t tpm2_startauthsession -S t.ctx; t tpm2_policyor -S t.ctx -L d4 sha256:d1,d2; t tpm2_flushcontext t.ctx
}
s_import() {
    t tpm2_createprimary -C o -c p.ctx
    t openssl ecparam -name prime256v1 -genkey -noout -out k.pem 2>/dev/null
    t tpm2_import -C p.ctx -G ecc -i k.pem -u k.pub -r k.priv
    t tpm2_flushcontext -t
    t tpm2_load -C p.ctx -u k.pub -r k.priv -c k.ctx
    t tpm2_flushcontext -t
    t tpm2_loadexternal -C n -u k.pub -c ext.ctx
}
s_admin() {
    t tpm2_selftest --fulltest; t tpm2_gettestresult
    t tpm2_dictionarylockout -s -n 5 -t 6 -l 7; t tpm2_dictionarylockout -c
    t tpm2_changeauth -c o ownerpass; t tpm2_changeauth -c o -p ownerpass
    t tpm2_hash -g sha256 -C o <<<"data"
    t tpm2_shutdown -c
}

for s in getrandom getcap pcr primary keys seal policy import admin; do
    run_scenario "$s" "s_$s"
done
