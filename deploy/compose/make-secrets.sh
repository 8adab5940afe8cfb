#!/bin/sh
# Creates the files deploy/compose/compose.yaml reads as secrets, under deploy/compose/secrets/
# (git-ignored). Keeps every file that already exists, so running it again changes nothing.
# Needs cardiogate installed (the PKI and the keys are made by its own commands):
#   deploy/compose/make-secrets.sh [--host gateways.example.org ...]
# --host names the ingest's certificate is valid for, besides localhost and ingest (repeatable).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/secrets"
cardiogate=${CARDIOGATE:-cardiogate}
python=${PYTHON:-python3}
umask 077
mkdir -p "$out/pki"
chmod 700 "$out" "$out/pki"

random() {  # a URL-safe random password, no newline
    [ -s "$out/$1" ] || "$python" -c 'import secrets; print(secrets.token_urlsafe(32), end="")' > "$out/$1"
}
random postgres_password
random redis_password
random grafana_admin_password
[ -s "$out/database_url" ] || printf 'postgresql+psycopg://cardiogate:%s@postgres:5432/cardiogate' \
    "$(cat "$out/postgres_password")" > "$out/database_url"
[ -s "$out/redis_url" ] || printf 'redis://:%s@redis:6379/0' "$(cat "$out/redis_password")" > "$out/redis_url"

# CA, CA key and the ingest's server certificate (init-pki keeps files that exist).
hosts="--host localhost --host 127.0.0.1 --host ingest"
while [ $# -gt 0 ]; do
    case $1 in
        --host) hosts="$hosts --host $2"; shift 2 ;;
        *) echo "usage: $0 [--host NAME ...]" >&2; exit 2 ;;
    esac
done
# A throwaway database path: init-pki and keygen only write files here.
export CARDIOGATE_CLOUD__DATABASE="$out/.admin.sqlite3"
CARDIOGATE_CLOUD__PKI__CA_CERT="$out/pki/ca.crt" CARDIOGATE_CLOUD__PKI__CA_KEY="$out/pki/ca.key" \
CARDIOGATE_CLOUD__PKI__SERVER_CERT="$out/pki/server.crt" CARDIOGATE_CLOUD__PKI__SERVER_KEY="$out/pki/server.key" \
    $cardiogate cloud admin init-pki $hosts
# Ed25519 keys: the model signing key (public half in model-signing.key.pub, for gateways) and the
# API's token issuer key (one key, so tokens stay valid across API restarts).
[ -s "$out/model-signing.key" ] || $cardiogate models keygen "$out/model-signing.key" > /dev/null
[ -s "$out/api-issuer.key" ] || "$python" - "$out/api-issuer.key" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption())
with open(sys.argv[1], "wb") as fh:
    fh.write(pem)
PY
rm -f "$out/.admin.sqlite3"
# The containers run as other users than you; the folder (0700) keeps other local users out, the
# files must be readable to the bind mounts Compose makes of them.
find "$out" -type f -exec chmod 0644 {} +
echo "secrets in $out; the CA certificate for gateways: $out/pki/ca.crt"
