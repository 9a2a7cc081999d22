# Shims for OpenWrt's rc.common/functions.sh/procd.sh helpers, for running an init script under
# busybox ash outside OpenWrt. Every procd call is recorded in $SHIM_LOG, one line per call,
# fields separated by '|'. The UCI file itself is parsed the way uci_load's output is: as shell,
# with `config` and `option` as functions (CONFIG_<section>_<option> variables, as functions.sh).
# Inputs: SHIM_LOG, UCI_DIR (holds the UCI files), SHIM_PASSWD (an /etc/passwd).

rec() {
	local IFS='|'
	echo "$*" >>"$SHIM_LOG"
}

config() { _section="$2"; }
option() { eval "CONFIG_${_section}_$1=\$2"; }
list() { :; }
config_load() { . "$UCI_DIR/$1"; }
config_get() {
	case "$#" in
	2) eval "echo \"\${CONFIG_$1_$2}\"" ;;
	*) eval "$1=\"\${CONFIG_$2_$3:-\$4}\"" ;;
	esac
}
config_get_bool() {
	local _v
	eval "_v=\"\${CONFIG_$2_$3:-\$4}\""
	case "$_v" in
	1 | on | true | yes | enabled) _v=1 ;;
	*) _v=0 ;;
	esac
	eval "$1=$_v"
}
user_exists() { grep -q "^$1:" "$SHIM_PASSWD"; }
chown() { rec chown "$@"; }

procd_open_instance() { rec procd_open_instance "$@"; }
procd_close_instance() { rec procd_close_instance "$@"; }
procd_set_param() { rec procd_set_param "$@"; }
procd_append_param() { rec procd_append_param "$@"; }
procd_add_jail() { rec procd_add_jail "$@"; }
procd_add_jail_mount() { rec procd_add_jail_mount "$@"; }
procd_add_jail_mount_rw() { rec procd_add_jail_mount_rw "$@"; }
procd_add_reload_trigger() { rec procd_add_reload_trigger "$@"; }
procd_add_reload_interface_trigger() { rec procd_add_reload_interface_trigger "$@"; }
procd_add_interface_trigger() { rec procd_add_interface_trigger "$@"; }
