/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "handover-clock.h"
#include "time-util.h"

#if defined(__x86_64__)

static struct {
	bool done;
	uint64_t tsc, ns; /* the first calibration pair */
} start;

static uint64_t raw_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * A (TSC, CLOCK_MONOTONIC_RAW) pair taken as close together as we can: of
 * a few tries, the one whose clock read was bracketed by the fewest ticks,
 * paired with the middle of the bracket.
 */
static void sample(uint64_t *ret_tsc, uint64_t *ret_ns)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 5; i++) {
		uint64_t a = __rdtsc(), ns = raw_ns(), b = __rdtsc();

		if (b < a || b - a >= best)
			continue;
		best = b - a;
		*ret_tsc = a + (b - a) / 2;
		*ret_ns = ns;
	}
	if (best == UINT64_MAX) {
		/* a migration between CPUs each time: take the last one as it is */
		*ret_ns = raw_ns();
		*ret_tsc = __rdtsc();
	}
}

int handover_clock_init(void)
{
	if (!start.done) {
		sample(&start.tsc, &start.ns);
		start.done = true;
	}
	return 0;
}

int handover_clock_now(uint64_t *ret)
{
	*ret = __rdtsc();
	return 0;
}

int handover_clock_start(uint64_t *ret)
{
	handover_clock_init();
	*ret = start.tsc;
	return 0;
}

int handover_clock_hz(uint64_t *ret)
{
	uint64_t tsc, ns;
	double rate;

	handover_clock_init();
	for (;;) {
		uint64_t elapsed = raw_ns() - start.ns;
		struct timespec ts;

		if (elapsed >= HANDOVER_CLOCK_CALIBRATION_MIN_NS)
			break;
		/* clock_nanosleep knows no CLOCK_MONOTONIC_RAW; the loop re-checks */
		elapsed = HANDOVER_CLOCK_CALIBRATION_MIN_NS - elapsed;
		ts = (struct timespec){ .tv_sec = (time_t)(elapsed / NSEC_PER_SEC),
					.tv_nsec = (long)(elapsed % NSEC_PER_SEC) };
		(void)nanosleep(&ts, NULL);
	}
	sample(&tsc, &ns);
	if (tsc <= start.tsc || ns <= start.ns)
		return -EIO;
	/* double keeps 53 bits: plenty for any lifetime's ticks and ns */
	rate = (double)(tsc - start.tsc) * (double)NSEC_PER_SEC / (double)(ns - start.ns);
	*ret = (uint64_t)(rate + 0.5);
	return *ret > 0 ? 0 : -EIO;
}

#else

int handover_clock_init(void)
{
	return -EOPNOTSUPP;
}

int handover_clock_now(uint64_t *ret)
{
	return -EOPNOTSUPP;
}

int handover_clock_start(uint64_t *ret)
{
	return -EOPNOTSUPP;
}

int handover_clock_hz(uint64_t *ret)
{
	return -EOPNOTSUPP;
}

#endif

uint64_t handover_clock_ticks_to_us(uint64_t ticks, uint64_t hz)
{
	uint64_t rem;

	if (hz == 0)
		return 0;
	/* split so that nothing overflows for hz from 10^6 to 2^64 / 10^6 */
	rem = ticks % hz;
	return ticks / hz * 1000000 + (rem * 1000000 + hz / 2) / hz;
}
