# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A passed-through device carried across a live update by liveupdated, as a
# VMM does it: QEMU's edu behind the emulated VT-d, bound to vfio-pci, in a
# VM of liveupdate-edu-vmm --vm-id edu beside two reference VMs. At PREPARE
# the edu VMM marks its HWPT and has the daemon preserve its guest RAM, its
# iommufd and its device; at FREEZE it leaves a DMA in flight; the real
# kexec. In the new kernel it takes the running device over, DMAs through
# the handed-over tables, rebuilds its domain and resumes: the daemon's
# FINISH of its session moves the device to that domain. status shows the
# device's hand-over at each step.

EDU=/sys/bus/pci/devices/$E2E_EDU_SLOT
VMMS=2

daemon_status() { liveupdatectl --json status; }

stage1() {
	start_daemon
	start_vmms "$VMMS"
	bind_edu_to_vfio "$EDU"
	start_process edu liveupdate-edu-vmm --slot "$E2E_EDU_SLOT" --vm-id edu
	wait_vmms "$VMMS" running
	wait_alive edu dma
	e2e "vmms running"
	# Let the writers turn over some memory before the update.
	sleep 1

	e2e "status-before $(daemon_status)"
	out=$(liveupdatectl --json prepare /mnt/boot/bzImage --initrd /mnt/boot/initrd.img \
		--append "lu_stage=2" 2>&1)
	rc=$?
	e2e "prepare rc=$rc $out"
	check prepare [ $rc = 0 ]
	wait_alive edu prepared
	e2e "status-prepared $(daemon_status)"
	# preserved, the device still DMAs until the VM is frozen
	kill -USR1 "$(vmm_pid edu)"
	wait_alive edu dma 2
	e2e "commit"
	liveupdatectl commit
	fail "liveupdatectl commit returned $?: no kexec happened"
}

stage2() {
	start_daemon
	# the PCI core reserved the handed-over device for vfio-pci
	check edu-bound-at-boot [ "$(driver_of "$EDU")" = vfio-pci ]
	# The edu VM first: back, its device taken over and its domain rebuilt,
	# RESUMED held until the daemon was asked about the device.
	start_process edu liveupdate-edu-vmm --slot "$E2E_EDU_SLOT" --vm-id edu --hold-resume
	wait_alive edu held
	e2e "status-restored $(daemon_status)"

	# The other VMs back too: the daemon defers the FINISH of a session with
	# devices while a VM still waits for its restore (the check of the new
	# domain must not lengthen anybody's blackout).
	start_vmms "$VMMS"
	wait_vmms "$VMMS" resumed
	wait_vmms "$VMMS" writing
	e2e "vmms writing"

	# nothing for the disk to map while FINISH frees the old tables
	sync
	kill -USR2 "$(vmm_pid edu)"
	wait_alive edu resumed
	# in-flight, old-tables, before-finish, new-domain
	wait_alive edu dma 4
	e2e "status-swapped $(daemon_status)"
	e2e "report $(liveupdatectl report --json)"
	e2e "status $(liveupdatectl status --json)"
	verify_vmms vm1 vm2
	# and a round of the edu VM through its new domain
	kill -USR1 "$(vmm_pid edu)"
	wait_alive edu dma 5
	e2e "vmms verified"
}
