# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A VMM is killed after it reported FROZEN and before the kexec. Its VM's
# state is complete in its session, which the daemon holds, so the update
# goes on: the kexec happens, and when the VMM is started again in the new
# kernel it gets all of its memory back, like the others.

stage1() {
	start_daemon
	# vm1 and vm2 hold their FROZEN back until told (SIGUSR2), so that
	# vm3's death certainly falls between its FROZEN and the kexec.
	start_vmm vm1 --mem-mib 16 --ram-fds 2 --seed 1 --freeze-hold
	start_vmm vm2 --mem-mib 16 --ram-fds 2 --seed 2 --mode self --freeze-hold
	start_vmm vm3 --mem-mib 16 --ram-fds 2 --seed 3 --mode self --fault crash@frozen
	for id in vm1 vm2 vm3; do
		wait_event $id running
	done
	e2e "vmms running"
	check prepare liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	e2e "commit"
	liveupdatectl commit &
	wait_event vm3 frozen
	wait_event vm3 exited
	e2e "vm3 $(grep '"event":"exited"' /run/vmm/vm3.log)"
	for id in vm1 vm2; do
		wait_event $id held
	done
	e2e "status $(liveupdatectl status --json)"
	kill -USR2 "$(vmm_pid vm1)" "$(vmm_pid vm2)"
	wait
	fail "liveupdatectl commit returned: no kexec happened"
}

stage2() {
	start_daemon
	start_vmm vm1 --mem-mib 16 --ram-fds 2 --seed 1
	start_vmm vm2 --mem-mib 16 --ram-fds 2 --seed 2 --mode self
	start_vmm vm3 --mem-mib 16 --ram-fds 2 --seed 3 --mode self
	for id in vm1 vm2 vm3; do
		wait_event $id resumed
	done
	e2e "vmms resumed"
	e2e "report $(liveupdatectl report --json)"
	e2e "status $(liveupdatectl status --json)"
}
