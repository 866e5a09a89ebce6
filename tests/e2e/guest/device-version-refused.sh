# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A hand-over the next kernel does not understand: as e2e-device-handover,
# but the old kernel's test handler writes another version into the
# handed-over IOMMU state (debugfs handover_version). The new kernel must
# refuse it and make the device safe rather than trust its tables: guest
# RAM intact, the device not retrievable, bus mastering off, its DMA
# landing nowhere.

EDU=/sys/bus/pci/devices/$E2E_EDU_SLOT
UNKNOWN_VERSION=99

stage1() {
	mount -t debugfs debugfs /sys/kernel/debug || fail "cannot mount debugfs"
	bind_edu_to_vfio "$EDU"
	start_process edu liveupdate-edu-handover --slot "$E2E_EDU_SLOT" \
		--kexec /mnt/boot/bzImage --initrd /mnt/boot/initrd.img --append "lu_stage=2" \
		--handover-version "$UNKNOWN_VERSION"
	wait_event edu exited
	fail "liveupdate-edu-handover returned instead of kexecing"
}

stage2() {
	mount -t debugfs debugfs /sys/kernel/debug || fail "cannot mount debugfs"
	start_process edu liveupdate-edu-handover --slot "$E2E_EDU_SLOT" --retrieve --refused
	wait_event edu exited
	check refusal-safe grep -q '"status":0' /run/vmm/edu.log
}
