# Package description for openwrt/mkpkg.sh (sourced): luci-app-netmon-agent as luci.mk installs
# it (htdocs/ -> /www, root/ -> /), architecture "all": make ipk/apk PKG=luci-app-netmon-agent ARCH=all.
PKG_DIR=luci-app-netmon-agent
PKG_NEEDS_BINARY=0
PKG_DEPENDS="libc luci-base netmon-agent"
PKG_SECTION=luci
PKG_LICENSE=MIT
PKG_DESCRIPTION="Status and settings pages for netmon-agent: the agent's state, a live per-device
rate chart and the device table, and its UCI configuration."

# $1 = the installed tree.
pkg_stage() {
    local d=$1 src=$ROOT/openwrt/luci-app-netmon-agent
    install -d -m 0755 "$d/www"
    cp -R "$src/htdocs/." "$d/www/"
    cp -R "$src/root/." "$d/"
    find "$d" -type d -exec chmod 0755 {} +
    find "$d" -type f -exec chmod 0644 {} +
}
