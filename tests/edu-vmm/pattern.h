/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* EDU_TRANSFER bytes that differ with the seed at every offset, and their check. */

#include <stddef.h>
#include <stdint.h>

void pattern_fill(uint8_t *p, unsigned int seed);

/* How many bytes differ from the pattern; *first_bad is the first (when any). */
size_t pattern_mismatches(const uint8_t *p, unsigned int seed, size_t *first_bad);
