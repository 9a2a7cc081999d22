#!/bin/sh
# Installs netmon-agent on a systemd Linux: the system user, the binary, /etc/netmon-agent.conf
# (0600, owned by the service user, kept if present) and a hardened systemd unit; then enables
# and starts it. Idempotent: running it again updates the binary and unit and restarts.
#
#   BIN=path/to/netmon-agent [DESTDIR=/pkgroot] [PREFIX=/usr/local] packaging/install.sh
#
# DESTDIR set (packaging): files go under it; no user is created (a sysusers.d entry is
# installed instead), nothing is enabled or started. systemd not running: the unit is enabled
# offline (`systemctl enable` makes the links) and not started.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BINDIR=${BINDIR:-$PREFIX/bin}
SYSCONFDIR=${SYSCONFDIR:-/etc}
if [ -z "${UNITDIR:-}" ]; then
    case "$PREFIX" in
    /usr) UNITDIR=/usr/lib/systemd/system ;;
    *) UNITDIR=/etc/systemd/system ;;
    esac
fi
if [ -z "${SYSUSERSDIR:-}" ]; then
    case "$PREFIX" in
    /usr) SYSUSERSDIR=/usr/lib/sysusers.d ;;
    *) SYSUSERSDIR=/etc/sysusers.d ;;
    esac
fi
USER_NAME=${NETMON_USER:-netmon}
BIN=${BIN:-$HERE/../target/release/netmon-agent}
# What we created, so that uninstall.sh removes exactly that.
MANIFEST_DIR=$PREFIX/share/netmon-agent
MANIFEST=$DESTDIR$MANIFEST_DIR/installed

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: build it first (make release) or set BIN="
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (or set DESTDIR= to stage the files)"
fi

# mkdir -p, recording each directory it had to create.
mkdirs() {
    _d=$1
    _missing=""
    while [ ! -d "$_d" ]; do
        _missing="$_d $_missing"
        _d=$(dirname "$_d")
    done
    for _d in $_missing; do
        mkdir -m 0755 "$_d"
        record "dir ${_d#"$DESTDIR"}"
    done
}

PENDING=""
record() {
    if [ ! -d "${MANIFEST%/*}" ]; then
        PENDING="$PENDING$1
"
        return
    fi
    grep -qxF "$1" "$MANIFEST" 2>/dev/null || echo "$1" >>"$MANIFEST"
}

mkdirs "$DESTDIR$MANIFEST_DIR"
touch "$MANIFEST"
printf '%s' "$PENDING" | while read -r line; do record "$line"; done
record "dir $MANIFEST_DIR"

# 1. The binary.
mkdirs "$DESTDIR$BINDIR"
install -m 0755 "$BIN" "$DESTDIR$BINDIR/netmon-agent.new"
mv -f "$DESTDIR$BINDIR/netmon-agent.new" "$DESTDIR$BINDIR/netmon-agent"
record "file $BINDIR/netmon-agent"

# 2. The user: a sysusers.d entry always; created now when installing live.
mkdirs "$DESTDIR$SYSUSERSDIR"
printf 'u %s - "netmon-agent" /nonexistent /usr/sbin/nologin\n' "$USER_NAME" >"$DESTDIR$SYSUSERSDIR/netmon-agent.conf"
chmod 0644 "$DESTDIR$SYSUSERSDIR/netmon-agent.conf"
record "file $SYSUSERSDIR/netmon-agent.conf"
if [ -z "$DESTDIR" ] && ! id -u "$USER_NAME" >/dev/null 2>&1; then
    if command -v useradd >/dev/null; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment netmon-agent "$USER_NAME"
    elif command -v adduser >/dev/null; then
        adduser -S -D -H -h /nonexistent -s /sbin/nologin "$USER_NAME"
    else
        die "cannot create user $USER_NAME: no useradd or adduser"
    fi
    record "user $USER_NAME"
    say "created system user $USER_NAME"
fi

# 3. The config: kept when present (only its mode is corrected), else the template.
CONF=$DESTDIR$SYSCONFDIR/netmon-agent.conf
mkdirs "$DESTDIR$SYSCONFDIR"
if [ -e "$CONF" ]; then
    say "keeping $SYSCONFDIR/netmon-agent.conf"
else
    (umask 077 && cp "$HERE/netmon-agent.conf" "$CONF")
    record "config $SYSCONFDIR/netmon-agent.conf"
fi
chmod 0600 "$CONF"
# The agent runs as the user and rereads the file on reload.
[ -z "$DESTDIR" ] && chown "$USER_NAME:" "$CONF"

# 4. The unit.
mkdirs "$DESTDIR$UNITDIR"
sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" \
    "$HERE/netmon-agent.service.in" >"$DESTDIR$UNITDIR/netmon-agent.service"
chmod 0644 "$DESTDIR$UNITDIR/netmon-agent.service"
record "file $UNITDIR/netmon-agent.service"

# 5. Enable and start.
if [ -n "$DESTDIR" ]; then
    say "staged in $DESTDIR (not enabled, not started)"
elif [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable netmon-agent.service
    systemctl restart netmon-agent.service
    say "netmon-agent enabled and started: journalctl -u netmon-agent"
elif command -v systemctl >/dev/null; then
    systemctl enable netmon-agent.service 2>/dev/null || true
    say "systemd is not running: enabled for the next boot, not started"
else
    say "no systemd here: start $BINDIR/netmon-agent run --config $SYSCONFDIR/netmon-agent.conf yourself"
fi
