#!/usr/bin/env bash
# Installs the Debian packages Trail builds and runs with, and only those that are missing.
# Idempotent: a machine that has everything is left alone (no apt-get update, no root needed).
set -euo pipefail

packages=(
  cmake make g++ pkg-config
  libboost1.81-dev libboost-json1.81-dev   # Asio/Beast (server), Boost.JSON (codecs)
  liblmdb-dev lmdb-utils                   # storage engine (mdb_dump for the independent verifier test)
  libsodium-dev                            # AEAD, key wrapping, Ed25519, Argon2id
  capnproto libcapnp-dev                   # event envelope schema and codec
  libspdlog-dev libfmt-dev                 # structured logging
  libssl-dev                               # SHA-256 (SHA-NI) and TLS
  openssl                                  # scripts/make-dev-cert.sh (self-signed TLS for local use)
  libcli11-dev                             # trailctl argument parsing
  libgtest-dev libgmock-dev                # tests
  libbenchmark-dev                         # micro-benchmarks
  libpugixml-dev                           # XForm / CaseXML submissions (projections/intake)
  libzxcvbn-dev                            # password strength estimate (zxcvbn)
  libjemalloc-dev                          # traild's malloc (threads hand buffers to each other)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
