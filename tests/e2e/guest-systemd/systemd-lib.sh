# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced after /e2e/lib.sh (the busybox guest's helpers): what differs
# when systemd is PID 1 and the daemon runs as liveupdated.service.

# Slower than the busybox guest: systemd boots under software emulation too.
E2E_TIMEOUT=300

# busybox has usleep; coreutils' sleep takes fractions.
usleep() { sleep "$(printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)))"; }

# journal [journalctl options...]: this boot's journal, on the console.
journal() { journalctl -b --no-pager -o short-monotonic "$@" 2>&1 | prefix journal; }

finish() {
	sync
	e2e "end"
	# An orderly poweroff, as `systemctl poweroff` does it without asking
	# logind first (there is none): QEMU exits when it is done.
	systemctl --no-block --job-mode=replace-irreversibly start poweroff.target
	exit 0
}

fail() {
	e2e "fail $*"
	systemctl --no-pager --failed 2>&1 | prefix failed
	journal -u liveupdated.service
	finish
}

unit_prop() { systemctl show -P "$2" "$1"; }

# mounted_ro PID PATH: PATH is mounted read-only in PID's mount namespace.
mounted_ro() {
	awk -v p="$2" '$5 == p { o = $6 } END { exit !(o ~ /^ro(,|$)/) }' "/proc/$1/mountinfo"
}

# mounted PID PATH: something is mounted on PATH in PID's mount namespace.
mounted() { awk -v p="$2" '$5 == p { f = 1 } END { exit !f }' "/proc/$1/mountinfo"; }

# check_service: the boot went through with no failed unit, liveupdated is
# active, and its unit's sandboxing is in force on the running daemon (not
# silently skipped): seccomp filters (RestrictAddressFamilies=,
# MemoryDenyWriteExecute=, LockPersonality=), NoNewPrivileges=, the
# capability bounding set, ProtectSystem=full, ProtectHome=, PrivateTmp=.
check_service() {
	local pid
	e2e "system $(systemctl is-system-running --wait)"
	check daemon-active systemctl -q is-active liveupdated.service
	check no-failed-units test -z "$(systemctl --failed --no-legend --plain)"
	pid=$(unit_prop liveupdated.service MainPID)
	e2e "daemon pid=$pid nrestarts=$(unit_prop liveupdated.service NRestarts)" \
		"fdstore=$(unit_prop liveupdated.service NFileDescriptorStore)" \
		"$(grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs|CapBnd):' "/proc/$pid/status" |
			tr -d ' \t' | tr ':\n' '= ')"
	check daemon-seccomp grep -Eqx 'Seccomp:[[:space:]]+2' "/proc/$pid/status"
	check daemon-no-new-privs grep -Eqx 'NoNewPrivs:[[:space:]]+1' "/proc/$pid/status"
	# CAP_CHOWN 0, CAP_DAC_OVERRIDE 1, CAP_SETGID 6, CAP_SYS_MODULE 16, CAP_SYS_BOOT 22
	check daemon-capabilities grep -Eqx 'CapBnd:[[:space:]]+0000000000410043' "/proc/$pid/status"
	check daemon-usr-readonly mounted_ro "$pid" /usr
	check daemon-boot-readonly mounted_ro "$pid" /boot
	check daemon-etc-readonly mounted_ro "$pid" /etc
	check daemon-home-protected mounted "$pid" /home
	check daemon-private-tmp mounted "$pid" /tmp
}
