# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A daemon restart in the middle of an update does not cancel it, under a
# real systemd: three VMMs, prepare, then the daemon is SIGKILLed; systemd
# starts liveupdated.service again with its fd store (the LUO session fds)
# and its sockets, the new instance picks the prepared update up from its
# state directory, the VMMs reconnect, and commit goes on: the real kexec
# with LUO; in the new kernel systemd boots again, liveupdated starts, the
# VMMs come back with their ids, and every VM is restored, its bytes
# verified, and resumed.

VMMS=3

# restarted OLD_PID: systemd has the daemon running again, a new process, ready.
restarted() {
	local pid
	pid=$(unit_prop liveupdated.service MainPID)
	[ "$pid" != 0 ] && [ "$pid" != "$1" ] && systemctl -q is-active liveupdated.service
}

# Every VMM is connected to the new instance again.
vmms_connected() {
	[ "$(liveupdatectl list --json | grep -o '"connected":true' | wc -l)" = "$VMMS" ]
}

stage1() {
	local old
	check_service
	start_vmms "$VMMS"
	wait_vmms "$VMMS" running
	e2e "vmms running"
	check prepare liveupdatectl prepare /boot/bzImage --append "lu_stage=2"
	e2e "status-before $(liveupdatectl status --json)"
	old=$(unit_prop liveupdated.service MainPID)
	e2e "kill daemon pid=$old fdstore=$(unit_prop liveupdated.service NFileDescriptorStore)"
	kill -KILL "$old"
	wait_for 120 "systemd to start liveupdated again" restarted "$old"
	wait_for "$E2E_TIMEOUT" "the VMMs to reconnect" vmms_connected
	e2e "status-after $(liveupdatectl status --json)"
	e2e "list-after $(liveupdatectl list --json)"
	check_service
	journal -u liveupdated.service
	e2e "commit"
	liveupdatectl commit
	fail "liveupdatectl commit returned $?: no kexec happened"
}

stage2() {
	check_service
	restart_vmms "$VMMS"
	check_service
	journal -u liveupdated.service
}
