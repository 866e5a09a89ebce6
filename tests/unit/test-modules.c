/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * modules_load() through the real libkmod, against a modules tree of our
 * own: depmod indexes a modules.builtin that names vfio-pci, so lookups,
 * aliases (vfio-pci vs vfio_pci) and the built-in case are libkmod's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "macro.h"
#include "modules.h"

static char root[] = "/tmp/test-modules-XXXXXX";
static char dir[256];

static int setup(void **state)
{
	char cmd[1024];
	FILE *f;

	if (!mkdtemp(root))
		return -1;
	snprintf(dir, sizeof(dir), "%s/lib/modules/9.9.9", root);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && touch %s/modules.order", dir, dir);
	if (system(cmd) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s/modules.builtin", dir);
	f = fopen(cmd, "w");
	if (!f)
		return -1;
	fputs("kernel/drivers/vfio/pci/vfio-pci.ko\nkernel/drivers/iommu/iommufd/iommufd.ko\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "depmod -b %s 9.9.9 2>/dev/null || /sbin/depmod -b %s 9.9.9 2>/dev/null",
		 root, root);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_builtin(void **state)
{
	char *both[] = { "vfio-pci", "iommufd" }, *underscore[] = { "vfio_pci" };
	const char *failed = NULL;

	assert_int_equal(modules_load(dir, both, 2, &failed), 0);
	assert_null(failed);
	assert_int_equal(modules_load(dir, underscore, 1, &failed), 0);
	assert_int_equal(modules_load(dir, NULL, 0, &failed), 0);
}

static void test_unknown_names_the_culprit(void **state)
{
	char *names[] = { "vfio-pci", "no_such_module" };
	const char *failed = NULL;

	assert_int_equal(modules_load(dir, names, 2, &failed), -ENOENT);
	assert_string_equal(failed, "no_such_module");
}

static void test_for_fd(void **state)
{
	const char *module = "unset";
	int p[2], fd = memfd_create("ram", MFD_CLOEXEC);

	assert_true(fd >= 0);
	/* memfd: the handler is built in */
	assert_int_equal(modules_for_fd(fd, &module), 0);
	assert_null(module);
	close(fd);

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(modules_for_fd(p[0], &module), -EOPNOTSUPP);
	close(p[0]);
	close(p[1]);

	/* a device node on devtmpfs, whose statfs says tmpfs: not a memfd */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	module = "unset";
	assert_int_equal(modules_for_fd(fd, &module), -EOPNOTSUPP);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_unknown_names_the_culprit),
		cmocka_unit_test(test_for_fd),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
