/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "macro.h"
#include "next-kernel.h"

/* A memfd holding a boot header: "HdrS", the version pointer, the string. */
static int image(const char *version, size_t version_len, uint16_t ptr, size_t size)
{
	int fd = memfd_create("bzImage", MFD_CLOEXEC);
	uint8_t p[2] = { ptr & 0xff, ptr >> 8 };

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(pwrite(fd, "HdrS", 4, 0x202), 4);
	assert_int_equal(pwrite(fd, p, 2, 0x20e), 2);
	if (version)
		assert_int_equal(pwrite(fd, version, version_len, 0x200 + ptr), (ssize_t)version_len);
	return fd;
}

static int release_of(const char *version, size_t len, uint16_t ptr, size_t size, char *ret)
{
	_cleanup_close_ int fd = image(version, len, ptr, size);

	return next_kernel_release(fd, ret);
}

static void test_release(void **state)
{
	char r[NEXT_KERNEL_RELEASE_MAX];
	const char *v = "7.3.0-rc7 (builder@host) #1 SMP";

	assert_int_equal(release_of(v, strlen(v) + 1, 0x200, 4096, r), 0);
	assert_string_equal(r, "7.3.0-rc7");
	/* a release alone, NUL-terminated */
	assert_int_equal(release_of("6.1.0-13-amd64", 15, 0x300, 4096, r), 0);
	assert_string_equal(r, "6.1.0-13-amd64");
}

static void test_release_refused(void **state)
{
	char r[NEXT_KERNEL_RELEASE_MAX], big[200];
	_cleanup_close_ int none = memfd_create("x", MFD_CLOEXEC);

	/* no magic */
	assert_int_equal(ftruncate(none, 4096), 0);
	assert_int_equal(next_kernel_release(none, r), -ENOEXEC);
	/* no version pointer */
	assert_int_equal(release_of(NULL, 0, 0, 4096, r), -ENODATA);
	/* the pointer leads past the end of the file */
	assert_int_equal(release_of(NULL, 0, 0x7000, 4096, r), -ENODATA);
	/* the string runs to the end of the file without ending */
	assert_int_equal(release_of("7.3.0", 5, 0xdfb, 4096, r), -ENODATA);
	/* longer than a release can be, no space or NUL in reach */
	memset(big, 'x', sizeof(big));
	assert_int_equal(release_of(big, sizeof(big), 0x200, 4096, r), -ENODATA);
	/* an empty first word, a path, a control character */
	assert_int_equal(release_of(" 7.3", 5, 0x200, 4096, r), -ENODATA);
	assert_int_equal(release_of("../x y", 7, 0x200, 4096, r), -ENODATA);
	assert_int_equal(release_of("7.3\t1 y", 8, 0x200, 4096, r), -ENODATA);
}

static int check(const char *text, char *missing, size_t size)
{
	char path[] = "/tmp/test-next-kernel-XXXXXX";
	int fd = mkstemp(path), r;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	r = next_kernel_check_config(path, missing, size);
	unlink(path);
	return r;
}

static void test_config(void **state)
{
	char missing[256], small[20];
	_cleanup_free_ char *long_line = NULL;

	assert_int_equal(check("CONFIG_KEXEC_HANDOVER=y\nCONFIG_LIVEUPDATE=y\n"
			       "CONFIG_LIVEUPDATE_MEMFD=y\n", missing, sizeof(missing)), 0);
	assert_string_equal(missing, "");
	assert_int_equal(check("CONFIG_KEXEC_HANDOVER=y\n# CONFIG_LIVEUPDATE is not set\n"
			       "CONFIG_LIVEUPDATE_MEMFD=m\nCONFIG_LIVEUPDATE_FOO=y\n",
			       missing, sizeof(missing)), 2);
	assert_string_equal(missing, "CONFIG_LIVEUPDATE, CONFIG_LIVEUPDATE_MEMFD");
	/* the count is right even when the names do not fit */
	assert_int_equal(check("", small, sizeof(small)), 3);
	assert_int_equal(next_kernel_check_config("/nonexistent/config", missing, sizeof(missing)),
			 -ENOENT);

	/*
	 * The reader takes a line in 511-byte pieces: the piece after the
	 * first of a long line must not count as a line of its own.
	 */
	long_line = malloc(1024);
	assert_non_null(long_line);
	strcpy(long_line, "CONFIG_CMDLINE=\"");
	memset(long_line + strlen(long_line), 'a', 511 - strlen(long_line));
	strcpy(long_line + 511, "CONFIG_LIVEUPDATE=y\nCONFIG_KEXEC_HANDOVER=y\n"
	       "CONFIG_LIVEUPDATE_MEMFD=y\n");
	assert_int_equal(check(long_line, missing, sizeof(missing)), 1);
	assert_string_equal(missing, "CONFIG_LIVEUPDATE");
}

/* config-RELEASE beside the image first, then in the boot directory given. */
static void test_find_config(void **state)
{
	char dir[] = "/tmp/test-next-kernel-XXXXXX", image[64], boot[64], cmd[160];
	_cleanup_free_ char *path = NULL;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "mkdir %s/img %s/boot && touch %s/boot/config-7.3.0", dir, dir,
		 dir);
	assert_int_equal(system(cmd), 0);
	snprintf(image, sizeof(image), "%s/img/bzImage", dir);
	snprintf(boot, sizeof(boot), "%s/boot", dir);

	assert_int_equal(next_kernel_find_config(image, "7.3.0", boot, &path), 0);
	assert_string_equal(path + strlen(dir), "/boot/config-7.3.0");
	free(path);
	path = NULL;
	assert_int_equal(next_kernel_find_config(image, "7.4.0", boot, &path), -ENOENT);

	snprintf(cmd, sizeof(cmd), "%s/img/config-7.3.0", dir);
	f = fopen(cmd, "we");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(next_kernel_find_config(image, "7.3.0", boot, &path), 0);
	assert_string_equal(path + strlen(dir), "/img/config-7.3.0");

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_release),
		cmocka_unit_test(test_release_refused),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_find_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
