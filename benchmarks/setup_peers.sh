#!/bin/sh
# Install the peers the ingest benchmark compares against (MailDev 2.2.1 from npm, aiosmtpd 1.4.6
# with its Sink handler from PyPI) into $PEERS_DIR, and Postfix's smtp-source / smtp-sink.
set -e
PEERS_DIR=${PEERS_DIR:-$HOME/.cache/postroom-peers}
mkdir -p "$PEERS_DIR"
command -v smtp-source >/dev/null || {
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix
}
cd "$PEERS_DIR"
[ -x venv/bin/python ] || python3 -m venv venv
venv/bin/python -c "import aiosmtpd" 2>/dev/null || venv/bin/pip install -q aiosmtpd==1.4.6
[ -x node_modules/.bin/maildev ] || { [ -f package.json ] || npm init -y >/dev/null; npm install -q maildev@2.2.1; }
echo "peers ready in $PEERS_DIR"
