#!/usr/bin/env bash
# tpmkey's PKCS#11 module side by side with tpm2-pkcs11, in one run, on one swtpm.
#
#   benches/pkcs11.sh            (from the repository root; needs root for apt-get/sshd)
#
# One swtpm process serves both stacks, one after the other (swtpm serves a single
# data connection at a time): first tpmkey, which talks to swtpm's TCP socket
# directly; then tpm2-pkcs11, which needs tpm2-abrmd (on a private D-Bus session bus)
# in front of it. Timing runs go straight to swtpm (tpmkey) or abrmd -> swtpm
# (tpm2-pkcs11). Counting runs go through examples/tpm_record_proxy.rs placed in front
# of swtpm; for tpm2-pkcs11 it sits between abrmd and swtpm, so abrmd's own context
# save/load traffic counts against it. The floor for a login is an ssh login with an
# ECDSA key file; the floor for a signature is a bare TPM2_Sign with an empty password
# on a loaded key (examples/tpm_raw_sign.rs). Decryption (RSA-2048 OAEP with SHA-256)
# and ECDH (P-256, CKD_NULL) are timed and counted the same way as signatures, with
# the same key of each stack (tpm2_ptool's keys sign and decrypt; tpmkey's are made
# with --usage sign,decrypt).
#
# Everything started here is killed by PID on exit (also on error or Ctrl-C) and the
# temporary directory is removed. Knobs: RUNS_KEYGEN (20), RUNS_LOGIN (20),
# RUNS_SETUP (3), N_SIGN (200), SIGN_REPS (3), KEEP_TMP=1 (keep the temporary directory).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS_KEYGEN=${RUNS_KEYGEN:-20}
RUNS_LOGIN=${RUNS_LOGIN:-20}
RUNS_SETUP=${RUNS_SETUP:-3}
N_SIGN=${N_SIGN:-200}
SIGN_REPS=${SIGN_REPS:-3} # timing runs of each sign loop (median taken)
N_COUNT=10 # signatures in the counting runs

log() { printf 'pkcs11.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ---------------------------------------------------------------- dependencies
need_pkgs=()
for p in swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 dbus \
    libtpm2-pkcs11-1 libtpm2-pkcs11-tools openssh-server openssh-client time opensc; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
PEER_MODULE=$(dpkg -L libtpm2-pkcs11-1 | grep -E '/libtpm2_pkcs11\.so(\.1)?$' | sort | tail -1)
[ -n "$PEER_MODULE" ] && [ -e "$PEER_MODULE" ] || die "libtpm2_pkcs11.so not found (dpkg -L libtpm2-pkcs11-1)"
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || die "sshd not found"

# ---------------------------------------------------------------- build (once)
log "cargo build --release (library, CLI, bench helpers)"
cargo build --release --quiet --lib --bins \
    --example tpm_record_proxy --example p11_sign_loop --example tpm_raw_sign
REL=$ROOT/target/release
TK_BIN=$REL/tpmkey
TK_MODULE=$REL/libtpmkey.so
PROXY_BIN=$REL/examples/tpm_record_proxy
LOOP_BIN=$REL/examples/p11_sign_loop
RAW_BIN=$REL/examples/tpm_raw_sign

# ---------------------------------------------------------------- clean-up
TMP=$(mktemp -d /tmp/tpmkey-p11bench.XXXXXX)
PIDS=()
cleanup() {
    local rc=$? i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Stops one process this script started and forgets it.
stop() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for i in "${!PIDS[@]}"; do [ "${PIDS[i]}" = "$pid" ] && unset 'PIDS[i]'; done
    PIDS=("${PIDS[@]}")
}

# ---------------------------------------------------------------- ports
USED_PORTS=" "
# Any TCP socket (listening, connected, TIME_WAIT) on local port $1.
port_taken() { [ -n "$(ss -Htan "sport = :$1" 2>/dev/null)" ]; }
# FREE_PORT := a random free loopback port P (and P+1 with `pair`), not handed out before, below
# the kernel's ephemeral range so that no outgoing connection grabs it meanwhile.
free_port() {
    local p n=0 lo
    lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    ((lo > 12000)) || lo=61000
    while :; do
        p=$((10000 + RANDOM % (lo - 10002)))
        n=$((n + 1))
        ((n < 500)) || die "no free port"
        case $USED_PORTS in *" $p "* | *" $((p + 1)) "*) continue ;; esac
        port_taken "$p" && continue
        if [ "${1:-}" = pair ]; then port_taken $((p + 1)) && continue; fi
        USED_PORTS+="$p $((p + 1)) "
        FREE_PORT=$p
        return
    done
}
# Waits until process `pid` listens on `port`; fails (status 1) if it exited first.
wait_listen() {
    local pid=$1 port=$2 n
    for ((n = 0; n < 200; n++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        ss -Hltnp "sport = :$port" 2>/dev/null | grep -q "pid=$pid," && return 0
        sleep 0.05
    done
    die "pid $pid did not listen on port $port"
}
# start_server NAME PAIR CMD...: picks a free port (pair: P and P+1), runs CMD with
# every "@PORT@" / "@PORT1@" replaced by P / P+1, in the background, until it listens
# on P (5 tries, in case another process took the port meanwhile). Sets PORT and PID.
start_server() {
    local name=$1 pair=$2 try a args
    shift 2
    for ((try = 0; try < 5; try++)); do
        free_port "$pair"
        PORT=$FREE_PORT
        args=()
        for a in "$@"; do
            a=${a//@PORT1@/$((PORT + 1))}
            args+=("${a//@PORT@/$PORT}")
        done
        "${args[@]}" </dev/null >>"$TMP/$name.log" 2>&1 &
        PID=$!
        PIDS+=("$PID")
        wait_listen "$PID" "$PORT" && return 0
        stop "$PID"
    done
    die "$name would not start; see $TMP/$name.log"
}

# ---------------------------------------------------------------- measurement helpers
now_ns() { date +%s%N; }
# Runs "$@" once (stdout/stderr to $TMP/last.out), prints wall time in ms.
time_once() {
    local t0 t1
    t0=$(now_ns)
    "$@" >"$TMP/last.out" 2>&1 || {
        log "command failed: $*"
        cat "$TMP/last.out" >&2
        return 1
    }
    t1=$(now_ns)
    awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f\n", d / 1e6 }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# median_ms RUNS cmd...: one warm-up run, then the median of RUNS runs.
median_ms() {
    local runs=$1 i
    shift
    time_once "$@" >/dev/null
    for ((i = 0; i < runs; i++)); do time_once "$@"; done | median
}
# peak_kb cmd...: max RSS of one run, in KiB.
peak_kb() {
    /usr/bin/time -f %M -o "$TMP/rss" "$@" >"$TMP/last.out" 2>&1 || {
        log "command failed: $*"
        cat "$TMP/last.out" >&2
        return 1
    }
    tail -1 "$TMP/rss"
}

# The recording proxy's file: '> cmd-hex' / '< rsp-hex' pairs, '# phase' markers.
REC=$TMP/proxy.rec
rec_clear() { : >"$REC"; }
# Decodes the command codes recorded (optionally only inside phase $2) into
# "Name, Name x3, ..." (consecutive repeats folded; a failing command shows its RC).
CMD_AWK='
BEGIN {
    nt = split("11f NV_UndefineSpaceSpecial 120 EvictControl 121 HierarchyControl 122 NV_UndefineSpace 126 Clear 127 ClearControl 129 HierarchyChangeAuth 12a NV_DefineSpace 131 CreatePrimary 134 NV_Increment 137 NV_Write 139 DictionaryAttackLockReset 13a DictionaryAttackParameters 13b NV_ChangeAuth 13e SequenceComplete 142 IncrementalSelfTest 143 SelfTest 144 Startup 145 Shutdown 146 StirRandom 14e NV_Read 150 ObjectChangeAuth 151 PolicySecret 153 Create 154 ECDH_ZGen 155 HMAC 156 Import 157 Load 159 RSA_Decrypt 15b HMAC_Start 15c SequenceUpdate 15d Sign 15e Unseal 160 PolicySigned 161 ContextLoad 162 ContextSave 163 ECDH_KeyGen 164 EncryptDecrypt 165 FlushContext 167 LoadExternal 169 NV_ReadPublic 16a PolicyAuthorize 16b PolicyAuthValue 16c PolicyCommandCode 16e PolicyCpHash 171 PolicyOR 173 ReadPublic 174 RSA_Encrypt 176 StartAuthSession 177 VerifySignature 178 ECC_Parameters 17a GetCapability 17b GetRandom 17c GetTestResult 17d Hash 17e PCR_Read 17f PolicyPCR 180 PolicyRestart 181 ReadClock 182 PCR_Extend 186 HashSequenceStart 189 PolicyGetDigest 18a TestParms 18c PolicyPassword 191 CreateLoaded 193 EncryptDecrypt2", t, " ")
    for (i = 1; i < nt; i += 2) name[t[i]] = t[i + 1]
    inside = (phase == "")
}
/^# / { inside = (phase == "" || $2 == phase); next }
!inside { next }
/^> / { cc = substr($2, 13, 8); sub(/^0+/, "", cc); pending = (cc in name) ? name[cc] : "CC_0x" cc; next }
/^< / {
    rc = substr($2, 13, 8)
    it[++m] = pending (rc != "00000000" ? "(rc=0x" rc ")" : "")
    # tpm2-abrmd wraps each client command in ContextLoad(s) before and
    # ContextSave(s) + FlushContext(s) after; what is left is what the client sent.
    abrmd = (pending ~ /^Context(Save|Load)$/) || (pending == "FlushContext" && after_save)
    after_save = (pending == "ContextSave") || (pending == "FlushContext" && after_save)
    if (!abrmd) own++
}
# "A, B x3, C" for items a..b (consecutive repeats folded).
function fold(a, b,    i, out, cur, reps) {
    out = ""; cur = ""
    for (i = a; i <= b + 1; i++) {
        if (i <= b && it[i] == cur) { reps++; continue }
        if (cur != "") out = out (out == "" ? "" : ", ") cur (reps > 1 ? " x" reps : "")
        if (i <= b) { cur = it[i]; reps = 1 }
    }
    return out
}
END {
    if (mode == "count") { print m + 0; exit }
    if (mode == "own") { print own + 0; exit }
    if (m == 0) { print "(none)"; exit }
    # A list that is one sequence repeated k times prints as "(sequence) xk".
    for (p = 1; p <= m / 2; p++) {
        if (m % p) continue
        ok = 1
        for (i = p + 1; i <= m; i++) if (it[i] != it[i - p]) { ok = 0; break }
        if (!ok) continue
        if (p == 1) break
        print "(" fold(1, p) ") x" m / p; exit
    }
    print fold(1, m)
}'
rec_count() { awk -v mode=count -v phase="${1:-}" "$CMD_AWK" "$REC"; }
rec_list() { awk -v mode=list -v phase="${1:-}" "$CMD_AWK" "$REC"; }
# Commands other than tpm2-abrmd's ContextLoad / ContextSave / FlushContext-after-save
# (its handle virtualization): roughly what the client itself sent.
rec_own() { awk -v mode=own -v phase="${1:-}" "$CMD_AWK" "$REC"; }
# Per-operation command lists, printed at the end.
LISTS=$TMP/lists
note_list() {
    local n own
    n=$(rec_count "${3:-}")
    own=$(rec_own "${3:-}")
    [ "$own" = "$n" ] && own="" || own=" [~$own without abrmd's context swapping]"
    printf '  %-30s %3s  %s%s\n' "$2" "$n" "$(rec_list "${3:-}")" "$own" >>"$LISTS.$1"
}

# Result table: key -> value.
declare -A R

# ---------------------------------------------------------------- swtpm (one for both)
mkdir -p "$TMP/swtpm"
start_server swtpm pair swtpm socket --tpm2 \
    --server type=tcp,port=@PORT@,bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=@PORT1@,bindaddr=127.0.0.1 \
    --tpmstate dir="$TMP/swtpm" --flags not-need-init,startup-clear
SW_PORT=$PORT SW_PID=$PID
SWTPM_VERSION=$(swtpm --version 2>&1 | head -1)

start_server proxy pair "$PROXY_BIN" --listen @PORT@ --target "$SW_PORT" --out "$REC"
PROXY_PORT=$PORT

DIRECT_TCTI=swtpm:host=127.0.0.1,port=$SW_PORT
PROXY_TCTI=swtpm:host=127.0.0.1,port=$PROXY_PORT

# Transient objects and sessions left in the TPM (asked straight to swtpm; run only
# while nothing else holds swtpm's single data connection).
tpm_leftovers() {
    local o s
    o=$(tpm2_getcap -T "$DIRECT_TCTI" handles-transient 2>/dev/null | grep -c 0x || true)
    s=$( (tpm2_getcap -T "$DIRECT_TCTI" handles-loaded-session 2>/dev/null
        tpm2_getcap -T "$DIRECT_TCTI" handles-saved-session 2>/dev/null) | grep -c 0x || true)
    echo "$o objects, $s sessions"
}

# ---------------------------------------------------------------- sshd + key file
mkdir -p "$TMP/ssh" && chmod 700 "$TMP/ssh"
ssh-keygen -q -t ed25519 -N "" -f "$TMP/ssh/hostkey"
ssh-keygen -q -t ecdsa -b 256 -N "" -f "$TMP/ssh/id_ecdsa" -C keyfile
printf '#!/bin/sh\nprintf "%%s\\n" 1234\n' >"$TMP/ssh/askpass" && chmod 700 "$TMP/ssh/askpass"
if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd && chmod 755 /run/sshd; fi
ME=$(id -un)
cat >"$TMP/ssh/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $TMP/ssh/hostkey
PidFile $TMP/ssh/sshd.pid
AuthorizedKeysFile $TMP/ssh/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers $ME
LogLevel ERROR
EOF
cp "$TMP/ssh/id_ecdsa.pub" "$TMP/ssh/authorized_keys"
start_server sshd no "$SSHD" -D -e -f "$TMP/ssh/sshd_config" -p @PORT@
SSH_PORT=$PORT

SSH_BASE=(ssh -F /dev/null -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o GlobalKnownHostsFile=/dev/null -o PreferredAuthentications=publickey -o ConnectTimeout=20
    -o LogLevel=ERROR -o PubkeyAcceptedAlgorithms=ecdsa-sha2-nistp256)
# A login that runs `true` with the first ECDSA key the module offers, PIN via askpass.
ssh_module() {
    env -u SSH_AUTH_SOCK SSH_ASKPASS="$TMP/ssh/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=:0 \
        "${SSH_BASE[@]}" -o IdentityFile="$TMP/ssh/none" -I "$1" 127.0.0.1 true </dev/null
}
ssh_keyfile() {
    env -u SSH_AUTH_SOCK "${SSH_BASE[@]}" -o IdentitiesOnly=yes -i "$TMP/ssh/id_ecdsa" 127.0.0.1 true </dev/null
}
authorize() { ssh-keygen -D "$1" 2>/dev/null | grep '^ecdsa-sha2-nistp256 ' >>"$TMP/ssh/authorized_keys"; }

# An ssh-agent holding module $1 after `ssh-add -s` (logged in; PIN via askpass),
# idle while the logins run.
AGENT_PID=""
AGENT_SOCK=$TMP/agent.sock
agent_start() {
    rm -f "$AGENT_SOCK"
    # ssh-agent matches the realpath of a provider against -P.
    ssh-agent -D -a "$AGENT_SOCK" -P "$(readlink -f "$1")" </dev/null >>"$TMP/agent.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
    local n
    for ((n = 0; n < 100; n++)); do
        [ -S "$AGENT_SOCK" ] && break
        sleep 0.05
    done
    [ -S "$AGENT_SOCK" ] || die "ssh-agent did not start"
    SSH_AUTH_SOCK=$AGENT_SOCK SSH_ASKPASS="$TMP/ssh/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=:0 \
        ssh-add -s "$1" </dev/null >>"$TMP/agent.log" 2>&1 || die "ssh-add -s $1 failed: $(tail -3 "$TMP/agent.log")"
}
# The agent still signs (a login through it, no -I).
agent_check() {
    env SSH_AUTH_SOCK="$AGENT_SOCK" "${SSH_BASE[@]}" 127.0.0.1 true </dev/null >>"$TMP/agent.log" 2>&1 ||
        die "the agent holding $1 no longer signs: $(tail -3 "$TMP/agent.log")"
}
agent_stop() {
    stop "$AGENT_PID"
    AGENT_PID=""
}

# Sign loop (timing run: max RSS too) and counting run, for one module and key type.
# $1 stack (tk|peer), $2 module, $3 key type (ec|rsa), $4 mode (time|count)
sign_bench() {
    local stack=$1 module=$2 key=$3 mode=$4 out
    if [ "$mode" = time ]; then
        # One run; sign_medians turns the SIGN_REPS runs into medians.
        peak_kb "$LOOP_BIN" --module "$module" --token bench --pin 1234 --key "$key" -n "$N_SIGN" >>"$TMP/sig.$stack.$key.rss"
        grep '^sign ' "$TMP/last.out" >>"$TMP/sig.$stack.$key"
    else
        rec_clear
        "$LOOP_BIN" --module "$module" --token bench --pin 1234 --key "$key" -n "$N_COUNT" --mark "$REC" >"$TMP/last.out" 2>&1 ||
            { cat "$TMP/last.out" >&2; die "sign loop failed ($stack $key)"; }
        R[$stack.n.steady.$key]=$(awk -v c="$(rec_count steady)" -v n="$N_COUNT" 'BEGIN { printf "%g", c / n }')
        local ph
        for ph in initialize login find first-sign steady; do
            note_list "$stack" "C_Sign loop $key: $ph" "$ph"
        done
        R[$stack.n.setup.$key]=$(($(rec_count initialize) + $(rec_count login) + $(rec_count find) + $(rec_count first-sign)))
    fi
}

# True when the module lists mechanism $2 (pkcs11-tool's name for it).
lists_mech() { pkcs11-tool --module "$1" -M 2>/dev/null | grep -q "^  $2,"; }

# C_Decrypt (rsa) or C_DeriveKey (ec) loop: like sign_bench. A module that does not
# list the mechanism (tpm2-pkcs11 1.9 has no CKM_ECDH1_DERIVE) gets "n/a".
# $1 stack, $2 module, $3 key type, $4 op (decrypt|derive), $5 mode (time|count)
op_bench() {
    local stack=$1 module=$2 key=$3 op=$4 mode=$5 mech
    if [ "$op" = derive ]; then mech=ECDH1-DERIVE; else mech=RSA-PKCS-OAEP; fi
    if ! lists_mech "$module" "$mech"; then
        [ "$stack" = peer ] || die "$module does not list $mech"
        R[$stack.n.$op]=n/a
        echo n/a >>"$TMP/op.$stack.$op"
        return
    fi
    if [ "$mode" = time ]; then
        "$LOOP_BIN" --module "$module" --token bench --pin 1234 --key "$key" --op "$op" -n "$N_SIGN" >"$TMP/last.out" 2>&1 ||
            { cat "$TMP/last.out" >&2; die "$op loop failed ($stack $key)"; }
        sed -nE "s/^$op $key .* ms_per_op=([0-9.]+).*/\1/p" "$TMP/last.out" >>"$TMP/op.$stack.$op"
    else
        rec_clear
        "$LOOP_BIN" --module "$module" --token bench --pin 1234 --key "$key" --op "$op" -n "$N_COUNT" --mark "$REC" >"$TMP/last.out" 2>&1 ||
            { cat "$TMP/last.out" >&2; die "$op loop failed ($stack $key)"; }
        R[$stack.n.$op]=$(awk -v c="$(rec_count steady)" -v n="$N_COUNT" 'BEGIN { printf "%g", c / n }')
        note_list "$stack" "$op loop $key: first" first-sign
        note_list "$stack" "$op loop $key: steady" steady
    fi
}

# Medians over the SIGN_REPS timing runs of sign_bench (peak RSS: the largest).
sign_medians() {
    local stack=$1 key=$2 f=$TMP/sig.$1.$2 field
    for field in ms_per_op first_ms init_ms login_ms; do
        R[$stack.$field.$key]=$(sed -E "s/.* $field=([0-9.]+).*/\1/" "$f" | median)
    done
    R[$stack.rss.sign.$key]=$(sort -n "$f.rss" | tail -1)
}

# Runs the per-module operations of one stack. $1 stack, $2 module, $3 mode (time|count)
module_ops() {
    local stack=$1 module=$2 mode=$3
    if [ "$mode" = time ]; then
        R[$stack.keygen]=$(median_ms "$RUNS_KEYGEN" ssh-keygen -D "$module")
        R[$stack.rss.keygen]=$(peak_kb ssh-keygen -D "$module")
        # Module logins and key-file logins interleaved (order alternating), so that
        # both see the same machine load.
        local i
        time_once ssh_module "$module" >/dev/null
        time_once ssh_keyfile >/dev/null
        : >"$TMP/login.mod"
        : >"$TMP/login.key"
        for ((i = 0; i < RUNS_LOGIN; i++)); do
            if ((i % 2)); then time_once ssh_keyfile >>"$TMP/login.key"; fi
            time_once ssh_module "$module" >>"$TMP/login.mod"
            if ((i % 2 == 0)); then time_once ssh_keyfile >>"$TMP/login.key"; fi
        done
        R[$stack.login]=$(median <"$TMP/login.mod")
        R[$stack.keyfile]=$(median <"$TMP/login.key")
        # The same logins while an ssh-agent holds the module (after ssh-add -s,
        # logged in, idle), key-file logins interleaved again.
        agent_start "$module"
        time_once ssh_module "$module" >/dev/null
        : >"$TMP/login.agent"
        : >"$TMP/login.agentkey"
        for ((i = 0; i < RUNS_LOGIN; i++)); do
            if ((i % 2)); then time_once ssh_keyfile >>"$TMP/login.agentkey"; fi
            time_once ssh_module "$module" >>"$TMP/login.agent"
            if ((i % 2 == 0)); then time_once ssh_keyfile >>"$TMP/login.agentkey"; fi
        done
        agent_check "$module"
        agent_stop
        R[$stack.login.agent]=$(median <"$TMP/login.agent")
        R[$stack.keyfile.agent]=$(median <"$TMP/login.agentkey")
    else
        rec_clear
        ssh-keygen -D "$module" >"$TMP/last.out" 2>&1 || die "ssh-keygen -D $module failed"
        R[$stack.n.keygen]=$(rec_count)
        note_list "$stack" "ssh-keygen -D" ""
        rec_clear
        ssh_module "$module" >"$TMP/last.out" 2>&1 || { cat "$TMP/last.out" >&2; die "ssh -I $module login failed"; }
        R[$stack.n.login]=$(rec_count)
        note_list "$stack" "ssh -I login" ""
        agent_start "$module"
        rec_clear
        ssh_module "$module" >"$TMP/last.out" 2>&1 || { cat "$TMP/last.out" >&2; die "ssh -I $module login beside an idle agent failed"; }
        R[$stack.n.login.agent]=$(rec_count)
        note_list "$stack" "ssh -I login, idle agent" ""
        agent_check "$module"
        agent_stop
    fi
    if [ "$mode" = count ]; then
        sign_bench "$stack" "$module" ec count
        sign_bench "$stack" "$module" rsa count
        op_bench "$stack" "$module" rsa decrypt count
        op_bench "$stack" "$module" ec derive count
        return
    fi
    # SIGN_REPS rounds, each: ec loop, rsa loop and (tpmkey) the bare TPM2_Sign floor,
    # interleaved so that all of them see the same machine load.
    local rep raw
    for ((rep = 0; rep < SIGN_REPS; rep++)); do
        sign_bench "$stack" "$module" ec time
        sign_bench "$stack" "$module" rsa time
        op_bench "$stack" "$module" rsa decrypt time
        op_bench "$stack" "$module" ec derive time
        if [ "$stack" = tk ]; then
            raw=$(TPMKEY_TCTI=$DIRECT_TCTI "$RAW_BIN" -n "$N_SIGN") || die "tpm_raw_sign failed"
            sed -nE 's/^raw ec ms_per_op=([0-9.]+).*/\1/p' <<<"$raw" >>"$TMP/raw.ec"
            sed -nE 's/^raw rsa ms_per_op=([0-9.]+).*/\1/p' <<<"$raw" >>"$TMP/raw.rsa"
        fi
    done
    sign_medians "$stack" ec
    sign_medians "$stack" rsa
    local op
    for op in decrypt derive; do
        if grep -q n/a "$TMP/op.$stack.$op"; then
            R[$stack.ms.$op]=n/a
        else
            R[$stack.ms.$op]=$(median <"$TMP/op.$stack.$op")
        fi
    done
    if [ "$stack" = tk ]; then
        R[raw.ec]=$(median <"$TMP/raw.ec")
        R[raw.rsa]=$(median <"$TMP/raw.rsa")
    fi
}

# ================================================================ 1. tpmkey
log "tpmkey: swtpm pid $SW_PID on port $SW_PORT"
tk() { TPMKEY_TCTI=$TK_TCTI TPMKEY_STORE=$TK_STORE "$TK_BIN" "$@"; }

# Set-up, counted (store "main", the one the operations below use).
TK_TCTI=$PROXY_TCTI TK_STORE=$TMP/tk-main
rec_clear && tk init >/dev/null && note_list tk "tpmkey init" ""
rec_clear && tk token add --label bench --userpin 1234 --sopin 5678 >/dev/null
R[tk.n.token]=$(rec_count) && note_list tk "tpmkey token add" ""
rec_clear && tk key add --token bench --label ec --algorithm ecc256 --usage sign,decrypt --userpin 1234 >/dev/null
R[tk.n.key.ec]=$(rec_count) && note_list tk "tpmkey key add ecc256" ""
rec_clear && tk key add --token bench --label rsa --algorithm rsa2048 --usage sign,decrypt --userpin 1234 >/dev/null
R[tk.n.key.rsa]=$(rec_count) && note_list tk "tpmkey key add rsa2048" ""

# Set-up, timed (a throwaway store: RUNS_SETUP tokens, RUNS_SETUP keys of each kind).
TK_TCTI=$DIRECT_TCTI TK_STORE=$TMP/tk-setup
tk init >/dev/null
R[tk.token]=$(for ((i = 0; i < RUNS_SETUP; i++)); do time_once tk token add --label "t$i" --userpin 1234 --sopin 5678; done | median)
R[tk.key.ec]=$(for ((i = 0; i < RUNS_SETUP; i++)); do time_once tk key add --token t0 --label "ec$i" --algorithm ecc256 --userpin 1234; done | median)
R[tk.key.rsa]=$(for ((i = 0; i < RUNS_SETUP; i++)); do time_once tk key add --token t0 --label "rsa$i" --algorithm rsa2048 --userpin 1234; done | median)

export TPMKEY_STORE=$TMP/tk-main
TPMKEY_TCTI=$DIRECT_TCTI authorize "$TK_MODULE"
TPMKEY_TCTI=$PROXY_TCTI module_ops tk "$TK_MODULE" count
TPMKEY_TCTI=$DIRECT_TCTI module_ops tk "$TK_MODULE" time

unset TPMKEY_STORE
R[tk.leftovers]=$(tpm_leftovers)

# ================================================================ 2. tpm2-pkcs11
log "tpm2-pkcs11: dbus-daemon + tpm2-abrmd in front of the same swtpm"
mkdir -p "$TMP/fapi"/{user,system,log}
# FAPI (tried by tpm2-pkcs11 next to its SQLite backend) pointed at the same TPM,
# unprovisioned, as on a machine nobody ran tss2_provision on; keystores in $TMP.
cat >"$TMP/fapi/fapi-config.json" <<EOF
{
    "profile_name": "P_ECCP256SHA256",
    "profile_dir": "/etc/tpm2-tss/fapi-profiles/",
    "user_dir": "$TMP/fapi/user",
    "system_dir": "$TMP/fapi/system",
    "tcti": "tabrmd:bus_type=session",
    "system_pcrs": [],
    "log_dir": "$TMP/fapi/log"
}
EOF
export TSS2_FAPICONF=$TMP/fapi/fapi-config.json
dbus-daemon --session --print-address=3 --print-pid=4 --fork 3>"$TMP/dbus.addr" 4>"$TMP/dbus.pid"
DBUS_PID=$(head -1 "$TMP/dbus.pid")
PIDS+=("$DBUS_PID")
DBUS_SESSION_BUS_ADDRESS=$(head -1 "$TMP/dbus.addr")
export DBUS_SESSION_BUS_ADDRESS
export TPM2TOOLS_TCTI=tabrmd:bus_type=session TPM2_PKCS11_TCTI=tabrmd:bus_type=session

ABRMD_PID=""
# (Re)starts tpm2-abrmd towards swtpm port $1 and waits until it answers.
abrmd_start() {
    [ -n "$ABRMD_PID" ] && stop "$ABRMD_PID"
    tpm2-abrmd --session --allow-root --tcti=swtpm:host=127.0.0.1,port="$1" </dev/null >>"$TMP/abrmd.log" 2>&1 &
    ABRMD_PID=$!
    PIDS+=("$ABRMD_PID")
    local n
    for ((n = 0; n < 100; n++)); do
        kill -0 "$ABRMD_PID" 2>/dev/null || die "tpm2-abrmd exited: $(cat "$TMP/abrmd.log")"
        tpm2_getrandom 4 >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "tpm2-abrmd did not answer"
}

# Set-up, counted (store "main", used below), abrmd talking to swtpm through the proxy.
abrmd_start "$PROXY_PORT"
export TPM2_PKCS11_STORE=$TMP/peer-main
mkdir -p "$TPM2_PKCS11_STORE"
rec_clear && tpm2_ptool init >/dev/null && note_list peer "tpm2_ptool init" ""
rec_clear && tpm2_ptool addtoken --pid=1 --label=bench --userpin=1234 --sopin=5678 >/dev/null
R[peer.n.token]=$(rec_count) && note_list peer "tpm2_ptool addtoken" ""
rec_clear && tpm2_ptool addkey --label=bench --userpin=1234 --algorithm=ecc256 >/dev/null
R[peer.n.key.ec]=$(rec_count) && note_list peer "tpm2_ptool addkey ecc256" ""
rec_clear && tpm2_ptool addkey --label=bench --userpin=1234 --algorithm=rsa2048 >/dev/null
R[peer.n.key.rsa]=$(rec_count) && note_list peer "tpm2_ptool addkey rsa2048" ""
authorize "$PEER_MODULE"
module_ops peer "$PEER_MODULE" count

# Timing runs: abrmd straight to swtpm.
abrmd_start "$SW_PORT"
export TPM2_PKCS11_STORE=$TMP/peer-setup
mkdir -p "$TPM2_PKCS11_STORE"
tpm2_ptool init >/dev/null
R[peer.token]=$(for ((i = 0; i < RUNS_SETUP; i++)); do time_once tpm2_ptool addtoken --pid=1 --label="t$i" --userpin=1234 --sopin=5678; done | median)
R[peer.key.ec]=$(for ((i = 0; i < RUNS_SETUP; i++)); do time_once tpm2_ptool addkey --label=t0 --userpin=1234 --algorithm=ecc256; done | median)
R[peer.key.rsa]=$(for ((i = 0; i < RUNS_SETUP; i++)); do time_once tpm2_ptool addkey --label=t0 --userpin=1234 --algorithm=rsa2048; done | median)
export TPM2_PKCS11_STORE=$TMP/peer-main
module_ops peer "$PEER_MODULE" time
stop "$ABRMD_PID"
R[peer.leftovers]=$(tpm_leftovers)

# ================================================================ 3. table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print (a + 0 == 0 ? "=" : "inf"); else printf "%.2f\n", a / b }'; }
# row LABEL TPMKEY PEER [RATIO]: the ratio defaults to PEER / TPMKEY.
row() { printf '%-44s %11s %11s %7s\n' "$1" "$2" "$3" "${4-$(ratio "$3" "$2")}"; }
ops() { awk -v m="$1" 'BEGIN { if (m == "n/a") print m; else printf "%.0f\n", 1000 / m }'; }
# Ratio B / A unless one of them is n/a.
ratio_or_na() { if [ "$1" = n/a ] || [ "$2" = n/a ]; then echo n/a; else ratio "$1" "$2"; fi; }
# goal LABEL OK?: a line for the goals list.
goal() { if awk "BEGIN { exit !($2) }"; then echo "  met      $1"; else echo "  MISSED   $1"; fi; }

tk_login_rel=$(ratio "${R[tk.login]}" "${R[tk.keyfile]}")
peer_login_rel=$(ratio "${R[peer.login]}" "${R[peer.keyfile]}")
echo
echo "tpmkey vs tpm2-pkcs11: swtpm $(awk '{print $4}' <<<"$SWTPM_VERSION" | tr -d ,), ONE swtpm process serving both stacks, one after the other"
echo "(tpmkey straight to its TCP socket; tpm2-pkcs11 $(dpkg-query -W -f '${Version}' libtpm2-pkcs11-1) via tpm2-abrmd $(tpm2-abrmd --version 2>/dev/null | awk '{print $NF}'));"
echo "$(ssh -V 2>&1 | cut -d, -f1); $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio = tpm2-pkcs11 / tpmkey, except signatures per second (tpmkey / tpm2-pkcs11): > 1 means tpmkey is better."
echo "The stacks run minutes apart on a shared machine: for logins compare the load-neutral row (each"
echo "login over a key-file login interleaved with it), for signatures the ratio to the bare TPM2_Sign."
echo
row "" tpmkey tpm2-pkcs11 ratio
row "" ------ ----------- -----
row "ssh-keygen -D, median of $RUNS_KEYGEN (ms)" "${R[tk.keygen]}" "${R[peer.keygen]}"
row "  TPM commands" "${R[tk.n.keygen]}" "${R[peer.n.keygen]}"
row "  peak RSS (KiB)" "${R[tk.rss.keygen]}" "${R[peer.rss.keygen]}"
row "ssh -I login, median of $RUNS_LOGIN (ms)" "${R[tk.login]}" "${R[peer.login]}"
row "  key-file login, interleaved (ms)" "${R[tk.keyfile]}" "${R[peer.keyfile]}" ""
row "  login / key-file login (load-neutral)" "$tk_login_rel" "$peer_login_rel"
row "  TPM commands per login" "${R[tk.n.login]}" "${R[peer.n.login]}"
tk_agent_rel=$(ratio "${R[tk.login.agent]}" "${R[tk.keyfile.agent]}")
peer_agent_rel=$(ratio "${R[peer.login.agent]}" "${R[peer.keyfile.agent]}")
row "ssh -I login, idle ssh-agent holding the module (ms)" "${R[tk.login.agent]}" "${R[peer.login.agent]}"
row "  key-file login, interleaved (ms)" "${R[tk.keyfile.agent]}" "${R[peer.keyfile.agent]}" ""
row "  login / key-file login (load-neutral)" "$tk_agent_rel" "$peer_agent_rel"
row "  TPM commands per login" "${R[tk.n.login.agent]}" "${R[peer.n.login.agent]}"
for k in ec rsa; do
    if [ $k = ec ]; then name="ECDSA P-256"; else name="RSA-2048 PKCS#1 v1.5"; fi
    row "$name C_Sign, n=$N_SIGN x$SIGN_REPS (ms/sig)" "${R[tk.ms_per_op.$k]}" "${R[peer.ms_per_op.$k]}"
    row "  signatures per second" "$(ops "${R[tk.ms_per_op.$k]}")" "$(ops "${R[peer.ms_per_op.$k]}")" "$(ratio "${R[peer.ms_per_op.$k]}" "${R[tk.ms_per_op.$k]}")"
    row "  bare TPM2_Sign, same swtpm (ms/sig)" "${R[raw.$k]}" "${R[raw.$k]}" ""
    row "  C_Sign / bare TPM2_Sign" "$(ratio "${R[tk.ms_per_op.$k]}" "${R[raw.$k]}")" "$(ratio "${R[peer.ms_per_op.$k]}" "${R[raw.$k]}")"
    row "  TPM commands per steady signature" "${R[tk.n.steady.$k]}" "${R[peer.n.steady.$k]}"
    row "  C_Initialize (ms)" "${R[tk.init_ms.$k]}" "${R[peer.init_ms.$k]}"
    row "  C_Login (ms)" "${R[tk.login_ms.$k]}" "${R[peer.login_ms.$k]}"
    row "  first C_Sign after login (ms)" "${R[tk.first_ms.$k]}" "${R[peer.first_ms.$k]}"
    row "  TPM commands, initialize to first sig" "${R[tk.n.setup.$k]}" "${R[peer.n.setup.$k]}"
    row "  sign loop peak RSS (KiB)" "${R[tk.rss.sign.$k]}" "${R[peer.rss.sign.$k]}"
done
for op in decrypt derive; do
    if [ $op = decrypt ]; then name="RSA-2048 OAEP C_Decrypt" per=decryption; else name="P-256 ECDH C_DeriveKey" per=derivation; fi
    row "$name, n=$N_SIGN x$SIGN_REPS (ms/op)" "${R[tk.ms.$op]}" "${R[peer.ms.$op]}" "$(ratio_or_na "${R[peer.ms.$op]}" "${R[tk.ms.$op]}")"
    row "  ${per}s per second" "$(ops "${R[tk.ms.$op]}")" "$(ops "${R[peer.ms.$op]}")" "$(ratio_or_na "${R[peer.ms.$op]}" "${R[tk.ms.$op]}")"
    row "  TPM commands per steady $per" "${R[tk.n.$op]}" "${R[peer.n.$op]}" "$(ratio_or_na "${R[peer.n.$op]}" "${R[tk.n.$op]}")"
done
row "token creation, median of $RUNS_SETUP (ms)" "${R[tk.token]}" "${R[peer.token]}"
row "  TPM commands" "${R[tk.n.token]}" "${R[peer.n.token]}"
row "key creation ecc256, median of $RUNS_SETUP (ms)" "${R[tk.key.ec]}" "${R[peer.key.ec]}"
row "  TPM commands" "${R[tk.n.key.ec]}" "${R[peer.n.key.ec]}"
row "key creation rsa2048, median of $RUNS_SETUP (ms)" "${R[tk.key.rsa]}" "${R[peer.key.rsa]}"
row "  TPM commands" "${R[tk.n.key.rsa]}" "${R[peer.n.key.rsa]}"
echo
echo "tpmkey goals:"
goal "ssh-keygen -D sends 0 TPM commands (${R[tk.n.keygen]})" "${R[tk.n.keygen]} == 0"
goal "login within 1.04x of the key-file login (${tk_login_rel}x)" "$tk_login_rel <= 1.04"
# On a raw swtpm a login is StartAuthSession, Unseal, Load, Sign and the two
# FlushContexts a TPM without a resource manager needs (4 through /dev/tpmrm0).
goal "login sends <= 6 TPM commands on raw swtpm, 4 of them work and 2 flushes (${R[tk.n.login]})" "${R[tk.n.login]} <= 6"
goal "login beside an idle agent holding the module as fast as without (${tk_agent_rel}x vs ${tk_login_rel}x of the key-file login)" "$tk_agent_rel <= $tk_login_rel * 1.05"
for k in ec rsa; do
    rel=$(ratio "${R[tk.ms_per_op.$k]}" "${R[raw.$k]}")
    goal "$k: 1 TPM command per steady signature (${R[tk.n.steady.$k]})" "${R[tk.n.steady.$k]} == 1"
    goal "$k: steady C_Sign within 1.25x of bare TPM2_Sign (${rel}x)" "$rel <= 1.25"
done
goal "1 TPM command per steady RSA-OAEP decryption (${R[tk.n.decrypt]})" "${R[tk.n.decrypt]} == 1"
goal "1 TPM command per steady P-256 ECDH (${R[tk.n.derive]})" "${R[tk.n.derive]} == 1"
echo
echo "left in the TPM afterwards: after tpmkey ${R[tk.leftovers]}; after tpm2-pkcs11 and abrmd's exit ${R[peer.leftovers]}"
echo
echo "TPM commands per operation (count, then the commands; xN = N in a row, (...) xN = sequence repeated):"
echo "tpmkey (straight to swtpm):"
cat "$LISTS.tk"
echo "tpm2-pkcs11 (counted between tpm2-abrmd and swtpm):"
cat "$LISTS.peer"
