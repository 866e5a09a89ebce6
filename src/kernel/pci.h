/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * PCI inventory through libpci: the devices passed through to VMs (bound
 * to vfio-pci) and their IOMMU groups. Whether they can be carried over
 * is device-support.h's. sysfs_path NULL means libpci's default
 * (/sys/bus/pci); tests hand it a directory of their own.
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

/*
 * Every device bound to vfio-pci or a variant of it (a driver whose name
 * has "vfio"; only vfio-pci itself can be handed over, see
 * pci_variant_driver()). *ret is malloc'd (may be NULL when *n == 0).
 * A negative errno when the PCI sysfs is missing or unreadable.
 */
int pci_passthrough_devices(const char *sysfs_path, PciDevice **ret, size_t *n);

/* Bound to a vfio-pci variant driver, which nothing hands over. */
bool pci_variant_driver(const PciDevice *d);

/*
 * "0000:00:03.0 [1234:11e8] IOMMU group 3, ..." for messages: as many
 * devices as fit in size, then ", and N more". Always NUL-terminates.
 */
void pci_format_devices(const PciDevice *devs, size_t n, char *buf, size_t size);
