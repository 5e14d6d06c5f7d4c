#!/bin/busybox sh
# /init of the VM test's initramfs (scripts/vm-test.sh packs it with a static
# busybox, the static musl tpmkey and an ssh-keygen ECDSA P-256 key). It runs the
# whole flow against the kernel's TPM devices, prints TPMKEY-VM-* lines for the
# host to parse, the closing marker TPMKEY-VM-RESULT rc=N, and powers off.
#
# Commands a colleague's branch adds (sign, seal/unseal, pcr extend) run when the
# binary has them; otherwise their steps print TPMKEY-VM-GUARDED and are skipped,
# or fail the run when the kernel command line says tpmkey.strict=1.

/bin/busybox mkdir -p /proc /sys /dev /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp

failures=0
strict=0
grep -q 'tpmkey.strict=1' /proc/cmdline && strict=1

# Centiseconds since boot.
now() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }
secs() { awk -v c="$1" 'BEGIN { printf "%d.%02d", c / 100, c % 100 }'; }

fail() {
    echo "TPMKEY-VM-FAIL $*"
    failures=$((failures + 1))
}

# step NAME CMD...: runs CMD, shows its output, counts a failure.
step() {
    name=$1
    shift
    t=$(now)
    echo "--- $name: $*"
    "$@" >/tmp/out 2>&1
    rc=$?
    sed 's/^/    /' /tmp/out
    if [ "$rc" -eq 0 ]; then
        echo "ok $name ($(secs $(($(now) - t))) s)"
    else
        fail "$name (exit $rc)"
    fi
    return "$rc"
}

# must_fail NAME CMD...: CMD has to fail (an error path).
must_fail() {
    name=$1
    shift
    echo "--- $name (must fail): $*"
    "$@" >/tmp/out 2>&1
    rc=$?
    sed 's/^/    /' /tmp/out
    if [ "$rc" -ne 0 ]; then
        echo "ok $name (failed as it should, exit $rc)"
    else
        fail "$name succeeded"
    fi
}

# has CMD...: this tpmkey has the subcommand.
has() { tpmkey "$@" --help >/dev/null 2>&1; }

guarded() {
    if [ "$strict" -eq 1 ]; then
        fail "tpmkey has no '$1' command (tpmkey.strict=1)"
    else
        echo "TPMKEY-VM-GUARDED $1: this tpmkey has no '$1' command; step skipped"
    fi
}

# handles FIRST: how many handles of a type the TPM holds, read with a raw
# TPM2_GetCapability(TPM_CAP_HANDLES, FIRST, 64) on /dev/tpm0 (FIRST as \x escapes,
# 4 bytes). Only meaningful on /dev/tpm0 (the raw TPM), when nobody holds it.
handles() {
    exec 3<>/dev/tpm0 || { echo -1; return; }
    printf "\x80\x01\x00\x00\x00\x16\x00\x00\x01\x7a\x00\x00\x00\x01$1\x00\x00\x00\x40" >&3
    dd bs=4096 count=1 <&3 2>/dev/null | od -An -tu1 -v | awk '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        END {
            if (n < 19 || b[6] + b[7] + b[8] + b[9] != 0) print -1
            else print b[15] * 16777216 + b[16] * 65536 + b[17] * 256 + b[18]
        }'
    exec 3>&-
}
objects() { handles '\x80\x00\x00\x00'; }
sessions() { echo $(($(handles '\x02\x00\x00\x00') + $(handles '\x03\x00\x00\x00'))); }

# mark: what the raw TPM holds now (left by killed processes, say); no_leak WHAT:
# it holds no more than that (tpmkey may have flushed some of it to make room).
mo=0
ms=0
mark() {
    mo=$(objects)
    ms=$(sessions)
}
no_leak() {
    o=$(objects)
    s=$(sessions)
    echo "    TPM holds after $1: $o transient objects, $s sessions (before: $mo, $ms)"
    [ "$o" -ge 0 ] && [ "$o" -le "$mo" ] && [ "$s" -ge 0 ] && [ "$s" -le "$ms" ] ||
        fail "$1 left $o transient objects and $s sessions in the TPM (before: $mo, $ms)"
}

# ---- sharing /dev/tpm0 (no resource manager) with a process that holds the module

# handle_list FIRST: the handles of one type (FIRST as in `handles`), one per line
# as \xHH escapes, for flush_raw.
handle_list() {
    exec 3<>/dev/tpm0 || return
    printf "\x80\x01\x00\x00\x00\x16\x00\x00\x01\x7a\x00\x00\x00\x01$1\x00\x00\x00\x40" >&3
    dd bs=4096 count=1 <&3 2>/dev/null | od -An -tu1 -v | awk '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        END {
            if (n < 19 || b[6] + b[7] + b[8] + b[9] != 0) exit
            c = b[15] * 16777216 + b[16] * 65536 + b[17] * 256 + b[18]
            for (k = 0; k < c; k++) {
                o = 19 + 4 * k
                printf "\\x%02x\\x%02x\\x%02x\\x%02x\n", b[o], b[o + 1], b[o + 2], b[o + 3]
            }
        }'
    exec 3>&-
}
# flush_raw HANDLE: TPM2_FlushContext written to /dev/tpm0 from the shell, as a
# program that knows nothing of tpmkey would (no flush epoch).
flush_raw() {
    exec 3<>/dev/tpm0 || return 1
    printf "\x80\x01\x00\x00\x00\x0e\x00\x00\x01\x65$1" >&3
    dd bs=4096 count=1 <&3 >/dev/null 2>&1
    exec 3>&-
}
# flush_everything: every transient object and session; prints how many.
flush_everything() {
    fe_n=0
    for fe_t in '\x80\x00\x00\x00' '\x02\x00\x00\x00' '\x03\x00\x00\x00'; do
        for fe_h in $(handle_list "$fe_t"); do
            flush_raw "$fe_h" && fe_n=$((fe_n + 1))
        done
    done
    echo "$fe_n"
}
# leak_primary: a TPM2_CreatePrimary (ECC P-256, noDA) whose object nobody flushes,
# as a crashed process leaves one; prints the response code (0: made).
leak_primary() {
    exec 3<>/dev/tpm0 || { echo -1; return; }
    printf "\x80\x02\x00\x00\x00\x41\x00\x00\x01\x31\x40\x00\x00\x01\x00\x00\x00\x09\x40\x00\x00\x09\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x00\x00\x18\x00\x23\x00\x0b\x00\x04\x04\x72\x00\x00\x00\x10\x00\x18\x00\x0b\x00\x03\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" >&3
    dd bs=4096 count=1 <&3 2>/dev/null | od -An -tu1 -v | awk '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        END { print (n < 10) ? -1 : b[6] * 16777216 + b[7] * 65536 + b[8] * 256 + b[9] }'
    exec 3>&-
}
# failed_tries: the TPM's dictionary-attack failure counter.
failed_tries() {
    tpmkey info --json 2>/dev/null | sed -n 's/.*"failed_tries":\([0-9]*\).*/\1/p'
}
# holder_sign NAME N: asks holder NAME (musl-p11-load --hold, FIFO /tmp/NAME.fifo,
# output /tmp/NAME.out) for its signature number N and waits up to 30 s for it.
holder_sign() {
    hs_t=$(now)
    echo sign >"/tmp/$1.fifo"
    hs_i=0
    while [ "$hs_i" -lt 300 ] && ! grep -q "^sign $2 " "/tmp/$1.out"; do
        usleep 100000
        hs_i=$((hs_i + 1))
    done
    if grep -q "^sign $2 ok" "/tmp/$1.out"; then
        echo "ok $1 signs ($3, $(secs $(($(now) - hs_t))) s)"
    else
        fail "$1 could not sign ($3): $(grep "^sign $2 " "/tmp/$1.out" || echo 'no answer within 30 s')"
        sed 's/^/      /' "/tmp/$1.out"
    fi
}
# holder_start NAME STORE: a musl program holding the module, logged in, signing on
# request; waits until it is holding.
holder_start() {
    rm -f "/tmp/$1.fifo" "/tmp/$1.out"
    mkfifo "/tmp/$1.fifo"
    TPMKEY_STORE=$2 musl-p11-load /libtpmkey.so 1234 --hold "/tmp/$1.fifo" >"/tmp/$1.out" 2>&1 &
    eval "$1_pid=\$!"
    hs_i=0
    while [ "$hs_i" -lt 300 ] && ! grep -q '^holding' "/tmp/$1.out"; do
        usleep 100000
        hs_i=$((hs_i + 1))
    done
    grep -q '^holding' "/tmp/$1.out" || { fail "$1 did not start"; sed 's/^/      /' "/tmp/$1.out"; }
}
holder_stop() {
    echo quit >"/tmp/$1.fifo"
    eval "wait \$$1_pid"
    hs_rc=$?
    [ "$hs_rc" -eq 0 ] && grep -q 'musl-p11-load: ok' "/tmp/$1.out" || {
        fail "$1 did not finish cleanly (exit $hs_rc)"
        sed 's/^/      /' "/tmp/$1.out"
    }
}

# A process holding the module (logged in, idle between signatures, like an
# ssh-agent after ssh-add -s) does not shut the others out of /dev/tpm0: tpmkey
# runs, one-shot module users and a second holder all work while it is idle, and
# it still signs afterwards, also after its handles were flushed behind its back
# and after tpmkey's stale-handle recovery gave its handle numbers to others.
share_raw_tpm() {
    export TPMKEY_TCTI=device:/dev/tpm0 TPMKEY_STORE=/tmp/store-raw
    t0=$(now)
    mark
    da0=$(failed_tries)
    # Alone, a holder that lets go of the device after every call signs with one
    # TPM command: login StartAuthSession + Unseal, first signature Load + Sign,
    # then Sign alone, C_Finalize two FlushContexts.
    export TPMKEY_PKCS11_STATS=1
    holder_start steady /tmp/store-raw
    unset TPMKEY_PKCS11_STATS
    i=1
    while [ "$i" -le 10 ]; do
        holder_sign steady "$i" "alone"
        i=$((i + 1))
    done
    holder_stop steady
    sent=$(sed -n 's/^libtpmkey: \([0-9]*\) TPM commands sent$/\1/p' /tmp/steady.out)
    echo "TPMKEY-VM-STAT /dev/tpm0 opened per call: login, 11 signatures, C_Finalize: ${sent:-?} TPM commands (16 = one per steady signature)"
    [ "$sent" = 16 ] || fail "a holder alone on /dev/tpm0 sent ${sent:-?} TPM commands for a login and 11 signatures, 16 expected"
    holder_start holder /tmp/store-raw
    exec 3<>/dev/tpm0 && echo "ok the raw TPM is free while the holder is idle" || fail "the idle holder keeps /dev/tpm0 open"
    exec 3>&-
    worst=0
    ok=0
    i=1
    while [ "$i" -le 10 ]; do
        t=$(now)
        tpmkey sign --token t --label k --userpin 1234 --in /tmp/msg >/tmp/out 2>&1 && ok=$((ok + 1)) || sed 's/^/      /' /tmp/out
        d=$(($(now) - t))
        [ "$d" -gt "$worst" ] && worst=$d
        i=$((i + 1))
    done
    echo "TPMKEY-VM-STAT /dev/tpm0 held by an idle module user: tpmkey sign ok $ok/10, slowest $(secs $worst) s"
    [ "$ok" -eq 10 ] && [ "$worst" -lt 1000 ] || fail "tpmkey sign beside an idle holder: ok $ok/10, slowest $(secs $worst) s"
    worst=0
    ok=0
    i=1
    while [ "$i" -le 10 ]; do
        t=$(now)
        musl-p11-load /libtpmkey.so 1234 >/tmp/out 2>&1 && ok=$((ok + 1)) || sed 's/^/      /' /tmp/out
        d=$(($(now) - t))
        [ "$d" -gt "$worst" ] && worst=$d
        i=$((i + 1))
    done
    echo "TPMKEY-VM-STAT /dev/tpm0 held by an idle module user: one-shot module login + signature ok $ok/10, slowest $(secs $worst) s"
    [ "$ok" -eq 10 ] && [ "$worst" -lt 1000 ] || fail "module users beside an idle holder: ok $ok/10, slowest $(secs $worst) s"
    holder_start holder2 /tmp/store-raw
    holder_sign holder2 1 "a second holder"
    holder_sign holder 1 "after the others"
    n=$(flush_everything)
    echo "    flushed $n handles behind the holders' backs"
    holder_sign holder 2 "after a foreign flush"
    holder_sign holder2 2 "after a foreign flush"
    # Fill the TPM: the next tpmkey flushes what it did not load (the holders'
    # keys and sessions too) and bumps the flush epoch.
    leaked=0
    while [ "$(leak_primary)" = 0 ] && [ "$leaked" -lt 5 ]; do leaked=$((leaked + 1)); done
    step "tpmkey sign in a full TPM" tpmkey sign --token t --label k --userpin 1234 --in /tmp/msg
    echo "    epoch file: $(cat /tmp/tpmkey-dev-tpm0.epoch 2>/dev/null || cat /run/lock/tpmkey-dev-tpm0.epoch 2>/dev/null || echo none) (after $leaked leaked objects)"
    holder_sign holder2 3 "after a stale flush"
    holder_sign holder 3 "after a stale flush, its handle numbers reused"
    da1=$(failed_tries)
    echo "    dictionary-attack failures: $da0 before, $da1 after"
    [ "$da0" = "$da1" ] || fail "sharing /dev/tpm0 cost failed authorizations ($da0 before, $da1 after)"
    holder_stop holder2
    holder_stop holder
    # A device another process has open: tpmkey waits for it within
    # TPMKEY_BUSY_TIMEOUT, then says which process holds it.
    sleep 3 3<>/dev/tpm0 &
    bpid=$!
    usleep 300000
    t=$(now)
    TPMKEY_BUSY_TIMEOUT=1 tpmkey info >/tmp/out 2>&1
    rc=$?
    d=$(($(now) - t))
    sed 's/^/    /' /tmp/out
    if [ "$rc" -ne 0 ] && grep -q "the TPM is busy: process $bpid (sleep) has the raw TPM open" /tmp/out && [ "$d" -lt 300 ]; then
        echo "ok a busy /dev/tpm0 is named with its holder after $(secs $d) s"
    else
        fail "busy /dev/tpm0: exit $rc after $(secs $d) s, holder $bpid not named"
    fi
    t=$(now)
    step "tpmkey waits for a busy /dev/tpm0" tpmkey info
    echo "TPMKEY-VM-STAT busy /dev/tpm0: TPMKEY_BUSY_TIMEOUT=1 refused naming the holder; the default waited $(secs $(($(now) - t))) s for it"
    wait "$bpid"
    no_leak "sharing /dev/tpm0"
    echo "TPMKEY-VM-STAT sharing /dev/tpm0 with idle module holders: $(secs $(($(now) - t0))) s"
}

echo "TPMKEY-VM-BOOTED uptime $(secs $(now)) s, kernel $(uname -r), $(nproc) CPU"
ls -l /dev/tpm* 2>&1 | sed 's/^/    /'
[ -c /dev/tpm0 ] && [ -c /dev/tpmrm0 ] || fail "no /dev/tpm0 or /dev/tpmrm0"

can_sign=0
has sign && can_sign=1
echo secret-for-the-vm-test >/tmp/secret
echo "message to sign" >/tmp/msg

# flow TAG DEVICE: the user's workflow through DEVICE, with its own store.
flow() {
    tag=$1
    export TPMKEY_TCTI=device:$2
    export TPMKEY_STORE=/tmp/store-$tag
    rm -rf "$TPMKEY_STORE"
    t0=$(now)
    raw=0
    [ "$2" = /dev/tpm0 ] && raw=1 && mark && echo "    the raw TPM holds $mo transient objects, $ms sessions"
    step "$tag info" tpmkey info
    step "$tag init" tpmkey init
    step "$tag token add" tpmkey token add --label t --userpin 1234 --sopin 5678
    step "$tag key add" tpmkey key add --token t --label k --algorithm ecc256 --userpin 1234
    [ "$raw" -eq 1 ] && no_leak "key add"
    step "$tag key import" tpmkey key import --token t --label imp --userpin 1234 /id_ecdsa
    [ "$raw" -eq 1 ] && no_leak "key import"
    if [ "$can_sign" -eq 1 ]; then
        # sign verifies the signature in software before printing it, in hex.
        for key in k imp; do
            if step "$tag sign $key" tpmkey sign --token t --label $key --userpin 1234 --in /tmp/msg; then
                grep -Eqi '^[0-9a-f]{16,}$' /tmp/out || fail "$tag sign $key: no hex signature printed"
            fi
        done
        [ "$raw" -eq 1 ] && no_leak "sign"
    else
        guarded sign
    fi
    if step "$tag ssh-pubkey" tpmkey ssh-pubkey; then
        want=$(awk '{ print $2 }' /id_ecdsa.pub)
        grep -q "^ecdsa-sha2-nistp256 $want imp\$" /tmp/out || fail "$tag ssh-pubkey: imported key's line differs from id_ecdsa.pub"
        grep -q '^ecdsa-sha2-nistp256 .* k$' /tmp/out || fail "$tag ssh-pubkey: no line for key k"
    fi
    if has seal && has unseal && has pcr extend; then
        step "$tag seal" tpmkey seal --pcrs sha256:7,16 --in /tmp/secret --out /tmp/sealed-$tag
        if step "$tag unseal" tpmkey unseal /tmp/sealed-$tag; then
            grep -q secret-for-the-vm-test /tmp/out || fail "$tag unseal: not the sealed data"
        fi
        step "$tag pcr extend" tpmkey pcr extend 16 --data x
        must_fail "$tag unseal after extend" tpmkey unseal /tmp/sealed-$tag
        grep -q 'PCR sha256:16 changed' /tmp/out || fail "$tag unseal after extend: the error does not name PCR 16"
        [ "$raw" -eq 1 ] && no_leak "seal, unseal and a refused unseal"
    else
        guarded seal
    fi
    if [ "$raw" -eq 1 ]; then
        # Error paths flush what they loaded, too.
        must_fail "$tag key add, wrong PIN" tpmkey key add --token t --label bad --userpin 9999
        no_leak "a key add with a wrong PIN"
        must_fail "$tag key import, no file" tpmkey key import --token t --label bad --userpin 1234 /nonexistent
        no_leak "a key import of a missing file"
        if [ "$can_sign" -eq 1 ]; then
            must_fail "$tag sign, no such key" tpmkey sign --token t --label nokey --userpin 1234 --in /tmp/msg
            no_leak "a sign with no such key"
        fi
    fi
    echo "TPMKEY-VM-STAT flow $2: $(secs $(($(now) - t0))) s"
}

flow rm /dev/tpmrm0
flow raw /dev/tpm0

# Kill -9 during key add (and sign) on /dev/tpm0, which has no resource manager:
# what a killed process loaded stays in the TPM; the next run must still work.
export TPMKEY_TCTI=device:/dev/tpm0 TPMKEY_STORE=/tmp/store-raw
# The kill delays follow how long one key add takes here (the faster of two runs).
span=1000
for run in 1 2; do
    t0=$(now)
    tpmkey key add --token t --label timing$run --userpin 1234 >/dev/null 2>&1
    t=$(($(now) - t0))
    [ "$t" -lt "$span" ] && span=$t
done
[ "$span" -ge 1 ] || span=1
sspan=$span
if [ "$can_sign" -eq 1 ]; then
    sspan=1000
    for run in 1 2; do
        t0=$(now)
        tpmkey sign --token t --label k --userpin 1234 --in /tmp/msg >/dev/null 2>&1
        t=$(($(now) - t0))
        [ "$t" -lt "$sspan" ] && sspan=$t
    done
    [ "$sspan" -ge 1 ] || sspan=1
fi
t0=$(now)
echo "--- kill loop: one key add takes $(secs $span) s, one sign $(secs $sspan) s"
rounds=20
killed=0
ok=0
finished=0
left=0
i=1
while [ "$i" -le "$rounds" ]; do
    # Delays spread from 30% to 110% of one key add (most of the start is exec and
    # reading the store), in microseconds.
    delay=$((span * 10000 * (30 + (i - 1) * 80 / (rounds - 1)) / 100))
    what="key add"
    if [ "$can_sign" -eq 1 ] && [ $((i % 2)) -eq 0 ]; then
        what=sign
        delay=$((sspan * 10000 * (30 + (i - 1) * 80 / (rounds - 1)) / 100))
        tpmkey sign --token t --label k --userpin 1234 --in /tmp/msg >/dev/null 2>&1 &
    else
        tpmkey key add --token t --label victim$i --userpin 1234 >/dev/null 2>&1 &
    fi
    pid=$!
    usleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    st=$?
    if [ "$st" -eq 137 ]; then
        killed=$((killed + 1))
        # What the dead process left in the TPM (the next run must cope with it).
        o=$(objects)
        s=$(sessions)
        left=$((left + o + s))
        if [ "$what" = sign ]; then
            tpmkey sign --token t --label k --userpin 1234 --in /tmp/msg >/tmp/out 2>&1
        else
            tpmkey key add --token t --label after$i --userpin 1234 >/tmp/out 2>&1
        fi
        rc=$?
        if [ "$rc" -eq 0 ]; then
            ok=$((ok + 1))
            echo "    round $i: $what killed after $((delay / 1000)) ms; TPM then held $o objects, $s sessions; next $what ok"
        else
            echo "    round $i: $what killed after $((delay / 1000)) ms; TPM then held $o objects, $s sessions; next $what FAILED, exit $rc:"
            sed 's/^/      /' /tmp/out
        fi
    else
        finished=$((finished + 1))
        echo "    round $i: $what finished (exit $st) before the kill at $((delay / 1000)) ms"
    fi
    i=$((i + 1))
done
echo "    TPM holds after the kill loop: $(objects) transient objects, $(sessions) sessions (left by killed processes; reclaimed when the TPM runs out)"
echo "TPMKEY-VM-STAT kill loop /dev/tpm0: killed $killed, following runs ok $ok/$killed ($finished of $rounds finished before the kill; killed processes left $left handles in all) in $(secs $(($(now) - t0))) s"
[ "$killed" -gt 0 ] && [ "$ok" -eq "$killed" ] || fail "kill loop: killed $killed, following runs ok $ok/$killed"
[ "$killed" -ge 5 ] || fail "kill loop: only $killed of $rounds runs were killed mid-way"
step "every key still listed" tpmkey key list
step "store still usable after the kill loop" tpmkey key add --token t --label last --userpin 1234
# The dead processes' leftovers stay until the TPM runs out of slots; tpmkey's own
# runs leave nothing, so the TPM never holds more than a killed process left.
o=$(objects)
s=$(sessions)
echo "    TPM holds at the end: $o transient objects, $s sessions"
[ "$o" -le 3 ] && [ "$s" -le 3 ] || fail "kill loop: $o transient objects and $s sessions left in the TPM"

# Concurrency through the kernel's resource manager: several processes at once.
export TPMKEY_TCTI=device:/dev/tpmrm0 TPMKEY_STORE=/tmp/store-rm
procs=4
t0=$(now)
if [ "$can_sign" -eq 1 ]; then
    per=10
    what="signatures"
else
    guarded sign
    per=2
    what="key adds (sign stand-in)"
fi
p=1
while [ "$p" -le "$procs" ]; do
    (
        n=0
        j=1
        while [ "$j" -le "$per" ]; do
            if [ "$can_sign" -eq 1 ]; then
                tpmkey sign --token t --label k --userpin 1234 --in /tmp/msg >/tmp/conc-$p-$j 2>&1 && n=$((n + 1))
            else
                tpmkey key add --token t --label c$p-$j --userpin 1234 >/tmp/conc-$p-$j 2>&1 && n=$((n + 1))
            fi
            j=$((j + 1))
        done
        echo "$n" >/tmp/conc-$p
    ) &
    p=$((p + 1))
done
wait
total=0
p=1
while [ "$p" -le "$procs" ]; do
    total=$((total + $(cat /tmp/conc-$p)))
    p=$((p + 1))
done
want=$((procs * per))
echo "TPMKEY-VM-STAT concurrency /dev/tpmrm0: $procs processes x $per $what: ok $total/$want in $(secs $(($(now) - t0))) s"
if [ "$total" -ne "$want" ]; then
    fail "concurrency: $total/$want"
    for f in /tmp/conc-*-*; do
        grep -q . "$f" && { echo "    $f:"; sed 's/^/      /' "$f"; }
    done
fi
[ "$what" = "key adds (sign stand-in)" ] && step "concurrent keys all listed" sh -c "[ \$(tpmkey key list --token t | grep -c '	c[0-9]-') -eq $want ]"

# The PKCS#11 module, when scripts/vm-test.sh was given one (TPMKEY_MUSL_SO): a
# musl program loads it and signs through /dev/tpm0 and /dev/tpmrm0.
if [ -e /libtpmkey.so ]; then
    export TPMKEY_TCTI=device:/dev/tpm0 TPMKEY_STORE=/tmp/store-raw
    mark
    TPMKEY_PKCS11_STATS=1 step "p11 sign on /dev/tpm0" musl-p11-load /libtpmkey.so 1234
    # An ssh-like use: login, one signature, C_Finalize. Without a resource manager:
    # StartAuthSession, Unseal (persistent seal), Load, Sign, and two FlushContexts.
    sent=$(sed -n 's/^libtpmkey: \([0-9]*\) TPM commands sent$/\1/p' /tmp/out)
    echo "TPMKEY-VM-STAT p11 login + signature on /dev/tpm0: ${sent:-?} TPM commands"
    [ "$sent" = 6 ] || fail "p11 on /dev/tpm0 sent ${sent:-?} TPM commands, 6 expected"
    no_leak "a PKCS#11 login and signature"
    must_fail "p11 login on /dev/tpm0, wrong PIN" musl-p11-load /libtpmkey.so 9999
    no_leak "a PKCS#11 login with a wrong PIN"
    t0=$(now)
    killed=0
    ok=0
    i=1
    while [ "$i" -le 10 ]; do
        musl-p11-load /libtpmkey.so 1234 >/dev/null 2>&1 &
        pid=$!
        usleep $((span * 10000 * (20 + i * 10) / 100))
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        if [ $? -eq 137 ]; then
            killed=$((killed + 1))
            musl-p11-load /libtpmkey.so 1234 >/tmp/out 2>&1 && ok=$((ok + 1)) || sed 's/^/      /' /tmp/out
        fi
        i=$((i + 1))
    done
    echo "TPMKEY-VM-STAT p11 kill loop /dev/tpm0: killed $killed, following runs ok $ok/$killed in $(secs $(($(now) - t0))) s"
    [ "$ok" -eq "$killed" ] || fail "p11 kill loop: killed $killed, following runs ok $ok/$killed"
    share_raw_tpm
    export TPMKEY_TCTI=device:/dev/tpmrm0 TPMKEY_STORE=/tmp/store-rm
    TPMKEY_PKCS11_STATS=1 step "p11 sign on /dev/tpmrm0" musl-p11-load /libtpmkey.so 1234
    # Through the kernel resource manager nothing needs flushing before close.
    sent=$(sed -n 's/^libtpmkey: \([0-9]*\) TPM commands sent$/\1/p' /tmp/out)
    echo "TPMKEY-VM-STAT p11 login + signature on /dev/tpmrm0: ${sent:-?} TPM commands"
    [ "$sent" = 4 ] || fail "p11 on /dev/tpmrm0 sent ${sent:-?} TPM commands, 4 expected"
    t0=$(now)
    p=1
    while [ "$p" -le "$procs" ]; do
        (
            n=0
            j=1
            while [ "$j" -le 10 ]; do
                musl-p11-load /libtpmkey.so 1234 >/tmp/p11-$p-$j 2>&1 && n=$((n + 1))
                j=$((j + 1))
            done
            echo "$n" >/tmp/p11-$p
        ) &
        p=$((p + 1))
    done
    wait
    total=$(cat /tmp/p11-[0-9] | awk '{ t += $1 } END { print t }')
    echo "TPMKEY-VM-STAT p11 concurrency /dev/tpmrm0: $procs processes x 10 module loads + logins + signatures: ok $total/$((procs * 10)) in $(secs $(($(now) - t0))) s"
    [ "$total" -eq $((procs * 10)) ] || fail "p11 concurrency: $total/$((procs * 10))"
fi

# The example initramfs-tools hook (dist/initramfs-tools/hooks/tpmkey) put tpmkey
# and the keyscript into this initramfs (scripts/vm-test.sh ran it). Enrol a disk
# key as the README says (sealed to PCR 7, and 23 here so that the test can change
# a PCR), then get it back the way cryptsetup runs a keyscript at boot; after a PCR
# change the keyscript must refuse (no askpass to fall back to in this initramfs).
if has seal; then
    export TPMKEY_TCTI=device:/dev/tpmrm0 TPMKEY_STORE=/tmp/store-rm
    mkdir -p /etc/tpmkey
    head -c 32 /dev/urandom >/tmp/disk-key
    step "initramfs: seal the disk key" tpmkey seal --pcrs sha256:7,23 --in /tmp/disk-key --out /etc/tpmkey/initramfs.sealed
    if step "initramfs: keyscript" sh -c '/usr/lib/tpmkey/tpmkey-keyscript >/tmp/unsealed-key'; then
        cmp -s /tmp/disk-key /tmp/unsealed-key || fail "initramfs: the keyscript printed another key"
    fi
    step "initramfs: pcr extend 23" tpmkey pcr extend 23 --data boot-chain-changed
    must_fail "initramfs: keyscript after a PCR change" /usr/lib/tpmkey/tpmkey-keyscript
    grep -q 'PCR sha256:23 changed' /tmp/out && grep -q 'did not unseal' /tmp/out ||
        fail "initramfs: the keyscript did not say why it failed (PCR 23)"
else
    guarded seal
fi

echo "TPMKEY-VM-STAT total in guest: $(secs $(now)) s since boot"
echo "TPMKEY-VM-RESULT rc=$failures"
sync
poweroff -f
