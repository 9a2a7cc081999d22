# A stand-in for OpenWrt's /lib/functions.sh maintainer-script helpers, written from their
# documented behaviour (see ../shared/OPENWRT.md), for exercising the package's postinst/prerm in a
# scratch root with IPKG_INSTROOT set (an offline image build: users are created, the service is
# enabled, nothing is started). Every call of an init script action is recorded in $SHIM_LOG.

user_exists() { grep -qs "^$1:" "$IPKG_INSTROOT/etc/passwd"; }
group_exists() { grep -qs "^$1:" "$IPKG_INSTROOT/etc/group"; }
group_add_next() {
	local gid
	gid=$(grep -s "^$1:" "$IPKG_INSTROOT/etc/group" | cut -d: -f3)
	if [ -z "$gid" ]; then
		gid=65536
		while cut -d: -f3 "$IPKG_INSTROOT/etc/group" | grep -qx "$gid"; do gid=$((gid + 1)); done
		echo "$1:x:$gid:" >>"$IPKG_INSTROOT/etc/group"
	fi
	echo "$gid"
}
user_add() {
	local uid="$2" gid="$3"
	if [ -z "$uid" ]; then
		uid=65536
		while cut -d: -f3 "$IPKG_INSTROOT/etc/passwd" | grep -qx "$uid"; do uid=$((uid + 1)); done
	fi
	echo "$1:*:$uid:${gid:-$uid}:$1:/var:/bin/false" >>"$IPKG_INSTROOT/etc/passwd"
}
add_group_and_user() {
	local rusers tuple uname gname uid gid
	rusers=$(sed -ne 's/^Require-User: *//p' "$IPKG_INSTROOT/usr/lib/opkg/info/$1.control")
	for tuple in $rusers; do
		uname=${tuple%%:*}
		gname=${tuple#*:}
		uid=""; gid=""
		case "$uname" in *=*) uid=${uname#*=}; uname=${uname%%=*} ;; esac
		case "$gname" in *=*) gid=${gname#*=}; gname=${gname%%=*} ;; esac
		if [ -n "$gname" ]; then
			if [ -n "$gid" ]; then group_exists "$gname" || echo "$gname:x:$gid:" >>"$IPKG_INSTROOT/etc/group"
			else gid=$(group_add_next "$gname"); fi
		fi
		user_exists "$uname" || user_add "$uname" "$uid" "$gid"
	done
}
default_postinst() {
	local pkgname i
	pkgname=$(basename "${1%.*}")
	add_group_and_user "$pkgname"
	for i in $(grep -s "^/etc/init.d/" "$IPKG_INSTROOT/usr/lib/opkg/info/$pkgname.list"); do
		sh "$IPKG_INSTROOT/etc/rc.common" "$IPKG_INSTROOT$i" enable
	done
}
default_prerm() {
	local pkgname i
	pkgname=$(basename "${1%.*}")
	for i in $(grep -s "^/etc/init.d/" "$IPKG_INSTROOT/usr/lib/opkg/info/$pkgname.list"); do
		sh "$IPKG_INSTROOT/etc/rc.common" "$IPKG_INSTROOT$i" disable
	done
}
