#!/usr/bin/env bash
# Builds OpenWrt packages of the static binary without the SDK.
#
#   openwrt/mkpkg.sh ipk ARCH BINARY OUTDIR   -> OUTDIR/netmon-agent_<ver>-r<rel>_<ARCH>.ipk
#   openwrt/mkpkg.sh apk ARCH BINARY OUTDIR   -> OUTDIR/netmon-agent-<ver>-r<rel>.apk (apk-tools 3)
#
# The .ipk is what opkg reads: a gzip'd tar of ./debian-binary, ./data.tar.gz, ./control.tar.gz;
# the control fields, conffiles, postinst and prerm are those the SDK writes (default_postinst
# creates Require-User's user and group, enables and starts the service; default_prerm stops
# and disables it). Reproducible: fixed owners, sorted names, mtimes from SOURCE_DATE_EPOCH.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG=netmon-agent
FILES=$ROOT/openwrt/$PKG/files
VERSION=$(sed -n 's/^PKG_VERSION:=//p' "openwrt/$PKG/Makefile")
RELEASE=$(sed -n 's/^PKG_RELEASE:=//p' "openwrt/$PKG/Makefile")
CARGO_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ "$VERSION" = "$CARGO_VERSION" ] || { echo "mkpkg.sh: PKG_VERSION $VERSION in openwrt/$PKG/Makefile differs from Cargo.toml's $CARGO_VERSION" >&2; exit 1; }
FULLVER="$VERSION-r$RELEASE"
RUSER="netmon:netmon"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

kind=${1:?ipk or apk}
ARCH=${2:?OpenWrt arch, e.g. mipsel_24kc}
BIN=${3:?binary}
OUT=${4:?output directory}
[ -x "$BIN" ] || { echo "mkpkg.sh: $BIN is not an executable" >&2; exit 1; }
# MKPKG_ANY_BINARY=1 (the packaging tests) accepts the host's dynamic build.
if [ "${MKPKG_ANY_BINARY:-0}" != 1 ]; then
    case "$(file -b "$BIN")" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) echo "mkpkg.sh: $BIN is not statically linked" >&2; exit 1 ;;
    esac
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The installed tree, with the modes the package must have.
stage() {
    local d=$1
    install -d -m 0755 "$d/usr/bin" "$d/etc/init.d" "$d/etc/config" "$d/etc/capabilities"
    install -m 0755 "$BIN" "$d/usr/bin/$PKG"
    install -m 0755 "$FILES/$PKG.init" "$d/etc/init.d/$PKG"
    install -m 0600 "$FILES/$PKG.config" "$d/etc/config/$PKG"
    install -m 0644 "$FILES/$PKG.json" "$d/etc/capabilities/$PKG.json"
}

# tar with fixed owners and order; $1 = output, $2 = directory, rest = members.
det_tar_gz() {
    local out=$1 dir=$2
    shift 2
    tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
        --mtime="@$SOURCE_DATE_EPOCH" -C "$dir" -cf - "$@" | gzip -9n >"$out"
}

ipk() {
    local data=$WORK/data ctrl=$WORK/control pkgdir=$WORK/pkg
    mkdir -p "$data" "$ctrl" "$pkgdir"
    stage "$data"
    local size
    size=$(find "$data" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
    cat >"$ctrl/control" <<EOF
Package: $PKG
Version: $FULLVER
Depends: libc
Source: netmon-agent
SourceName: $PKG
License: MIT
Section: net
Require-User: $RUSER
Architecture: $ARCH
Installed-Size: $size
Description:  Network-monitoring agent: system metrics, interface statistics, LAN devices and
 per-device bandwidth, shipped as JSON snapshots. Runs as user netmon with CAP_NET_RAW only.
EOF
    echo "/etc/config/$PKG" >"$ctrl/conffiles"
    # The SDK's generated maintainer scripts (include/package-pack.mk).
    cat >"$ctrl/postinst" <<'EOF'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
EOF
    cat >"$ctrl/prerm" <<'EOF'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
EOF
    chmod 0755 "$ctrl/postinst" "$ctrl/prerm"
    chmod 0644 "$ctrl/control" "$ctrl/conffiles"
    echo "2.0" >"$pkgdir/debian-binary"
    det_tar_gz "$pkgdir/data.tar.gz" "$data" .
    det_tar_gz "$pkgdir/control.tar.gz" "$ctrl" .
    local ipk="$OUT/${PKG}_${FULLVER}_${ARCH}.ipk"
    det_tar_gz "$ipk" "$pkgdir" ./debian-binary ./data.tar.gz ./control.tar.gz
    echo "$ipk ($(stat -c %s "$ipk") bytes, Installed-Size $size)"
}

# OpenWrt 25.12: apk-tools v3 ADB package. OpenWrt's metadata rides in /lib/apk/packages/.
apk_pkg() {
    command -v apk >/dev/null && apk --version 2>/dev/null | grep -q 'apk-tools 3' || {
        echo "mkpkg.sh: apk-tools v3 ('apk mkpkg') is not installed: cannot build the .apk here" >&2
        exit 1
    }
    local data=$WORK/data meta
    stage "$data"
    meta="$data/lib/apk/packages"
    install -d -m 0755 "$meta"
    (cd "$data" && find . -type f -o -type l | sed 's|^\.||' | grep -v '^/lib/apk/packages/' | sort) >"$meta/$PKG.list"
    echo "/etc/config/$PKG" >"$meta/$PKG.conffiles"
    (cd "$data" && sha256sum "etc/config/$PKG" | awk '{print "/" $2 " " $1}') >"$meta/$PKG.conffiles_static"
    echo "$RUSER" >"$meta/$PKG.rusers"
    echo "/lib/apk/packages/$PKG.list" >>"$meta/$PKG.list"
    cat >"$WORK/post-install" <<EOF
#!/bin/sh
[ "\${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="$PKG"
add_group_and_user
default_postinst
EOF
    cat >"$WORK/pre-deinstall" <<EOF
#!/bin/sh
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="$PKG"
default_prerm
EOF
    local out="$OUT/$PKG-$FULLVER.apk"
    apk mkpkg \
        --info "name:$PKG" --info "version:$FULLVER" --info "arch:$ARCH" \
        --info "license:MIT" --info "origin:$PKG" --info "depends:libc" \
        --info "description:Network-monitoring agent for routers" \
        --script "post-install:$WORK/post-install" --script "pre-deinstall:$WORK/pre-deinstall" \
        --files "$data" --output "$out"
    echo "$out ($(stat -c %s "$out") bytes)"
}

case "$kind" in
    ipk) ipk ;;
    apk) apk_pkg ;;
    *) echo "mkpkg.sh: first argument is ipk or apk" >&2; exit 2 ;;
esac
