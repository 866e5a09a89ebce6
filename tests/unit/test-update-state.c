/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "macro.h"
#include "update-state.h"

/* The happy path, event by event, back to idle. */
static void test_full_cycle(void **state)
{
	static const struct {
		UpdateEvent event;
		UpdateState to;
	} steps[] = {
		{ UPDATE_EVENT_PREPARE, UPDATE_PREPARING },
		{ UPDATE_EVENT_ALL_PREPARED, UPDATE_PREPARED },
		{ UPDATE_EVENT_COMMIT, UPDATE_FREEZING },
		{ UPDATE_EVENT_ALL_FROZEN, UPDATE_FROZEN },
		{ UPDATE_EVENT_REBOOT, UPDATE_REBOOTING },
	};
	UpdateState s = UPDATE_IDLE;

	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		int next = update_state_next(s, steps[i].event);

		assert_int_equal(next, steps[i].to);
		s = next;
	}

	/* the new kernel's daemon */
	s = update_state_next(UPDATE_IDLE, UPDATE_EVENT_INCOMING);
	assert_int_equal(s, UPDATE_RESTORING);
	s = update_state_next(s, UPDATE_EVENT_ALL_RESTORED);
	assert_int_equal(s, UPDATE_FINISHING);
	s = update_state_next(s, UPDATE_EVENT_ALL_FINISHED);
	assert_int_equal(s, UPDATE_IDLE);
}

/* Every state before the kexec rolls back to idle on failure; none after it does. */
static void test_failure_paths(void **state)
{
	static const UpdateState rollback[] = { UPDATE_PREPARING, UPDATE_PREPARED, UPDATE_FREEZING,
						UPDATE_FROZEN, UPDATE_REBOOTING };
	static const UpdateState no_way_back[] = { UPDATE_IDLE, UPDATE_RESTORING, UPDATE_FINISHING };

	for (size_t i = 0; i < ARRAY_SIZE(rollback); i++) {
		assert_int_equal(update_state_next(rollback[i], UPDATE_EVENT_FAIL), UPDATE_IDLE);
		assert_true(update_state_abortable(rollback[i]) || rollback[i] == UPDATE_FROZEN ||
			    rollback[i] == UPDATE_REBOOTING);
	}
	for (size_t i = 0; i < ARRAY_SIZE(no_way_back); i++) {
		assert_int_equal(update_state_next(no_way_back[i], UPDATE_EVENT_FAIL), -EPERM);
		assert_int_equal(update_state_next(no_way_back[i], UPDATE_EVENT_ABORT), -EPERM);
		assert_false(update_state_abortable(no_way_back[i]));
	}
	/* an operator cannot abort once the last VMM froze: reboot() decides */
	assert_int_equal(update_state_next(UPDATE_FROZEN, UPDATE_EVENT_ABORT), -EPERM);
	assert_int_equal(update_state_next(UPDATE_REBOOTING, UPDATE_EVENT_ABORT), -EPERM);
}

/* Exhaustive: exactly the listed transitions exist. */
static void test_transition_count(void **state)
{
	unsigned allowed = 0;

	for (UpdateState s = 0; s < _UPDATE_STATE_MAX; s++)
		for (UpdateEvent e = 0; e < _UPDATE_EVENT_MAX; e++)
			if (update_state_next(s, e) >= 0)
				allowed++;
	assert_int_equal(allowed, 18);

	/* nothing skips ahead */
	assert_int_equal(update_state_next(UPDATE_IDLE, UPDATE_EVENT_COMMIT), -EPERM);
	assert_int_equal(update_state_next(UPDATE_PREPARING, UPDATE_EVENT_COMMIT), -EPERM);
	assert_int_equal(update_state_next(UPDATE_FREEZING, UPDATE_EVENT_REBOOT), -EPERM);
	assert_int_equal(update_state_next(UPDATE_PREPARED, UPDATE_EVENT_INCOMING), -EPERM);
	/* a restarted daemon resumes a prepared update, nothing else */
	assert_int_equal(update_state_next(UPDATE_IDLE, UPDATE_EVENT_RESUME), UPDATE_PREPARED);
	assert_int_equal(update_state_next(UPDATE_PREPARED, UPDATE_EVENT_RESUME), -EPERM);
	/* a late VMM sends a prepared update back to preparing */
	assert_int_equal(update_state_next(UPDATE_PREPARED, UPDATE_EVENT_PREPARE), UPDATE_PREPARING);
}

static void test_strings(void **state)
{
	for (UpdateState s = 0; s < _UPDATE_STATE_MAX; s++) {
		const char *n = update_state_to_string(s);

		assert_non_null(n);
		assert_int_equal(update_state_from_string(n), s);
	}
	for (VmmState s = 0; s < _VMM_STATE_MAX; s++) {
		const char *n = vmm_state_to_string(s);

		assert_non_null(n);
		assert_int_equal(vmm_state_from_string(n), s);
	}
	for (UpdateEvent e = 0; e < _UPDATE_EVENT_MAX; e++)
		assert_non_null(update_event_to_string(e));

	assert_null(update_state_to_string(_UPDATE_STATE_MAX));
	assert_null(update_state_to_string(-1));
	assert_int_equal(update_state_from_string("nonsense"), -EINVAL);
	assert_int_equal(update_state_from_string(NULL), -EINVAL);
	assert_string_equal(update_state_to_string(UPDATE_FREEZING), "freezing");
	assert_string_equal(vmm_state_to_string(VMM_AWAITING), "awaiting");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_cycle),
		cmocka_unit_test(test_failure_paths),
		cmocka_unit_test(test_transition_count),
		cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
