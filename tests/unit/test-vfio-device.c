/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vfio_device_slot() on a sysfs tree of our own: /dev/null stands in for
 * a VFIO device file, its /sys/dev/char/MAJ:MIN made to lead where the
 * kernel's would for /dev/vfio/devices/vfio0 of 0000:00:07.0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "macro.h"
#include "pci-slot.h"
#include "vfio-device.h"

static char root[] = "/tmp/test-vfio-device-XXXXXX";
static char char_link[600];

#define SH(...)                                                       \
	do {                                                          \
		char cmd_[1024];                                      \
                                                                      \
		snprintf(cmd_, sizeof(cmd_), __VA_ARGS__);            \
		assert_int_equal(system(cmd_), 0);                    \
	} while (0)

/* /sys/dev/char/MAJ:MIN of /dev/null -> target */
static void char_dev_links_to(const char *target)
{
	(void)unlink(char_link);
	if (target)
		assert_int_equal(symlink(target, char_link), 0);
}

static int setup(void **state)
{
	struct stat st;

	if (!mkdtemp(root) || stat("/dev/null", &st) < 0)
		return -1;
	SH("mkdir -p %s/dev/char %s/devices/pci0000:00/0000:00:07.0/vfio-dev/vfio0 "
	   "%s/devices/virtual/mem/null", root, root, root);
	SH("ln -s ../../../0000:00:07.0 %s/devices/pci0000:00/0000:00:07.0/vfio-dev/vfio0/device",
	   root);
	snprintf(char_link, sizeof(char_link), "%s/dev/char/%u:%u", root, major(st.st_rdev),
		 minor(st.st_rdev));
	return 0;
}

static int teardown(void **state)
{
	SH("rm -rf %s", root);
	return 0;
}

static void test_slot(void **state)
{
	_cleanup_close_ int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	PciSlot slot = "";

	assert_true(fd >= 0);
	char_dev_links_to("../../devices/pci0000:00/0000:00:07.0/vfio-dev/vfio0");
	assert_int_equal(vfio_device_slot(fd, root, slot), 0);
	assert_string_equal(slot, "0000:00:07.0");
}

static void test_not_a_vfio_device(void **state)
{
	_cleanup_close_ int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int mem = memfd_create("ram", MFD_CLOEXEC);
	PciSlot slot = "unchanged";

	assert_true(fd >= 0 && mem >= 0);
	/* a memfd is no device at all */
	assert_int_equal(vfio_device_slot(mem, root, slot), -ENODEV);
	/* a char device sysfs does not know */
	char_dev_links_to(NULL);
	assert_int_equal(vfio_device_slot(fd, root, slot), -ENODEV);
	/* a char device of another class (what /dev/null really is) */
	char_dev_links_to("../../devices/virtual/mem/null");
	assert_int_equal(vfio_device_slot(fd, root, slot), -ENODEV);
	/* a vfio-dev whose parent is no PCI function */
	SH("mkdir -p %s/devices/platform/foo/vfio-dev/vfio1 && "
	   "ln -s ../../../foo %s/devices/platform/foo/vfio-dev/vfio1/device", root, root);
	char_dev_links_to("../../devices/platform/foo/vfio-dev/vfio1");
	assert_int_equal(vfio_device_slot(fd, root, slot), -ENODEV);
	/* a vfio-dev without its device link */
	SH("mkdir -p %s/devices/pci0000:00/0000:00:08.0/vfio-dev/vfio2", root);
	char_dev_links_to("../../devices/pci0000:00/0000:00:08.0/vfio-dev/vfio2");
	assert_int_equal(vfio_device_slot(fd, root, slot), -ENODEV);
	assert_string_equal(slot, "unchanged");
}

/* Without sysfs no device can be told from a plain file: an error, never "no device". */
static void test_no_sysfs(void **state)
{
	_cleanup_close_ int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int mem = memfd_create("ram", MFD_CLOEXEC);
	PciSlot slot = "unchanged";

	assert_true(fd >= 0 && mem >= 0);
	assert_int_equal(vfio_device_slot(fd, "/nonexistent", slot), -ENOENT);
	/* a memfd needs no sysfs to be no device */
	assert_int_equal(vfio_device_slot(mem, "/nonexistent", slot), -ENODEV);
	assert_string_equal(slot, "unchanged");
}

static void test_slot_valid(void **state)
{
	assert_true(pci_slot_valid("0000:00:07.0"));
	assert_true(pci_slot_valid("0000:ff:1f.7"));
	assert_true(pci_slot_valid("10000:3a:00.1"));
	assert_true(pci_slot_valid("ffffffff:ff:1f.7"));
	assert_false(pci_slot_valid(NULL));
	assert_false(pci_slot_valid(""));
	assert_false(pci_slot_valid("000:00:07.0"));       /* short domain */
	assert_false(pci_slot_valid("1ffffffff:00:07.0")); /* long domain */
	assert_false(pci_slot_valid("0000:00:20.0"));      /* device > 0x1f */
	assert_false(pci_slot_valid("0000:00:07.8"));      /* function > 7 */
	assert_false(pci_slot_valid("0000:00:07"));
	assert_false(pci_slot_valid("0000:0A:07.0"));      /* upper case */
	assert_false(pci_slot_valid("0000:00:07.0 "));
	assert_false(pci_slot_valid("0000-00:07.0"));
	assert_false(pci_slot_valid("../00:07.0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot),
		cmocka_unit_test(test_no_sysfs),
		cmocka_unit_test(test_not_a_vfio_device),
		cmocka_unit_test(test_slot_valid),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
