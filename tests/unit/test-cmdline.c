/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmdline.h"
#include "macro.h"

static void expect(const char *base, const char *append, const char *want)
{
	_cleanup_free_ char *got = NULL;

	assert_int_equal(cmdline_build(base, append, &got), 0);
	assert_string_equal(got, want);
}

static void test_build(void **state)
{
	expect("", NULL, "liveupdate=on kho=on");
	expect("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro initrd=/initrd.img quiet", NULL,
	       "root=/dev/sda1 ro quiet liveupdate=on kho=on");
	expect("root=/dev/vda liveupdate=on", "console=ttyS0", "root=/dev/vda liveupdate=on console=ttyS0 kho=on");
	expect("  a   b\t", "c", "a b c liveupdate=on kho=on");
	/* quotes group words, as the kernel parses them */
	expect("dyndbg=\"file x.c +p\" kho=1", NULL, "dyndbg=\"file x.c +p\" kho=1 liveupdate=on");
	/* after "--" come init's arguments: ours go before them */
	expect("root=/dev/vda -- --init-arg liveupdate=off", "quiet",
	       "root=/dev/vda quiet liveupdate=on kho=on -- --init-arg liveupdate=off");
	/* a key that only starts like ours is someone else's */
	expect("khoo=off liveupdatex=0", NULL, "khoo=off liveupdatex=0 liveupdate=on kho=on");
}

static void test_refuses_off(void **state)
{
	_cleanup_free_ char *got = NULL;

	assert_int_equal(cmdline_build("liveupdate=off", NULL, &got), -EINVAL);
	assert_int_equal(cmdline_build("a", "kho=off", &got), -EINVAL);
	/* the last occurrence wins, like the kernel */
	assert_int_equal(cmdline_build("kho=off kho=on", NULL, &got), 0);
	free(got);
	got = NULL;
	assert_int_equal(cmdline_build("kho=on kho=0", NULL, &got), -EINVAL);
	assert_null(got);
}

static void test_too_long(void **state)
{
	_cleanup_free_ char *got = NULL, *big = malloc(CMDLINE_MAX);

	memset(big, 'x', CMDLINE_MAX - 10);
	big[CMDLINE_MAX - 10] = '\0';
	/* fits alone, but not with what we must add */
	assert_int_equal(cmdline_build(big, NULL, &got), -E2BIG);
}

static void test_read_running(void **state)
{
	char path[] = "/tmp/test-cmdline-XXXXXX";
	_cleanup_free_ char *got = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "root=/dev/vda ro\n", 17), 17);
	close(fd);
	assert_int_equal(cmdline_read_running(path, &got), 0);
	assert_string_equal(got, "root=/dev/vda ro");
	unlink(path);
	assert_int_equal(cmdline_read_running(path, &got), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_refuses_off),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_read_running),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
