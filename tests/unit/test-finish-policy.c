/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* When FINISH of a resumed VMM's session waits for the VMMs still awaiting their restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "finish-policy.h"

static void test_no_device_finishes_at_once(void **state)
{
	assert_false(finish_deferred(0, 0));
	assert_false(finish_deferred(0, 3));
}

static void test_device_waits_for_awaiting(void **state)
{
	assert_true(finish_deferred(1, 1));
	assert_true(finish_deferred(2, 100));
	/* nobody left in their blackout: at once */
	assert_false(finish_deferred(1, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_device_finishes_at_once),
		cmocka_unit_test(test_device_waits_for_awaiting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
