/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "device-coverage.h"

static bool preserved_by_some(const char *slot, const PciSlot *preserved, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(preserved[i], slot) == 0)
			return true;
	return false;
}

size_t device_uncovered(PciDevice *bound, size_t n_bound, const PciSlot *preserved,
			size_t n_preserved)
{
	size_t k = 0;

	for (size_t i = 0; i < n_bound; i++) {
		PciDevice d;

		if (preserved_by_some(bound[i].slot, preserved, n_preserved))
			continue;
		/* the uncovered keep their order; the covered ones are not needed */
		d = bound[i];
		bound[i] = bound[k];
		bound[k++] = d;
	}
	return k;
}

void device_uncovered_message(const PciDevice *devs, size_t n, char *buf, size_t size)
{
	static const char one[] = " is bound to vfio-pci but no VMM preserved it: the update would "
				  "reset it under its guest";
	static const char many[] = " are bound to vfio-pci but no VMM preserved them: the update "
				   "would reset them under their guests";
	const char *tail = n == 1 ? one : many;
	size_t len;

	if (size == 0)
		return;
	/* the list gets what the sentence leaves */
	if (size <= sizeof(many)) {
		snprintf(buf, size, "%s", tail + 1);
		return;
	}
	pci_format_devices(devs, n, buf, size - strlen(tail));
	len = strlen(buf);
	snprintf(buf + len, size - len, "%s", tail);
}
