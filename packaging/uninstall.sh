#!/bin/sh
# Removes what install.sh installed: stops and disables the service, deletes the binary, unit,
# sysusers entry and the user it created; the config too with PURGE=1 (or --purge).
# Honours the same DESTDIR / PREFIX as install.sh; idempotent (a second run finds nothing).
set -eu

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
PURGE=${PURGE:-0}
[ "${1:-}" = --purge ] && PURGE=1
MANIFEST_DIR=$PREFIX/share/netmon-agent
MANIFEST=$DESTDIR$MANIFEST_DIR/installed

say() { echo "uninstall.sh: $*"; }

if [ ! -f "$MANIFEST" ]; then
    say "nothing installed under ${DESTDIR:-/}$PREFIX (no $MANIFEST_DIR/installed)"
    if [ "$PURGE" = 1 ] && [ -e "$DESTDIR$SYSCONFDIR/netmon-agent.conf" ]; then
        rm -f "$DESTDIR$SYSCONFDIR/netmon-agent.conf"
        # A staging root: its now empty config directory goes too.
        [ -n "$DESTDIR" ] && { rmdir "$DESTDIR$SYSCONFDIR" 2>/dev/null || true; }
        say "removed $SYSCONFDIR/netmon-agent.conf"
    fi
    exit 0
fi
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    echo "uninstall.sh: run as root" >&2
    exit 1
fi

# 1. Stop and disable.
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now netmon-agent.service 2>/dev/null || true
    else
        systemctl disable netmon-agent.service 2>/dev/null || true
    fi
fi

# 2. Files, then the user, then the directories we created (deepest first, only if empty).
dirs=""
while read -r kind path; do
    case "$kind" in
    file) rm -f "$DESTDIR$path" ;;
    config) [ "$PURGE" = 1 ] && rm -f "$DESTDIR$path" ;;
    user)
        if [ -z "$DESTDIR" ] && id -u "$path" >/dev/null 2>&1; then
            if command -v userdel >/dev/null; then userdel "$path"; else deluser "$path"; fi
            getent group "$path" >/dev/null 2>&1 && { groupdel "$path" 2>/dev/null || true; }
            say "removed user $path"
        fi
        ;;
    dir) dirs="$path
$dirs" ;;
    esac
done <"$MANIFEST"
if [ "$PURGE" = 1 ]; then
    rm -f "$DESTDIR$SYSCONFDIR/netmon-agent.conf"
    [ -z "$DESTDIR" ] && rm -rf /var/lib/netmon-agent
fi
rm -f "$MANIFEST"
echo "$dirs" | sort -r | while read -r d; do
    [ -n "$d" ] && rmdir "$DESTDIR$d" 2>/dev/null || true
done
[ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl daemon-reload
if [ -e "$DESTDIR$SYSCONFDIR/netmon-agent.conf" ]; then
    say "removed netmon-agent; kept $SYSCONFDIR/netmon-agent.conf (PURGE=1 removes it)"
else
    say "removed netmon-agent"
fi
