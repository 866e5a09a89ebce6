# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A passed-through device across a real kexec with the iommufd and vfio-pci
# file handlers: QEMU's edu behind the emulated VT-d, bound to vfio-pci,
# DMAing into memfd guest RAM through an iommufd IOAS. liveupdate-edu-hotswap
# marks the device's HWPT, is refused preserving out of order, preserves the
# memory, the iommufd and the device, starts a DMA and kexecs; in the new
# kernel the DMA has landed, the retrieved device is taken over unreset and
# DMAs through the handed-over page tables, the VMM rebuilds its domain, and
# at FINISH the device moves to it and the old tables are freed.

EDU=/sys/bus/pci/devices/$E2E_EDU_SLOT

stage1() {
	bind_edu_to_vfio "$EDU"
	start_process edu liveupdate-edu-hotswap --slot "$E2E_EDU_SLOT" \
		--kexec /mnt/boot/bzImage --initrd /mnt/boot/initrd.img --append "lu_stage=2"
	# the program kexecs; it only comes back here if it failed
	wait_event edu exited
	fail "liveupdate-edu-hotswap returned instead of kexecing"
}

stage2() {
	# the PCI core reserved the handed-over device for vfio-pci
	check edu-bound-at-boot [ "$(driver_of "$EDU")" = vfio-pci ]
	start_process edu liveupdate-edu-hotswap --slot "$E2E_EDU_SLOT" --retrieve
	wait_event edu exited
	check hotswap-passed grep -q '"status":0' /run/vmm/edu.log
}
