#!/usr/bin/env bash
# Makes a self-signed TLS certificate for running traild over HTTPS on this machine:
#   DIR/cert.pem  CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1; valid 825 days
#   DIR/key.pem   its P-256 private key, unencrypted, mode 0600
# Idempotent: a pair that is present, matching and valid for at least another day is left
# alone; otherwise both are made anew (written beside, then moved into place).
#
# Usage: scripts/make-dev-cert.sh DIR
#   traild --tls-cert DIR/cert.pem --tls-key DIR/key.pem ...
#   curl --cacert DIR/cert.pem https://localhost:PORT/healthz
# For development and tests only: production needs a certificate from a real CA.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
cert="$dir/cert.pem"
key="$dir/key.pem"
if ! command -v openssl >/dev/null 2>&1; then
  echo "make-dev-cert: openssl not found (Debian: apt-get install openssl)" >&2
  exit 1
fi
mkdir -p "$dir"

if [ -f "$cert" ] && [ -f "$key" ] &&
  openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null 2>&1 &&
  [ "$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)" = \
    "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]; then
  chmod 600 "$key"
  echo "make-dev-cert: $cert is present and valid; left as it is"
  exit 0
fi

umask 077
tmp=$(mktemp -d "$dir/.make-dev-cert.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# An explicit config, so the distribution's openssl.cnf defaults (CA:TRUE) do not apply.
cat >"$tmp/req.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = leaf
prompt = no
[dn]
CN = localhost
[leaf]
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
EOF
openssl req -x509 -config "$tmp/req.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -nodes -sha256 -days 825 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/log" || {
  cat "$tmp/log" >&2
  echo "make-dev-cert: openssl req failed" >&2
  exit 1
}
chmod 600 "$tmp/key.pem"
chmod 644 "$tmp/cert.pem"
mv -f "$tmp/key.pem" "$key"
mv -f "$tmp/cert.pem" "$cert"
echo "make-dev-cert: wrote $cert and $key (self-signed, 825 days)"
