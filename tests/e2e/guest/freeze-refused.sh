# SPDX-License-Identifier: LGPL-2.1-or-later
#
# One VMM refuses to freeze: the commit fails at the freeze deadline, the
# others are thawed, nothing is kexec'd, and every VMM runs on with its
# memory intact.

stage1() {
	start_daemon
	start_vmm vm1 --mem-mib 16 --ram-fds 2 --seed 1
	start_vmm vm2 --mem-mib 16 --ram-fds 2 --seed 2 --mode self
	start_vmm stubborn --mem-mib 16 --seed 3 --fault ignore-freeze
	for id in vm1 vm2 stubborn; do
		wait_event $id running
	done
	e2e "vmms running"
	check prepare liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	e2e "commit"
	liveupdatectl commit --freeze-timeout 3000
	rc=$?
	check commit-refused [ $rc = 1 ]
	e2e "status $(liveupdatectl status --json)"
	for id in vm1 vm2; do
		wait_event $id thawed
	done
	# Every VMM, the stubborn one too, checks all of its memory again.
	verify_vmms vm1 vm2 stubborn
	for id in vm1 vm2; do
		wait_event $id writing
	done
	e2e "vmms verified"
}
