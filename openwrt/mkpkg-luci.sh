#!/usr/bin/env bash
# Builds luci-app-netmon-agent (architecture "all") without the SDK, the way the SDK would:
#
#   openwrt/mkpkg-luci.sh ipk OUTDIR  -> OUTDIR/luci-app-netmon-agent_<ver>-r<rel>_all.ipk
#   openwrt/mkpkg-luci.sh apk OUTDIR  -> OUTDIR/luci-app-netmon-agent-<ver>-r<rel>.apk (apk-tools 3;
#                                         APK=path overrides `apk`)
#
# The installed tree is luci.mk's: htdocs/ -> /www, root/ -> /. The maintainer scripts are the
# SDK's default ones plus luci.mk's cache clearing and rpcd reload (the new ACL takes effect), and
# the same after a removal. Reproducible: fixed owners, sorted names, SOURCE_DATE_EPOCH mtimes.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=luci-app-netmon-agent
SRC=$PWD/openwrt/$PKG
VERSION=$(sed -n 's/^PKG_VERSION:=//p' "$SRC/Makefile")
RELEASE=$(sed -n 's/^PKG_RELEASE:=//p' "$SRC/Makefile")
FULLVER="$VERSION-r$RELEASE"
DEPENDS="libc, luci-base, netmon-agent"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

kind=${1:?ipk or apk}
OUT=${2:?output directory}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

stage() {
    local d=$1
    install -d -m 0755 "$d/www" "$d/usr/share/luci/menu.d" "$d/usr/share/rpcd/acl.d"
    cp -R "$SRC/htdocs/." "$d/www/"
    cp -R "$SRC/root/." "$d/"
    find "$d" -type d -exec chmod 0755 {} +
    find "$d" -type f -exec chmod 0644 {} +
}

det_tar_gz() {
    local out=$1 dir=$2
    shift 2
    tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
        --mtime="@$SOURCE_DATE_EPOCH" -C "$dir" -cf - "$@" | gzip -9n >"$out"
}

# $1: "ipk" or "apk" (the apk scripts export root/pkgname as the SDK's apk scripts do).
postinst() {
    echo '#!/bin/sh'
    echo '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0'
    echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
    echo '. ${IPKG_INSTROOT}/lib/functions.sh'
    if [ "$1" = apk ]; then
        echo 'export root="${IPKG_INSTROOT}"'
        echo "export pkgname=\"$PKG\""
        echo 'default_postinst'
    else
        echo 'default_postinst $0 $@'
    fi
    cache_reload
}

cache_reload() {
    printf '%s\n' '[ -n "${IPKG_INSTROOT}" ] || {' \
        '	rm -f /tmp/luci-indexcache.*' '	rm -rf /tmp/luci-modulecache/' \
        '	killall -HUP rpcd 2>/dev/null' '	exit 0' '}'
}

prerm() {
    echo '#!/bin/sh'
    echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
    echo '. ${IPKG_INSTROOT}/lib/functions.sh'
    if [ "$1" = apk ]; then
        echo 'export root="${IPKG_INSTROOT}"'
        echo "export pkgname=\"$PKG\""
        echo 'default_prerm'
    else
        echo 'default_prerm $0 $@'
    fi
}

postrm() {
    echo '#!/bin/sh'
    cache_reload
}

DESCRIPTION="Status and settings pages for netmon-agent: the agent's state, a live per-device rate chart and the device table, and its UCI configuration."

ipk() {
    local data=$WORK/data ctrl=$WORK/control pkgdir=$WORK/pkg size
    mkdir -p "$data" "$ctrl" "$pkgdir"
    stage "$data"
    size=$(find "$data" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
    cat >"$ctrl/control" <<CTRL
Package: $PKG
Version: $FULLVER
Depends: $DEPENDS
Source: feeds/netmon/$PKG
SourceName: $PKG
License: MIT
Section: luci
Architecture: all
Installed-Size: $size
Description:  $DESCRIPTION
CTRL
    postinst ipk >"$ctrl/postinst"
    prerm ipk >"$ctrl/prerm"
    postrm >"$ctrl/postrm"
    chmod 0755 "$ctrl/postinst" "$ctrl/prerm" "$ctrl/postrm"
    chmod 0644 "$ctrl/control"
    echo "2.0" >"$pkgdir/debian-binary"
    det_tar_gz "$pkgdir/data.tar.gz" "$data" .
    det_tar_gz "$pkgdir/control.tar.gz" "$ctrl" .
    local ipk="$OUT/${PKG}_${FULLVER}_all.ipk"
    det_tar_gz "$ipk" "$pkgdir" ./debian-binary ./data.tar.gz ./control.tar.gz
    echo "$ipk ($(stat -c %s "$ipk") bytes, Installed-Size $size)"
}

apk_pkg() {
    local apk=${APK:-apk} data=$WORK/data meta out
    "$apk" --version 2>/dev/null | grep -q 'apk-tools 3' || {
        echo "mkpkg-luci.sh: apk-tools v3 ('apk mkpkg') is not installed: cannot build the .apk here" >&2
        exit 1
    }
    stage "$data"
    meta="$data/lib/apk/packages"
    install -d -m 0755 "$meta"
    (cd "$data" && find . -type f -o -type l | sed 's|^\.||' | grep -v '^/lib/apk/packages/' | sort) >"$meta/$PKG.list"
    echo "/lib/apk/packages/$PKG.list" >>"$meta/$PKG.list"
    find "$meta" -type f -exec chmod 0644 {} +
    postinst apk >"$WORK/post-install"
    prerm apk >"$WORK/pre-deinstall"
    postrm >"$WORK/post-deinstall"
    out="$OUT/$PKG-$FULLVER.apk"
    "$apk" mkpkg \
        --info "name:$PKG" --info "version:$FULLVER" --info "arch:noarch" \
        --info "license:MIT" --info "origin:$PKG" \
        --info "depends:libc luci-base netmon-agent" \
        --info "description:$DESCRIPTION" \
        --script "post-install:$WORK/post-install" --script "pre-deinstall:$WORK/pre-deinstall" \
        --script "post-deinstall:$WORK/post-deinstall" \
        --files "$data" --output "$out"
    echo "$out ($(stat -c %s "$out") bytes)"
}

case "$kind" in
    ipk) ipk ;;
    apk) apk_pkg ;;
    *) echo "mkpkg-luci.sh: first argument is ipk or apk" >&2; exit 2 ;;
esac
