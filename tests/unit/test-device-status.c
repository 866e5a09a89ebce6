/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The status' "devices", in each state of a device's hand-over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "device-status.h"
#include "macro.h"

static PciDevice dev(const char *slot, int group)
{
	PciDevice d = { .vendor_id = 0x1234, .device_id = 0x11e8, .iommu_group = group };

	snprintf(d.slot, sizeof(d.slot), "%s", slot);
	snprintf(d.driver, sizeof(d.driver), "vfio-pci");
	return d;
}

static const char *plain(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE);
}

static void expect_json(json_object *o, const char *want)
{
	assert_non_null(o);
	assert_string_equal(plain(o), want);
	json_object_put(o);
}

static void test_not_preserved(void **state)
{
	PciDevice bound[] = { dev("0000:00:07.0", 2) };

	expect_json(device_status_json(bound, 1, NULL, 0, true, NULL),
		    "[{\"slot\":\"0000:00:07.0\",\"id\":\"1234:11e8\",\"driver\":\"vfio-pci\","
		    "\"iommu_group\":2,\"preservable\":true,\"reason\":null,\"handover\":\"none\","
		    "\"vm_id\":null,\"finish_error\":null}]");
	/* not preservable: why; a tracked device in state none is not preserved */
	{
		DeviceTrack t = { .slot = "0000:00:07.0", .vm_id = "vm-1",
				  .handover = DEVICE_HANDOVER_NONE };

		expect_json(device_status_json(bound, 1, &t, 1, false, "The running kernel lacks X"),
			    "[{\"slot\":\"0000:00:07.0\",\"id\":\"1234:11e8\",\"driver\":\"vfio-pci\","
			    "\"iommu_group\":2,\"preservable\":false,"
			    "\"reason\":\"The running kernel lacks X\",\"handover\":\"none\","
			    "\"vm_id\":null,\"finish_error\":null}]");
	}
	expect_json(device_status_json(NULL, 0, NULL, 0, true, NULL), "[]");
}

static void test_each_state(void **state)
{
	static const struct {
		DeviceHandover h;
		const char *name;
	} states[] = {
		{ DEVICE_HANDOVER_PRESERVED, "preserved" },
		{ DEVICE_HANDOVER_RESTORED_DOMAIN, "restored-domain" },
		{ DEVICE_HANDOVER_HOT_SWAPPED, "hot-swapped" },
	};
	PciDevice bound[] = { dev("0000:00:07.0", 2), dev("0000:00:08.0", -1) };

	for (size_t i = 0; i < ARRAY_SIZE(states); i++) {
		DeviceTrack t = { .slot = "0000:00:08.0", .vm_id = "vm-2", .handover = states[i].h };
		char want[1024];

		snprintf(want, sizeof(want),
			 "[{\"slot\":\"0000:00:07.0\",\"id\":\"1234:11e8\",\"driver\":\"vfio-pci\","
			 "\"iommu_group\":2,\"preservable\":true,\"reason\":null,\"handover\":\"none\","
			 "\"vm_id\":null,\"finish_error\":null},"
			 "{\"slot\":\"0000:00:08.0\",\"id\":\"1234:11e8\",\"driver\":\"vfio-pci\","
			 "\"iommu_group\":-1,\"preservable\":true,\"reason\":null,\"handover\":\"%s\","
			 "\"vm_id\":\"vm-2\",\"finish_error\":null}]", states[i].name);
		expect_json(device_status_json(bound, ARRAY_SIZE(bound), &t, 1, true, NULL), want);
	}
	assert_null(device_handover_to_string(_DEVICE_HANDOVER_MAX));
}

static void test_after_the_kexec(void **state)
{
	/* libpci does not list the handed-over device: the manifest's record stands alone */
	DeviceTrack t[] = {
		{ .slot = "0000:00:07.0", .vm_id = "vm-1", .handover = DEVICE_HANDOVER_RESTORED_DOMAIN,
		  .finish_error = -EBUSY },
		/* a second record of the same slot is not listed again */
		{ .slot = "0000:00:07.0", .vm_id = "vm-9", .handover = DEVICE_HANDOVER_HOT_SWAPPED },
		{ .slot = "0000:00:09.0", .vm_id = "vm-3", .handover = DEVICE_HANDOVER_NONE },
	};

	expect_json(device_status_json(NULL, 0, t, ARRAY_SIZE(t), true, NULL),
		    "[{\"slot\":\"0000:00:07.0\",\"id\":null,\"driver\":null,\"iommu_group\":null,"
		    "\"preservable\":true,\"reason\":null,\"handover\":\"restored-domain\","
		    "\"vm_id\":\"vm-1\",\"finish_error\":\"EBUSY\"}]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_preserved),
		cmocka_unit_test(test_each_state),
		cmocka_unit_test(test_after_the_kexec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
