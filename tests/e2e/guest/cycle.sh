# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A full live update: VMMs with memfd guest RAM keep writing until frozen;
# prepare with the same kernel as the next one; commit; the real kexec; in
# the new kernel every VMM gets its memory back, verifies every byte and
# writes on, and every session is finished.

VMMS=${E2E_VMMS:-4}

# Half the VMMs let the daemon preserve their fds, half preserve them themselves.
vmm_args() {
	local mode=send
	[ $(($1 % 2)) = 0 ] && mode=self
	echo "--mem-mib ${E2E_MEM_MIB:-16} --ram-fds ${E2E_RAM_FDS:-2} --mode $mode --seed $1" \
		"--write-nap-us ${E2E_NAP_US:-0}"
}

stage1() {
	start_daemon
	for i in $(seq "$VMMS"); do
		start_vmm "vm$i" $(vmm_args "$i")
	done
	for i in $(seq "$VMMS"); do
		wait_event "vm$i" running
	done
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
	for i in $(seq "$VMMS"); do
		start_vmm "vm$i" $(vmm_args "$i")
	done
	for i in $(seq "$VMMS"); do
		wait_event "vm$i" resumed
	done
	for i in $(seq "$VMMS"); do
		wait_event "vm$i" writing
	done
	e2e "vmms writing"
	e2e "report $(liveupdatectl report --json)"
	e2e "status $(liveupdatectl status --json)"
}
