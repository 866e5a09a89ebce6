/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "device-status.h"
#include "macro.h"
#include "string-util.h"

static const char *const handover_table[_DEVICE_HANDOVER_MAX] = {
	[DEVICE_HANDOVER_NONE] = "none",
	[DEVICE_HANDOVER_PRESERVED] = "preserved",
	[DEVICE_HANDOVER_RESTORED_DOMAIN] = "restored-domain",
	[DEVICE_HANDOVER_HOT_SWAPPED] = "hot-swapped",
};

const char *device_handover_to_string(DeviceHandover h)
{
	return (unsigned)h < ARRAY_SIZE(handover_table) ? handover_table[h] : NULL;
}

static const DeviceTrack *find_track(const DeviceTrack *tracked, size_t n, const char *slot)
{
	for (size_t i = 0; i < n; i++)
		if (tracked[i].handover != DEVICE_HANDOVER_NONE &&
		    strcmp(tracked[i].slot, slot) == 0)
			return &tracked[i];
	return NULL;
}

static bool is_bound(const PciDevice *bound, size_t n, const char *slot)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(bound[i].slot, slot) == 0)
			return true;
	return false;
}

/* dev NULL: a tracked device libpci does not list, of which only the slot is known. */
static json_object *device_json(const char *slot, const PciDevice *dev, const DeviceTrack *t,
				bool preservable, const char *reason)
{
	json_object *d = json_object_new_object();
	const char *finish = NULL;
	char id[16], variant[128];

	if (dev && pci_variant_driver(dev)) {
		snprintf(variant, sizeof(variant), "Bound to %s: only vfio-pci itself is handed over",
			 dev->driver);
		preservable = false;
		reason = variant;
	}

	if (t && t->finish_error)
		finish = errno_to_name(t->finish_error) ?: "unknown";

	json_object_object_add(d, "slot", json_object_new_string(slot));
	if (dev)
		snprintf(id, sizeof(id), "%04x:%04x", dev->vendor_id, dev->device_id);
	json_object_object_add(d, "id", dev ? json_object_new_string(id) : NULL);
	json_object_object_add(d, "driver", dev ? json_object_new_string(dev->driver) : NULL);
	json_object_object_add(d, "iommu_group",
			       dev ? json_object_new_int(dev->iommu_group) : NULL);
	json_object_object_add(d, "preservable", json_object_new_boolean(preservable));
	json_object_object_add(d, "reason",
			       !preservable && reason ? json_object_new_string(reason) : NULL);
	json_object_object_add(d, "handover",
			       json_object_new_string(device_handover_to_string(
				       t ? t->handover : DEVICE_HANDOVER_NONE)));
	json_object_object_add(d, "vm_id", t ? json_object_new_string(t->vm_id) : NULL);
	json_object_object_add(d, "finish_error", finish ? json_object_new_string(finish) : NULL);
	return d;
}

json_object *device_status_json(const PciDevice *bound, size_t n_bound, const DeviceTrack *tracked,
				size_t n_tracked, bool preservable, const char *reason)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n_bound; i++)
		json_object_array_add(a, device_json(bound[i].slot, &bound[i],
						     find_track(tracked, n_tracked, bound[i].slot),
						     preservable, reason));
	for (size_t i = 0; i < n_tracked; i++) {
		const DeviceTrack *t = &tracked[i];

		/* once each: the first record of a slot speaks for it */
		if (t->handover == DEVICE_HANDOVER_NONE || is_bound(bound, n_bound, t->slot) ||
		    find_track(tracked, i, t->slot))
			continue;
		json_object_array_add(a, device_json(t->slot, NULL, t, preservable, reason));
	}
	return a;
}
