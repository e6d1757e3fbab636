#!/bin/sh
# Install the real components the tests drive (Debian packages), when missing and root.
# Without root, the tests that need a missing component skip with a reason (never in CI).
need=""
command -v smtp-source >/dev/null 2>&1 || need="$need postfix"
command -v swaks       >/dev/null 2>&1 || need="$need swaks"
# swaks speaks TLS through Net::SSLeay, only a "recommends" of its package
perl -MNet::SSLeay -e1 >/dev/null 2>&1 || need="$need libnet-ssleay-perl"
command -v dovecot     >/dev/null 2>&1 || need="$need dovecot-imapd dovecot-pop3d"
command -v mbsync      >/dev/null 2>&1 || need="$need isync"
command -v fetchmail   >/dev/null 2>&1 || need="$need fetchmail"
command -v chromium    >/dev/null 2>&1 || need="$need chromium"
command -v node        >/dev/null 2>&1 || need="$need nodejs npm"
# Debian 12 ships the spamd daemon in a package of its own (spamassassin has the rules)
command -v spamd       >/dev/null 2>&1 || need="$need spamassassin spamc$(apt-cache show spamd >/dev/null 2>&1 && echo ' spamd')"
# PHP: its mail() drives `postroom sendmail` through sendmail_path
command -v php         >/dev/null 2>&1 || need="$need php-cli"
# PostgreSQL: the second store backend (contract suite, `make pytest-postgres`)
command -v pg_ctlcluster >/dev/null 2>&1 || need="$need postgresql"
# imaptest (Dovecot's IMAP compliance tester) is built from source against Dovecot's headers
[ -f /usr/include/dovecot/imap-parser.h ] || need="$need dovecot-dev"
command -v autoreconf  >/dev/null 2>&1 || need="$need autoconf"
command -v automake    >/dev/null 2>&1 || need="$need automake"
command -v libtoolize  >/dev/null 2>&1 || need="$need libtool"
command -v make        >/dev/null 2>&1 || need="$need make"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing$need (not root or no apt-get): tests needing them will skip"
  exit 0
fi
echo "system-deps: installing$need"
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $need >/dev/null || {
  echo "system-deps: apt-get install failed"; exit 1; }
