/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The PCI device behind a VFIO device file (/dev/vfio/devices/vfioN, the
 * cdev of CONFIG_VFIO_DEVICE_CDEV), told by sysfs alone: the file's
 * st_rdev names /sys/dev/char/MAJ:MIN, a link to the "vfio-dev" class
 * device under its PCI function, whose "device" link is that function.
 * The path the VMM opened it by proves nothing (another mount namespace,
 * a copy of the node); the device number does.
 */

#include "pci-slot.h"

/*
 * The slot of fd's device ("0000:00:07.0"). -ENODEV when fd is no VFIO
 * device file of a PCI function; another negative errno when sysfs could
 * not be read, <sysfs>/dev/char missing included (then no device could be
 * told from a plain file). sysfs_dir NULL means /sys.
 */
int vfio_device_slot(int fd, const char *sysfs_dir, PciSlot ret);
