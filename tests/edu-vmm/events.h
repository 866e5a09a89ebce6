/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The events of the edu programs: one JSON line each, on stdout and, for
 * those that hand edu over across a kexec, prefixed with the program's
 * name in the kernel log, where the e2e test reads them (see emit()).
 */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "passthrough.h"

/*
 * Once, before any event: the events go to the kernel log too, each record
 * starting with kmsg_prefix ("edu-hotswap: "). Without it, stdout only.
 */
void events_init(const char *kmsg_prefix);

/* One event: fmt gives the whole JSON object. */
void emit(const char *fmt, ...) _printf_(1, 2);

/* {"event":"error"}: what failed, and the errno it failed with. */
void event_error(const char *what, int err);

/*
 * {"event":"dma"}: the check of EDU_TRANSFER bytes of guest RAM at offset
 * against the pattern of seed; zero_before says the target was zero
 * before the DMA. True when both hold.
 */
bool event_check(const char *step, const uint8_t *ram, unsigned int offset, unsigned int seed,
		 bool zero_before);

/* A JSON number in buf (24 bytes), or null when !valid. */
const char *json_u64_or_null(char buf[24], bool valid, uint64_t v);

/* EDU_TRANSFER bytes at p are all zero: nothing landed there yet. */
bool all_zero(const uint8_t *p);

/* event_dma()'s src when edu's buffer goes out as it is. */
#define EVENT_DMA_FROM_BUFFER (-1)

/*
 * One DMA check through p: with a src (an offset in guest RAM), the CPU's
 * pattern of seed goes there and RAM to edu first; then edu's buffer goes
 * to dst, checked with event_check() (zero_before: dst was all zero just
 * before). 1 when it landed, 0 when not, a negative errno (and an error
 * event) when the device did not complete a transfer.
 */
int event_dma(const Passthrough *p, const char *step, int src, unsigned int dst,
	      unsigned int seed);
