/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pci/pci.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "pci.h"

/* libpci reports errors through a callback that must not return; ours stays quiet instead. */
static void pci_quiet(char *msg, ...)
{
}

static void pci_cleanupp(struct pci_access **p)
{
	if (*p)
		pci_cleanup(*p);
}

int pci_passthrough_devices(const char *sysfs_path, PciDevice **ret, size_t *n)
{
	_cleanup_(pci_cleanupp) struct pci_access *pacc = NULL;
	_cleanup_free_ PciDevice *list = NULL;
	size_t count = 0;
	char devices[4096];

	/*
	 * libpci's error callback must not return, and its default exits the
	 * process: never let it reach one. No PCI sysfs is an error, not "no
	 * devices": a device bound there would go unchecked.
	 */
	*ret = NULL;
	*n = 0;
	if ((size_t)snprintf(devices, sizeof(devices), "%s/devices", sysfs_path ?: "/sys/bus/pci") >=
	    sizeof(devices))
		return -ENAMETOOLONG;
	if (access(devices, R_OK | X_OK) < 0)
		return negative_errno();

	pacc = pci_alloc();
	if (!pacc)
		return -ENOMEM;
	pacc->warning = pci_quiet;
	pacc->debug = pci_quiet;
	pacc->method = PCI_ACCESS_SYS_BUS_PCI;
	if (sysfs_path)
		pci_set_param(pacc, "sysfs.path", (char *)sysfs_path);
	pci_init(pacc);
	pci_scan_bus(pacc);

	for (struct pci_dev *d = pacc->devices; d; d = d->next) {
		const char *driver, *group;
		PciDevice *a, *dev;

		pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_DRIVER | PCI_FILL_IOMMU_GROUP);
		driver = pci_get_string_property(d, PCI_FILL_DRIVER);
		/* vfio-pci and its variant drivers (mlx5_vfio_pci, ...): all pass a device through */
		if (!driver || !strstr(driver, "vfio"))
			continue;

		a = reallocarray(list, count + 1, sizeof(PciDevice));
		if (!a)
			return -ENOMEM;
		list = a;
		dev = &list[count++];
		*dev = (PciDevice){ .vendor_id = d->vendor_id, .device_id = d->device_id, .iommu_group = -1 };
		snprintf(dev->slot, sizeof(dev->slot), "%04x:%02x:%02x.%d", d->domain, d->bus, d->dev,
			 d->func);
		snprintf(dev->driver, sizeof(dev->driver), "%s", driver);
		group = pci_get_string_property(d, PCI_FILL_IOMMU_GROUP);
		if (group)
			dev->iommu_group = atoi(group);
	}

	*n = count;
	*ret = TAKE_PTR(list);
	return 0;
}

bool pci_variant_driver(const PciDevice *d)
{
	return strcmp(d->driver, "vfio-pci") != 0;
}

void pci_format_devices(const PciDevice *devs, size_t n, char *buf, size_t size)
{
	/* room kept for the tail, so that the count of the rest always fits */
	static const size_t tail_max = sizeof(", and 18446744073709551615 more");
	size_t used = 0, i;

	if (size == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		char one[96], group[32] = "no IOMMU group";
		size_t len;

		if (devs[i].iommu_group >= 0)
			snprintf(group, sizeof(group), "IOMMU group %d", devs[i].iommu_group);
		len = (size_t)snprintf(one, sizeof(one), "%s%s [%04x:%04x] %s", i ? ", " : "",
				       devs[i].slot, devs[i].vendor_id, devs[i].device_id, group);
		if (used + len + (i + 1 < n ? tail_max : 0) >= size)
			break;
		memcpy(buf + used, one, len + 1);
		used += len;
	}
	if (i < n)
		snprintf(buf + used, size - used, "%sand %zu more", i ? ", " : "", n - i);
}
