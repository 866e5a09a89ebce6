/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The passed-through devices as status shows them: every device bound to
 * vfio-pci, whether the kernels can carry it over, and how far its
 * hand-over has come. Before the kexec the devices come from libpci;
 * after it the preserved ones come from the manifest, and libpci may or
 * may not list them again.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "pci.h"

typedef enum DeviceHandover {
	DEVICE_HANDOVER_NONE,            /* not preserved */
	DEVICE_HANDOVER_PRESERVED,       /* in the update in flight, before the kexec */
	DEVICE_HANDOVER_RESTORED_DOMAIN, /* after it, its VMM's session not finished: the
					  * device translates through the handed-over tables */
	DEVICE_HANDOVER_HOT_SWAPPED,     /* its session finished: the kernel moved it to the
					  * VMM's new domain and freed the old tables */
	_DEVICE_HANDOVER_MAX,
} DeviceHandover;

/* A device a VMM preserved through the daemon. */
typedef struct DeviceTrack {
	const char *slot;
	const char *vm_id;
	DeviceHandover handover;
	int finish_error; /* the kernel refused its VMM's FINISH: negative errno; else 0 */
} DeviceTrack;

const char *device_handover_to_string(DeviceHandover h);

/*
 * The status' "devices": the bound devices in their order, then the
 * tracked ones libpci does not list; each once. A tracked device in state
 * none is shown as not preserved. preservable and reason (NULL when it
 * is) are the kernels' (device-support.h), the same for every device.
 */
json_object *device_status_json(const PciDevice *bound, size_t n_bound, const DeviceTrack *tracked,
				size_t n_tracked, bool preservable, const char *reason);
