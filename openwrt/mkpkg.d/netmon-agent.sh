# Package description for openwrt/mkpkg.sh (sourced): what the feed Makefile
# (openwrt/netmon-agent/Makefile) installs, for building the .ipk/.apk without the SDK.
PKG_DIR=netmon-agent           # openwrt/<dir>: its Makefile gives PKG_VERSION and PKG_RELEASE
PKG_NEEDS_BINARY=1             # the static binary is the third argument
PKG_DEPENDS="libc ca-bundle"   # the Makefile's DEPENDS (+ca-bundle: TLS needs the CA bundle)
PKG_SECTION=net
PKG_LICENSE=MIT
PKG_RUSER="netmon:netmon"      # the Makefile's USERID: default_postinst creates them
PKG_DESCRIPTION="Network-monitoring agent: system metrics, interface statistics, LAN devices and
per-device bandwidth, shipped as JSON snapshots. Runs as user netmon with CAP_NET_RAW only."
# Shipped conffiles, and state kept across a firmware upgrade without being shipped (the SDK
# turns such Package/conffiles entries into /lib/upgrade/keep.d/<pkg>).
PKG_CONFFILES="/etc/config/netmon-agent"
PKG_KEEP="/etc/netmon-agent/api_key"

# $1 = the installed tree, $2 = the binary.
pkg_stage() {
    local d=$1 files=$ROOT/openwrt/netmon-agent/files
    install -d -m 0755 "$d/usr/sbin" "$d/etc/init.d" "$d/etc/config" "$d/etc/capabilities"
    install -m 0755 "$2" "$d/usr/sbin/netmon-agent"
    install -m 0755 "$files/netmon-agent.init" "$d/etc/init.d/netmon-agent"
    install -m 0600 "$files/netmon-agent.config" "$d/etc/config/netmon-agent"
    install -m 0644 "$files/netmon-agent.json" "$d/etc/capabilities/netmon-agent.json"
}
