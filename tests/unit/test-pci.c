/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pci_passthrough_devices() through the real libpci, pointed at a sysfs
 * tree of our own: one device bound to vfio-pci (in IOMMU group 7), one
 * bound to another driver, one unbound.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "pci.h"

static char root[] = "/tmp/test-pci-XXXXXX";

static void put(const char *dir, const char *name, const void *data, size_t len)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void device(const char *slot, uint16_t vendor, uint16_t dev, const char *driver, int group)
{
	char dir[512], buf[128], link[600];
	uint8_t config[256] = { 0 };

	snprintf(dir, sizeof(dir), "%s/devices/%s", root, slot);
	assert_int_equal(mkdir(dir, 0755), 0);
	memcpy(config, &vendor, 2);
	memcpy(config + 2, &dev, 2);
	config[0x0b] = 0xff;
	put(dir, "config", config, sizeof(config));
	snprintf(buf, sizeof(buf), "0x%04x\n", vendor);
	put(dir, "vendor", buf, strlen(buf));
	snprintf(buf, sizeof(buf), "0x%04x\n", dev);
	put(dir, "device", buf, strlen(buf));
	put(dir, "class", "0xff0000\n", 9);
	put(dir, "irq", "0\n", 2);
	if (driver) {
		snprintf(buf, sizeof(buf), "../../drivers/%s", driver);
		snprintf(link, sizeof(link), "%s/driver", dir);
		assert_int_equal(symlink(buf, link), 0);
	}
	if (group >= 0) {
		snprintf(buf, sizeof(buf), "../../groups/%d", group);
		snprintf(link, sizeof(link), "%s/iommu_group", dir);
		assert_int_equal(symlink(buf, link), 0);
	}
}

static int setup(void **state)
{
	char cmd[300];

	if (!mkdtemp(root))
		return -1;
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/devices %s/drivers/vfio-pci %s/drivers/e1000 %s/groups/7",
		 root, root, root, root);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_passthrough(void **state)
{
	_cleanup_free_ PciDevice *devs = NULL;
	size_t n = 99;

	device("0000:00:03.0", 0x1234, 0x11e8, "vfio-pci", 7);
	device("0000:00:04.0", 0x8086, 0x100e, "e1000", -1);
	device("0000:00:05.0", 0x1af4, 0x1000, NULL, -1);

	assert_int_equal(pci_passthrough_devices(root, &devs, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(devs[0].slot, "0000:00:03.0");
	assert_int_equal(devs[0].vendor_id, 0x1234);
	assert_int_equal(devs[0].device_id, 0x11e8);
	assert_string_equal(devs[0].driver, "vfio-pci");
	assert_int_equal(devs[0].iommu_group, 7);
}

static void test_no_pci_at_all(void **state)
{
	_cleanup_free_ PciDevice *devs = NULL;
	size_t n = 99;

	/* libpci would exit() the process here; we must return before it, with an error */
	assert_int_equal(pci_passthrough_devices("/nonexistent/bus/pci", &devs, &n), -ENOENT);
	assert_int_equal(n, 0);
	assert_null(devs);
}

static void test_format_devices(void **state)
{
	PciDevice devs[40];
	char buf[512], tiny[40];

	for (size_t i = 0; i < ARRAY_SIZE(devs); i++)
		devs[i] = (PciDevice){ .vendor_id = 0x1234, .device_id = 0x11e8,
				       .iommu_group = (int)i - 1 };
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++)
		snprintf(devs[i].slot, sizeof(devs[i].slot), "0000:00:%02zx.0", i);

	pci_format_devices(devs, 0, buf, sizeof(buf));
	assert_string_equal(buf, "");
	pci_format_devices(devs, 2, buf, sizeof(buf));
	assert_string_equal(buf, "0000:00:00.0 [1234:11e8] no IOMMU group, "
				 "0000:00:01.0 [1234:11e8] IOMMU group 0");

	/* too many for the buffer: the rest are counted, never cut mid-name */
	pci_format_devices(devs, ARRAY_SIZE(devs), buf, sizeof(buf));
	assert_true(strlen(buf) < sizeof(buf));
	assert_non_null(strstr(buf, "0000:00:01.0 [1234:11e8] IOMMU group 0, "));
	assert_null(strstr(buf, "0000:00:27.0"));
	{
		const char *tail = strstr(buf, ", and ");
		unsigned shown = 0, more = 0;

		assert_non_null(tail);
		assert_int_equal(sscanf(tail, ", and %u more", &more), 1);
		for (const char *p = buf; (p = strstr(p, "[1234:11e8]")); p++)
			shown++;
		assert_int_equal(shown + more, ARRAY_SIZE(devs));
		assert_string_equal(tail + strlen(tail) - 5, " more");
	}

	/* not even one fits: only the count */
	pci_format_devices(devs, 3, tiny, sizeof(tiny));
	assert_string_equal(tiny, "and 3 more");
	pci_format_devices(devs, 3, tiny, 4);
	assert_string_equal(tiny, "and");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passthrough),
		cmocka_unit_test(test_no_pci_at_all),
		cmocka_unit_test(test_format_devices),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
