/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The DMA in flight through a kexec: edu's buffer is loaded with a pattern
 * while the old kernel runs, and just before the kexec a copy of it to a
 * zeroed page of guest RAM is started and not waited for. edu runs a
 * command 100 ms of guest time after it was given, so the copy lands
 * while the machine goes through the kexec; the next kernel's process
 * checks the page.
 */

#include <stdbool.h>
#include <stdint.h>

#include "passthrough.h"

/*
 * edu's buffer loaded with the pattern of seed, through guest RAM at src,
 * and dst zeroed for the copy: 0, or an error event and a negative errno.
 */
int in_flight_load(const Passthrough *p, unsigned int src, unsigned int dst, unsigned int seed);

/* Start the copy of edu's buffer to dst, and return at once. */
void in_flight_start(const Passthrough *p, unsigned int dst);

/*
 * Load image (see load_next_kernel()), start the copy to dst and kexec:
 * returns only when that failed, after an error event.
 */
void in_flight_kexec(const Passthrough *p, unsigned int dst, const char *image,
		     const char *initrd, const char *append);

/* {"event":"dma","step":"in-flight"}: the copy to dst landed. */
bool in_flight_check(const uint8_t *ram, unsigned int dst, unsigned int seed);
