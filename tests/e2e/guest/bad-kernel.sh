# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Bad next-kernel images: prepare fails with a clear error and nothing
# changes: no update is left behind and the VMs run on untouched.

stage1() {
	start_daemon
	start_vmms 2
	wait_vmms 2 running
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

	verify_vmms vm1 vm2
	e2e "vmms verified"

	# The machine can still be updated afterwards: a good image prepares.
	check prepare-good liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	check abort liveupdatectl abort
	e2e "status $(liveupdatectl status --json)"
}
