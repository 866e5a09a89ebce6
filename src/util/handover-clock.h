/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The handover clock: the x86 TSC. It keeps counting across a kexec on
 * the same machine, so a stamp the old kernel's processes took and one the
 * new kernel's took can be subtracted, where CLOCK_REALTIME is re-read
 * from the RTC (1 s) and the monotonic clocks start over.
 *
 * Only differences of ticks are meaningful across the kexec, and they are
 * converted with the rate of the process that converts them: each process
 * measures ticks per second against CLOCK_MONOTONIC_RAW over its own
 * lifetime so far. Never convert absolute values of two processes with
 * two rates.
 *
 * Elsewhere than x86_64 every call returns -EOPNOTSUPP, and callers report
 * null instead of figures. Not thread-safe: call it from one thread.
 */

#include <stdint.h>

/* Below this much calibration, handover_clock_hz() waits until there is. */
#define HANDOVER_CLOCK_CALIBRATION_MIN_NS (20ULL * 1000 * 1000)

/*
 * Take the first calibration pair (the TSC, CLOCK_MONOTONIC_RAW). Call it
 * first thing in main(): its TSC is also the process's start stamp.
 */
int handover_clock_init(void);
/* The TSC now, in ticks. */
int handover_clock_now(uint64_t *ret);
/* The TSC at handover_clock_init() (which it calls if nobody did). */
int handover_clock_start(uint64_t *ret);
/*
 * Ticks per second, measured from handover_clock_init() to now; sleeps
 * until HANDOVER_CLOCK_CALIBRATION_MIN_NS have passed since then.
 */
int handover_clock_hz(uint64_t *ret);
/* A difference of ticks in µs, rounded to the nearest; 0 when hz is 0. */
uint64_t handover_clock_ticks_to_us(uint64_t ticks, uint64_t hz);
