#!/usr/bin/env bash
# Creates what deploy/compose.yaml mounts: a demo PKI for BE-DU and NL-DU (gateway pki demo),
# a directory republished with the compose network's endpoints, one configuration folder per
# authority holding only its own keys, a database password, and .env with the user the
# containers run as. Usage, from the repository root after `make demo` (or any install):
#
#   GATEWAY=.venv/bin/gateway deploy/compose-setup.sh [FOLDER]    # FOLDER: default deploy/
#
# Demonstration material only: real keys come from the network operator (docs/operator.md).
set -euo pipefail

gateway=${GATEWAY:-gateway}
python=${PYTHON:-python3}
here=$(cd "${1:-$(dirname "$0")}" && pwd)
demo=$here/demo
if [ -e "$demo" ]; then
  echo "$demo exists: delete it (and the compose volumes: docker compose down -v) first" >&2
  exit 1
fi
umask 077
mkdir -p "$demo"
"$gateway" pki demo --out "$demo/pki" --authorities BE-DU,NL-DU

# The demo certificates name each authority <code>.dublin.test: the compose network's aliases.
"$python" - "$demo/pki/directory.json" <<'PY'
import json
import sys

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    directory = json.load(f)
for authority in directory["authorities"]:
    authority["endpoint"] = f"https://{authority['code'].lower()}.dublin.test:8443"
directory["version"] += 1
with open(path, "w", encoding="utf-8") as f:
    json.dump(directory, f, indent=2)
PY
"$gateway" pki directory publish --source "$demo/pki/directory.json" \
  --cert "$demo/pki/operator/directory-publisher.pem" \
  --key "$demo/pki/operator/directory-publisher.key" \
  --ca "$demo/pki/ca/ca.pem" --out "$demo/pki/directory.xml"

token() { "$python" -c 'import secrets; print(secrets.token_urlsafe(24))'; }
password=$(token)
printf '%s\n' "$password" > "$demo/db-password"
# PostgreSQL's entrypoint runs as the image's postgres user and must read it; the folder
# around it stays 0700.
chmod 0644 "$demo/db-password"
printf 'postgres:5432:be_du:gateway:%s\n' "$password" > "$demo/pgpass"

for code in BE-DU NL-DU; do
  etc=$demo/etc/$code
  mkdir -p "$etc/tls" "$etc/signing"
  cp "$demo/pki/ca/ca.pem" "$demo/pki/ca/crl.pem" "$demo/pki/directory.xml" "$etc/"
  cp "$demo/pki/$code/tls.pem" "$demo/pki/$code/tls.key" "$etc/tls/"
  cp "$demo/pki/$code/signing.pem" "$demo/pki/$code/signing.key" "$etc/signing/"
  if [ "$code" = BE-DU ]; then
    # Both BE-DU nodes share this file and the database (README: several nodes).
    database_url='postgresql+asyncpg://gateway@postgres:5432/be_du'
  else
    database_url=''  # SQLite in data_dir
  fi
  cat > "$etc/gateway.toml" <<TOML
authority = "$code"
data_dir = "/var/lib/dublin-gateway"
database_url = "$database_url"
directory = "directory.xml"

[peer]
host = "0.0.0.0"
port = 8443

[api]
host = "127.0.0.1"
port = 8080

[api.tokens]
"case-officer" = "$(token)"
"health-practitioner" = "$(token)"
administrator = "$(token)"
auditor = "$(token)"

[tls]
ca = "ca.pem"
crl = "crl.pem"
cert = "tls/tls.pem"
key = "tls/tls.key"

[signing]
cert = "signing/signing.pem"
key = "signing/signing.key"
TOML
done
mkdir -p "$demo/data/NL-DU"

# The containers run as the user who owns these files (keys are 0600). As root, hand them to
# the image's own user instead of running the containers as root.
uid=$(id -u) gid=$(id -g)
if [ "$uid" = 0 ]; then
  uid=10001 gid=10001
  chown -R "$uid:$gid" "$demo/etc" "$demo/data" "$demo/pgpass"
fi
printf 'GATEWAY_UID=%s\nGATEWAY_GID=%s\n' "$uid" "$gid" > "$here/.env"
echo "demo material in $demo; containers run as $uid:$gid (.env). Next:"
echo "  docker compose -f $here/compose.yaml up --build -d"
