# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Bad next-kernel images: prepare fails with a clear error and nothing
# changes: no update is left behind and the VMs run on untouched.

stage1() {
	start_daemon
	start_vmm vm1 --mem-mib 16 --ram-fds 2 --seed 1
	start_vmm vm2 --mem-mib 16 --seed 2 --mode self
	for id in vm1 vm2; do
		wait_event $id running
	done
	e2e "vmms running"

	# Not a kernel at all, a file that is not there, and a kernel that
	# could not receive the update (its config has no LUO).
	head -c 1048576 /dev/urandom >/tmp/garbage.img
	for image in /tmp/garbage.img /mnt/boot/missing.img /mnt/boot/noluo/bzImage; do
		out=$(liveupdatectl --json prepare "$image" --append "lu_stage=2" 2>&1)
		rc=$?
		e2e "prepare $image rc=$rc $out"
		check "prepare-refused-$(basename "$image")" [ $rc != 0 ]
		e2e "status $(liveupdatectl status --json)"
	done

	for id in vm1 vm2; do
		kill -USR1 "$(vmm_pid $id)"
		wait_event $id verified
	done
	e2e "vmms verified"

	# The machine can still be updated afterwards: a good image prepares.
	check prepare-good liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	check abort liveupdatectl abort
	e2e "status $(liveupdatectl status --json)"
}
