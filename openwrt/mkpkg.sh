#!/usr/bin/env bash
# Builds OpenWrt packages without the SDK, the way the SDK's include/package-pack.mk does.
#
#   openwrt/mkpkg.sh ipk ARCH BINARY OUTDIR   -> OUTDIR/<pkg>_<ver>-r<rel>_<ARCH>.ipk
#   openwrt/mkpkg.sh apk ARCH BINARY OUTDIR   -> OUTDIR/<pkg>-<ver>-r<rel>.apk (apk-tools 3)
#
# The package is described by openwrt/mkpkg.d/$PKG.sh (default PKG=netmon-agent): its
# version comes from openwrt/$PKG_DIR/Makefile, its files from pkg_stage. A package without a
# binary (PKG_NEEDS_BINARY=0, e.g. a LuCI app, ARCH all) takes '-' as BINARY.
#
# The .ipk is what opkg reads: a gzip'd tar of ./debian-binary, ./data.tar.gz, ./control.tar.gz;
# the control fields, conffiles, postinst and prerm are those the SDK writes (default_postinst
# creates Require-User's user and group, enables and starts the service; default_prerm stops
# and disables it). The .apk carries OpenWrt's metadata in /lib/apk/packages/ and the SDK's
# post-install, post-upgrade (PKG_UPGRADE=1) and pre-deinstall scripts. Reproducible: fixed
# owners, sorted names, mtimes from SOURCE_DATE_EPOCH.
#
# Environment: PKG; PKG_RELEASE_OVERRIDE (e.g. 2, for upgrade tests); APK (the apk-tools 3
# command, default `apk`; `make apk` passes the one the OpenWrt lab builds); MKPKG_ANY_BINARY=1
# accepts a dynamically linked binary (the packaging tests use the test build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG=${PKG:-netmon-agent}
DESC_FILE=$ROOT/openwrt/mkpkg.d/$PKG.sh
[ -f "$DESC_FILE" ] || { echo "mkpkg.sh: no package description $DESC_FILE" >&2; exit 2; }
PKG_NEEDS_BINARY=1 PKG_DEPENDS=libc PKG_SECTION=net PKG_LICENSE=MIT PKG_RUSER="" PKG_CONFFILES="" PKG_KEEP=""
# shellcheck source=mkpkg.d/netmon-agent.sh
. "$DESC_FILE"
MAKEFILE=$ROOT/openwrt/$PKG_DIR/Makefile
VERSION=$(sed -n 's/^PKG_VERSION:=//p' "$MAKEFILE")
RELEASE=${PKG_RELEASE_OVERRIDE:-$(sed -n 's/^PKG_RELEASE:=//p' "$MAKEFILE")}
if [ "$PKG_NEEDS_BINARY" = 1 ]; then
    CARGO_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
    [ "$VERSION" = "$CARGO_VERSION" ] || { echo "mkpkg.sh: PKG_VERSION $VERSION in $MAKEFILE differs from Cargo.toml's $CARGO_VERSION" >&2; exit 1; }
fi
FULLVER="$VERSION-r$RELEASE"
# The package's own postinst (the Makefile's `define Package/<pkg>/postinst`), which the SDK
# ships as postinst-pkg (ipk; default_postinst sources it) or appends to post-install (apk).
# make expands the define once: `$$` there is `$` in the script.
POSTINST_PKG=$(sed -n "/^define Package\/$PKG\/postinst\$/,/^endef\$/p" "$MAKEFILE" | sed '1d;$d' | sed 's/\$\$/$/g')
# Its postrm, shipped as it is (ipk postrm, apk post-deinstall).
POSTRM_PKG=$(sed -n "/^define Package\/$PKG\/postrm\$/,/^endef\$/p" "$MAKEFILE" | sed '1d;$d' | sed 's/\$\$/$/g')
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
APK=${APK:-apk}

kind=${1:?ipk or apk}
ARCH=${2:?OpenWrt arch, e.g. mipsel_24kc}
BIN=${3:?binary, or - for a package without one}
OUT=${4:?output directory}
if [ "$PKG_NEEDS_BINARY" = 1 ]; then
    [ -x "$BIN" ] || { echo "mkpkg.sh: $BIN is not an executable" >&2; exit 1; }
    if [ "${MKPKG_ANY_BINARY:-0}" != 1 ]; then
        case "$(file -b "$BIN")" in
            *"statically linked"* | *"static-pie linked"*) ;;
            *) echo "mkpkg.sh: $BIN is not statically linked" >&2; exit 1 ;;
        esac
    fi
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The installed tree, with the modes the package must have, and keep.d for unshipped state.
stage() {
    local d=$1
    pkg_stage "$d" "$BIN"
    if [ -n "$PKG_KEEP" ]; then
        install -d -m 0755 "$d/lib/upgrade/keep.d"
        printf '%s\n' $PKG_KEEP >"$d/lib/upgrade/keep.d/$PKG"
        chmod 0644 "$d/lib/upgrade/keep.d/$PKG"
    fi
}

# tar with fixed owners and order; $1 = output, $2 = directory, rest = members.
det_tar_gz() {
    local out=$1 dir=$2
    shift 2
    tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
        --mtime="@$SOURCE_DATE_EPOCH" -C "$dir" -cf - "$@" | gzip -9n >"$out"
}

# The SDK's maintainer scripts (include/package-pack.mk).
ipk_postinst='#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@'
ipk_prerm='#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@'

ipk() {
    local data=$WORK/data ctrl=$WORK/control pkgdir=$WORK/pkg
    mkdir -p "$data" "$ctrl" "$pkgdir"
    stage "$data"
    local size
    size=$(find "$data" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    {
        echo "Package: $PKG"
        echo "Version: $FULLVER"
        echo "Depends: ${PKG_DEPENDS// /, }"
        echo "Source: $PKG_DIR"
        echo "SourceName: $PKG"
        echo "License: $PKG_LICENSE"
        echo "Section: $PKG_SECTION"
        [ -z "$PKG_RUSER" ] || echo "Require-User: $PKG_RUSER"
        echo "Architecture: $ARCH"
        echo "Installed-Size: $size"
        printf 'Description: '
        echo "$PKG_DESCRIPTION" | sed -e 's,^[[:space:]]*, ,g'
    } >"$ctrl/control"
    : >"$ctrl/conffiles"
    for f in $PKG_CONFFILES; do echo "$f" >>"$ctrl/conffiles"; done
    echo "$ipk_postinst" >"$ctrl/postinst"
    echo "$ipk_prerm" >"$ctrl/prerm"
    chmod 0755 "$ctrl/postinst" "$ctrl/prerm"
    if [ -n "$POSTINST_PKG" ]; then
        echo "$POSTINST_PKG" >"$ctrl/postinst-pkg"
        chmod 0755 "$ctrl/postinst-pkg"
    fi
    if [ -n "$POSTRM_PKG" ]; then
        printf '#!/bin/sh\n%s\n' "$POSTRM_PKG" >"$ctrl/postrm"
        chmod 0755 "$ctrl/postrm"
    fi
    chmod 0644 "$ctrl/control" "$ctrl/conffiles"
    [ -s "$ctrl/conffiles" ] || rm "$ctrl/conffiles"
    echo "2.0" >"$pkgdir/debian-binary"
    det_tar_gz "$pkgdir/data.tar.gz" "$data" .
    det_tar_gz "$pkgdir/control.tar.gz" "$ctrl" .
    local ipk="$OUT/${PKG}_${FULLVER}_${ARCH}.ipk"
    det_tar_gz "$ipk" "$pkgdir" ./debian-binary ./data.tar.gz ./control.tar.gz
    echo "$ipk ($(stat -c %s "$ipk") bytes, Installed-Size $size)"
}

# OpenWrt 25.12: apk-tools v3 ADB package; OpenWrt's metadata rides in /lib/apk/packages/.
apk_pkg() {
    # shellcheck disable=SC2086
    $APK --version 2>/dev/null | grep -q 'apk-tools 3' || {
        echo "mkpkg.sh: apk-tools v3 ('apk mkpkg') is not available as '$APK': cannot build the .apk (make apk builds the OpenWrt lab's)" >&2
        exit 1
    }
    local data=$WORK/data meta
    stage "$data"
    meta="$data/lib/apk/packages"
    install -d -m 0755 "$meta"
    [ -z "$PKG_RUSER" ] || echo "$PKG_RUSER" >"$meta/$PKG.rusers"
    if [ -n "$PKG_CONFFILES" ]; then
        printf '%s\n' $PKG_CONFFILES >"$meta/$PKG.conffiles"
        : >"$meta/$PKG.conffiles_static"
        for f in $PKG_CONFFILES; do
            [ -f "$data$f" ] && echo "$f $(sha256sum "$data$f" | cut -d' ' -f1)" >>"$meta/$PKG.conffiles_static"
        done
    fi
    # The list names every file and link, itself included (find runs before it exists).
    (cd "$data" && { find . -type f -o -type l; echo "./lib/apk/packages/$PKG.list"; } | sed 's|^\.||' | sort) >"$WORK/list"
    mv "$WORK/list" "$meta/$PKG.list"
    chmod 0644 "$meta"/*
    local body
    body='#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="'$PKG'"
add_group_and_user
default_postinst'
    [ -z "$POSTINST_PKG" ] || body="$body
$(echo "$POSTINST_PKG" | sed '/^\s*#!/d')"
    echo "$body" >"$WORK/post-install"
    { echo '#!/bin/sh'; echo 'export PKG_UPGRADE=1'; echo "$body" | sed '/^\s*#!/d'; } >"$WORK/post-upgrade"
    cat >"$WORK/pre-deinstall" <<EOF
#!/bin/sh
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="$PKG"
default_prerm
EOF
    local rm_script=()
    if [ -n "$POSTRM_PKG" ]; then
        printf '#!/bin/sh\n%s\n' "$POSTRM_PKG" >"$WORK/post-deinstall"
        rm_script=(--script "post-deinstall:$WORK/post-deinstall")
    fi
    local out="$OUT/$PKG-$FULLVER.apk" arch=$ARCH
    [ "$arch" = all ] && arch=noarch
    # shellcheck disable=SC2086
    $APK mkpkg \
        --info "name:$PKG" --info "version:$FULLVER" --info "arch:$arch" \
        --info "license:$PKG_LICENSE" --info "origin:$PKG_DIR" \
        --info "depends:$PKG_DEPENDS" \
        --info "description:$(echo "$PKG_DESCRIPTION" | tr '\n' ' ')" \
        --script "post-install:$WORK/post-install" --script "post-upgrade:$WORK/post-upgrade" \
        --script "pre-deinstall:$WORK/pre-deinstall" "${rm_script[@]}" \
        --files "$data" --output "$out"
    echo "$out ($(stat -c %s "$out") bytes)"
}

case "$kind" in
    ipk) ipk ;;
    apk) apk_pkg ;;
    *) echo "mkpkg.sh: first argument is ipk or apk" >&2; exit 2 ;;
esac
