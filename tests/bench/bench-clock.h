/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The bench's one clock: CLOCK_MONOTONIC in nanoseconds. Every process of
 * a run (daemon shim, floor, VMMs, the driver's time.monotonic_ns()) reads
 * the same clock, so their stamps can be subtracted from one another.
 */

#include <stdint.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
