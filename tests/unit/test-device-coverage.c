/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The coverage check: devices bound to vfio-pci x slots the VMMs preserved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "device-coverage.h"
#include "macro.h"

static PciDevice dev(const char *slot, uint16_t device_id, int group)
{
	PciDevice d = { .vendor_id = 0x1234, .device_id = device_id, .iommu_group = group };

	snprintf(d.slot, sizeof(d.slot), "%s", slot);
	snprintf(d.driver, sizeof(d.driver), "vfio-pci");
	return d;
}

static void test_all_covered(void **state)
{
	PciDevice bound[] = { dev("0000:00:07.0", 0x11e8, 2), dev("0000:00:08.0", 0x11e8, 3) };
	PciSlot preserved[] = { "0000:00:08.0", "0000:00:09.0", "0000:00:07.0" };

	assert_int_equal(device_uncovered(bound, ARRAY_SIZE(bound), preserved, ARRAY_SIZE(preserved)),
			 0);
	/* nothing bound: nothing to cover */
	assert_int_equal(device_uncovered(bound, 0, preserved, ARRAY_SIZE(preserved)), 0);
}

static void test_uncovered(void **state)
{
	PciDevice bound[] = { dev("0000:00:05.0", 0x1, 1), dev("0000:00:06.0", 0x2, 2),
			      dev("0000:00:07.0", 0x3, 3), dev("0000:00:08.0", 0x4, -1) };
	PciSlot preserved[] = { "0000:00:06.0" };
	char msg[512];

	/* the uncovered come first, in their order */
	assert_int_equal(device_uncovered(bound, ARRAY_SIZE(bound), preserved, ARRAY_SIZE(preserved)),
			 3);
	assert_string_equal(bound[0].slot, "0000:00:05.0");
	assert_string_equal(bound[1].slot, "0000:00:07.0");
	assert_string_equal(bound[2].slot, "0000:00:08.0");

	device_uncovered_message(bound, 3, msg, sizeof(msg));
	assert_string_equal(msg, "0000:00:05.0 [1234:0001] IOMMU group 1, 0000:00:07.0 [1234:0003] "
				 "IOMMU group 3, 0000:00:08.0 [1234:0004] no IOMMU group are bound "
				 "to vfio-pci but no VMM preserved them: the update would reset them "
				 "under their guests");

	/* none preserved */
	assert_int_equal(device_uncovered(bound, 1, NULL, 0), 1);
}

static void test_message(void **state)
{
	PciDevice one[] = { dev("0000:00:07.0", 0x11e8, 2) };
	PciDevice many[60];
	char msg[512], small[120];

	device_uncovered_message(one, 1, msg, sizeof(msg));
	assert_string_equal(msg, "0000:00:07.0 [1234:11e8] IOMMU group 2 is bound to vfio-pci but no "
				 "VMM preserved it: the update would reset it under its guest");

	/* too many to name: counted, and the sentence still ends the message */
	for (size_t i = 0; i < ARRAY_SIZE(many); i++) {
		char slot[16];

		snprintf(slot, sizeof(slot), "0000:%02zx:00.0", i);
		many[i] = dev(slot, 0x11e8, (int)i);
	}
	device_uncovered_message(many, ARRAY_SIZE(many), msg, sizeof(msg));
	assert_true(strlen(msg) < sizeof(msg));
	assert_non_null(strstr(msg, " more are bound to vfio-pci but no VMM preserved them"));
	assert_non_null(strstr(msg, "0000:00:00.0 [1234:11e8] IOMMU group 0, "));

	device_uncovered_message(many, ARRAY_SIZE(many), small, sizeof(small));
	assert_true(strlen(small) < sizeof(small));
	assert_non_null(strstr(small, "would reset them under their guests"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_covered),
		cmocka_unit_test(test_uncovered),
		cmocka_unit_test(test_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
