/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Whether a kernel can carry passed-through devices over, from its config:
 * the running kernel's (config-$(uname -r) in a boot directory of our own)
 * and the next one's (a config file named by prepare), a config that lacks
 * options, and none at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "device-support.h"
#include "kconfig.h"
#include "macro.h"

#define ALL_FIVE                                                                                   \
	"CONFIG_PCI_LIVEUPDATE=y\nCONFIG_IOMMU_LIVEUPDATE=y\nCONFIG_INTEL_IOMMU_LIVEUPDATE=y\n"    \
	"CONFIG_IOMMUFD_LIVEUPDATE=y\nCONFIG_VFIO_PCI_LIVEUPDATE=y\n"

static char dir[] = "/tmp/test-device-support-XXXXXX";

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	fclose(f);
}

static const char *path_of(const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_next_kernel(void **state)
{
	_cleanup_(device_support_done) DeviceSupport s = {};
	char why[512];

	put("config-7.3.0", "CONFIG_LIVEUPDATE=y\n" ALL_FIVE);
	assert_int_equal(device_support_read(&s, "7.3.0", path_of("config-7.3.0")), 0);
	assert_true(device_support_ok(&s));
	device_support_explain(&s, "next", why, sizeof(why));
	assert_string_equal(why, "");

	/* =m is no good: the handlers must be there before /dev/liveupdate is opened */
	put("config-7.2.0", "CONFIG_PCI_LIVEUPDATE=y\nCONFIG_IOMMU_LIVEUPDATE=y\n"
			    "CONFIG_INTEL_IOMMU_LIVEUPDATE=y\nCONFIG_IOMMUFD_LIVEUPDATE=m\n"
			    "# CONFIG_VFIO_PCI_LIVEUPDATE is not set\n");
	assert_int_equal(device_support_read(&s, "7.2.0", path_of("config-7.2.0")), 0);
	assert_false(device_support_ok(&s));
	assert_int_equal(s.n_missing, 2);
	assert_string_equal(s.missing, "CONFIG_IOMMUFD_LIVEUPDATE, CONFIG_VFIO_PCI_LIVEUPDATE");
	device_support_explain(&s, "next", why, sizeof(why));
	assert_non_null(strstr(why, "The next kernel (linux 7.2.0) lacks CONFIG_IOMMUFD_LIVEUPDATE, "
				    "CONFIG_VFIO_PCI_LIVEUPDATE in "));
	assert_non_null(strstr(why, "/config-7.2.0"));

	/* an empty config lacks all five */
	put("config-empty", "");
	assert_int_equal(device_support_read(&s, "x", path_of("config-empty")), 0);
	assert_int_equal(s.n_missing, 5);

	/* no file: unknown, which is no */
	assert_int_equal(device_support_read(&s, "7.4.0", path_of("config-7.4.0")), 0);
	assert_false(device_support_ok(&s));
	assert_int_equal(s.error, -ENOENT);
	device_support_explain(&s, "next", why, sizeof(why));
	assert_non_null(strstr(why, "The next kernel (linux 7.4.0) has no "));
	assert_non_null(strstr(why, "config-7.4.0 to tell whether it can carry devices over"));

	/* nothing read yet */
	device_support_done(&s);
	assert_false(device_support_ok(&s));
	device_support_explain(&s, "next", why, 8);
	assert_int_equal(strlen(why), 7);
}

static void test_running_kernel(void **state)
{
	_cleanup_(device_support_done) DeviceSupport s = {};
	struct utsname u;
	char name[128], why[512];

	assert_int_equal(uname(&u), 0);
	snprintf(name, sizeof(name), "config-%s", u.release);

	/* no config of the running release in the boot directory */
	assert_int_equal(device_support_running(&s, dir), 0);
	assert_false(device_support_ok(&s));
	assert_int_equal(s.error, -ENOENT);
	assert_string_equal(s.release, u.release);
	device_support_explain(&s, "running", why, sizeof(why));
	assert_true(strncmp(why, "The running kernel (linux ", 26) == 0);
	assert_non_null(strstr(why, name));

	put(name, "CONFIG_PCI_LIVEUPDATE=y\n");
	assert_int_equal(device_support_running(&s, dir), 0);
	assert_int_equal(s.n_missing, 4);
	assert_string_equal(s.missing, "CONFIG_IOMMU_LIVEUPDATE, CONFIG_INTEL_IOMMU_LIVEUPDATE, "
				       "CONFIG_IOMMUFD_LIVEUPDATE, CONFIG_VFIO_PCI_LIVEUPDATE");
	device_support_explain(&s, "running", why, sizeof(why));
	assert_non_null(strstr(why, " lacks CONFIG_IOMMU_LIVEUPDATE, "));

	put(name, ALL_FIVE);
	assert_int_equal(device_support_running(&s, dir), 0);
	assert_true(device_support_ok(&s));
	assert_string_equal(s.config, path_of(name));
}

static void test_kconfig(void **state)
{
	const char *opts[KCONFIG_OPTIONS_MAX + 1] = { "CONFIG_A", "CONFIG_B" };
	char missing[64];

	put("config-k", "CONFIG_A=y\nCONFIG_AB=y\nCONFIG_B=yes\n");
	assert_int_equal(kconfig_missing(path_of("config-k"), opts, 2, missing, sizeof(missing)), 1);
	assert_string_equal(missing, "CONFIG_B");
	assert_int_equal(kconfig_missing(path_of("config-k"), opts, 0, missing, sizeof(missing)), 0);
	assert_int_equal(kconfig_missing(path_of("config-k"), opts, ARRAY_SIZE(opts), missing,
					 sizeof(missing)), -EINVAL);
	assert_int_equal(kconfig_missing(path_of("nope"), opts, 2, missing, sizeof(missing)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_kernel),
		cmocka_unit_test(test_running_kernel),
		cmocka_unit_test(test_kconfig),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
