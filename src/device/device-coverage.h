/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A device bound to vfio-pci is DMAing into some guest's memory through
 * the IOMMU; a kexec that does not carry it over resets it under that
 * guest. So an update goes on only when every such device was preserved
 * by a VMM of the update: checked when every VMM has answered PREPARE,
 * and again at commit.
 */

#include <stddef.h>

#include "pci-slot.h"
#include "pci.h"

/*
 * Move the devices of bound that no slot of preserved names to the front,
 * in their order; returns how many there are (0: all covered).
 */
size_t device_uncovered(PciDevice *bound, size_t n_bound, const PciSlot *preserved,
			size_t n_preserved);

/*
 * "0000:00:07.0 [1234:11e8] IOMMU group 2 is bound to vfio-pci but no VMM
 * preserved it: the update would reset it under its guest", or the plural
 * for several (as many named as fit, see pci_format_devices()).
 */
void device_uncovered_message(const PciDevice *devs, size_t n, char *buf, size_t size);
