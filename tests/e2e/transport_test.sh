#!/usr/bin/env bash
# Transports: server reflection and health on the Unix socket; TCP in
# plaintext on loopback; a non-loopback address refused without TLS; TLS;
# and TLS with mandatory client certificates. Certificates are made with
# openssl for the test.
set -uo pipefail
HVMMD=$(readlink -f server/hvmmd)
gen=$(readlink -f client/python/gen/hvmm/v1/hvmm_pb2.py); gen=${gen%/hvmm/v1/hvmm_pb2.py}
check="/usr/bin/python3 $(readlink -f tests/e2e/transport_check.py)"
export PYTHONPATH="$gen"
dir=$(mktemp -d /tmp/hvmm-tls-XXXXXX)
daemon_pid=""
failures=0
trap '[ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# start ARGS...: starts hvmmd; sets daemon_pid and addr (as it logged it).
start() {
  "$HVMMD" --metrics-addr=127.0.0.1:0 --pcpus=1 --frames=256 "$@" >"$dir/log" 2>&1 &
  daemon_pid=$!
  addr=""
  for _ in $(seq 1 600); do
    addr=$(sed -n 's/.*serving hvmm.v1 on \(.*\)$/\1/p' "$dir/log")
    [ -n "$addr" ] && return 0
    kill -0 "$daemon_pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
stop() {
  kill -TERM "$daemon_pid"; wait "$daemon_pid"; local rc=$?; daemon_pid=""
  [ "$rc" -eq 0 ] || fail "hvmmd exited $rc: $(tail -3 "$dir/log")"
}

# Unix socket: health and reflection.
start --listen="unix:$dir/u/hvmm.sock" || fail "unix start: $(cat "$dir/log")"
$check --addr "$addr" --reflection || fail "unix socket checks"
stop

# TCP plaintext on loopback, port picked by the kernel.
start --listen=tcp:127.0.0.1:0 || fail "tcp start: $(cat "$dir/log")"
case "$addr" in 127.0.0.1:0|"") fail "no bound port logged: $addr" ;; esac
$check --addr "$addr" --reflection || fail "tcp loopback checks"
stop

# Off loopback, plaintext is refused at start-up.
"$HVMMD" --metrics-addr=127.0.0.1:0 --listen=tcp:0.0.0.0:0 --pcpus=1 --frames=256 >"$dir/refused" 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "plaintext off loopback exited $rc, want 2"
grep -q "needs TLS" "$dir/refused" || fail "refusal says: $(cat "$dir/refused")"

# TLS: a self-signed certificate for 127.0.0.1 (also the client CA below).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$dir/key.pem" \
  -out "$dir/cert.pem" >/dev/null 2>&1 || fail "openssl"
start --listen=tcp:0.0.0.0:0 --tls-cert="$dir/cert.pem" \
  --tls-key="$dir/key.pem" --read-only-listen=none ||
  fail "tls start: $(cat "$dir/log")"
port=${addr##*:}
$check --addr "127.0.0.1:$port" --ca "$dir/cert.pem" || fail "tls health"
$check --addr "127.0.0.1:$port" --expect-refused || fail "plaintext to a TLS port"
stop

# Mutual TLS: without a client certificate the handshake fails.
start --listen=tcp:0.0.0.0:0 --tls-cert="$dir/cert.pem" \
  --tls-key="$dir/key.pem" --tls-client-ca="$dir/cert.pem" \
  --read-only-listen=none || fail "mtls start: $(cat "$dir/log")"
port=${addr##*:}
$check --addr "127.0.0.1:$port" --ca "$dir/cert.pem" --expect-refused ||
  fail "mtls without a client certificate"
$check --addr "127.0.0.1:$port" --ca "$dir/cert.pem" \
  --client-cert "$dir/cert.pem" --client-key "$dir/key.pem" ||
  fail "mtls with a client certificate"
stop

[ "$failures" -eq 0 ] || { echo "transport_test: $failures failure(s)"; exit 1; }
echo "transport_test: ok"
