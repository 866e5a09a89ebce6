# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A passed-through device across a real kexec (kernel/patches 0002-0010):
# QEMU's edu behind the emulated VT-d, bound to vfio-pci, DMAing into memfd
# guest RAM through an iommufd IOAS. liveupdate-edu-handover preserves the
# memory and the device (the test-only iommu-lu-test handler), starts a DMA
# and kexecs; in the new kernel the DMA has landed, the unreset device DMAs
# through the adopted page tables, and FINISH frees them.

EDU=/sys/bus/pci/devices/$E2E_EDU_SLOT

stage1() {
	mount -t debugfs debugfs /sys/kernel/debug || fail "cannot mount debugfs"
	bind_edu_to_vfio "$EDU"
	start_process edu liveupdate-edu-handover --slot "$E2E_EDU_SLOT" \
		--kexec /mnt/boot/bzImage --initrd /mnt/boot/initrd.img --append "lu_stage=2"
	# the program kexecs; it only comes back here if it failed
	wait_event edu exited
	fail "liveupdate-edu-handover returned instead of kexecing"
}

stage2() {
	mount -t debugfs debugfs /sys/kernel/debug || fail "cannot mount debugfs"
	# the PCI core reserved the handed-over device for vfio-pci (0005)
	check edu-bound-at-boot [ "$(driver_of "$EDU")" = vfio-pci ]
	start_process edu liveupdate-edu-handover --slot "$E2E_EDU_SLOT" --retrieve
	wait_event edu exited
	check handover-passed grep -q '"status":0' /run/vmm/edu.log
}
