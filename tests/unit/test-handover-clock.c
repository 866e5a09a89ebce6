/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "handover-clock.h"
#include "time-util.h"

static void test_ticks_to_us(void **state)
{
	const uint64_t hz = 3000000000ULL;

	assert_int_equal(handover_clock_ticks_to_us(hz, hz), 1000000);
	assert_int_equal(handover_clock_ticks_to_us(0, hz), 0);
	/* to the nearest µs: 3000 ticks per µs */
	assert_int_equal(handover_clock_ticks_to_us(1499, hz), 0);
	assert_int_equal(handover_clock_ticks_to_us(1500, hz), 1);
	assert_int_equal(handover_clock_ticks_to_us(7 * hz + 4499, hz), 7000001);
	/* no rate, no figure */
	assert_int_equal(handover_clock_ticks_to_us(12345, 0), 0);
	/* the largest difference does not overflow: 2^64 - 1 ticks at 3 GHz */
	assert_true(handover_clock_ticks_to_us(UINT64_MAX, hz) == 6148914691236517ULL);
	/* at 1 GHz a tick is a ns */
	assert_int_equal(handover_clock_ticks_to_us(123456789, 1000000000ULL), 123457);
}

#if defined(__x86_64__)

static uint64_t raw_ns(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_MONOTONIC_RAW, &ts), 0);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* First in the run: nothing has initialised the clock yet. */
static void test_hz_waits_for_calibration(void **state)
{
	uint64_t before = raw_ns(), hz;

	assert_int_equal(handover_clock_init(), 0);
	assert_int_equal(handover_clock_hz(&hz), 0);
	assert_true(raw_ns() - before >= HANDOVER_CLOCK_CALIBRATION_MIN_NS);
	/* any x86 of this century: between 100 MHz and 10 GHz */
	assert_true(hz > 100000000ULL && hz < 10000000000ULL);
}

static void test_start_and_monotone(void **state)
{
	uint64_t start, prev, now;

	assert_int_equal(handover_clock_start(&start), 0);
	assert_int_equal(handover_clock_now(&prev), 0);
	assert_true(prev > start);
	for (int i = 0; i < 100000; i++) {
		assert_int_equal(handover_clock_now(&now), 0);
		assert_true(now >= prev);
		prev = now;
	}
	/* init again changes nothing: the start stays the process's */
	assert_int_equal(handover_clock_init(), 0);
	assert_int_equal(handover_clock_start(&now), 0);
	assert_true(now == start);
}

/* Ticks over a sleep, converted with the measured rate, match the sleep. */
static void test_rate_matches_sleep(void **state)
{
	uint64_t t0, t1, n0, n1, hz, us, want;

	n0 = raw_ns();
	assert_int_equal(handover_clock_now(&t0), 0);
	sleep_ms(150);
	assert_int_equal(handover_clock_now(&t1), 0);
	n1 = raw_ns();
	assert_int_equal(handover_clock_hz(&hz), 0);

	us = handover_clock_ticks_to_us(t1 - t0, hz);
	want = (n1 - n0) / 1000;
	/* 1 % and a little: the calibration is over a few hundred ms at least */
	assert_true(us >= want - want / 100 - 200);
	assert_true(us <= want + want / 100 + 200);
	assert_true(us >= 150000 - 200);
}

/* Later conversions of growing differences never shrink. */
static void test_differences_monotone(void **state)
{
	uint64_t start, hz, prev = 0;

	assert_int_equal(handover_clock_start(&start), 0);
	assert_int_equal(handover_clock_hz(&hz), 0);
	for (int i = 0; i < 20; i++) {
		uint64_t now, us;

		sleep_ms(2);
		assert_int_equal(handover_clock_now(&now), 0);
		us = handover_clock_ticks_to_us(now - start, hz);
		assert_true(us > prev);
		prev = us;
	}
}

#else

static void test_unsupported(void **state)
{
	uint64_t v;

	assert_int_equal(handover_clock_init(), -EOPNOTSUPP);
	assert_int_equal(handover_clock_now(&v), -EOPNOTSUPP);
	assert_int_equal(handover_clock_start(&v), -EOPNOTSUPP);
	assert_int_equal(handover_clock_hz(&v), -EOPNOTSUPP);
}

#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
#if defined(__x86_64__)
		cmocka_unit_test(test_hz_waits_for_calibration),
		cmocka_unit_test(test_start_and_monotone),
		cmocka_unit_test(test_rate_matches_sleep),
		cmocka_unit_test(test_differences_monotone),
#else
		cmocka_unit_test(test_unsupported),
#endif
		cmocka_unit_test(test_ticks_to_us),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
