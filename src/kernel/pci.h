/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * PCI inventory through libpci: the devices passed through to VMs (bound
 * to vfio-pci), their IOMMU groups, and whether their state can be carried
 * over. sysfs_path NULL means libpci's default (/sys/bus/pci); tests hand
 * it a directory of their own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct PciDevice {
	char slot[32]; /* "0000:00:03.0" */
	uint16_t vendor_id, device_id;
	char driver[64]; /* "" when unbound */
	int iommu_group; /* -1 when none */
} PciDevice;

/* Why a device bound to vfio-pci cannot be updated under, for status and prepare. */
#define PCI_NOT_PRESERVABLE_REASON \
	"The running kernel has no live-update handler for vfio-pci devices"

/* Every device bound to vfio-pci. *ret is malloc'd (may be NULL when *n == 0). */
int pci_passthrough_devices(const char *sysfs_path, PciDevice **ret, size_t *n);

/*
 * "0000:00:03.0 [1234:11e8] IOMMU group 3, ..." for messages: as many
 * devices as fit in size, then ", and N more". Always NUL-terminates.
 */
void pci_format_devices(const PciDevice *devs, size_t n, char *buf, size_t size);
