# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A full live update: VMMs with memfd guest RAM keep writing until frozen;
# prepare with the same kernel as the next one; commit; the real kexec; in
# the new kernel every VMM gets its memory back, verifies every byte and
# writes on, and every session is finished.

VMMS=${E2E_VMMS:-4}

stage1() {
	start_daemon
	start_vmms "$VMMS"
	wait_vmms "$VMMS" running
	e2e "vmms running"
	# Let the writers turn over some memory before the update.
	sleep 1
	check prepare liveupdatectl prepare /mnt/boot/bzImage \
		--initrd /mnt/boot/initrd.img --append "lu_stage=2"
	e2e "commit"
	liveupdatectl commit
	fail "liveupdatectl commit returned $?: no kexec happened"
}

stage2() {
	start_daemon
	restart_vmms "$VMMS"
}
