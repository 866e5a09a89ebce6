/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "edu.h"
#include "pattern.h"

static uint8_t pattern_byte(unsigned int seed, size_t i)
{
	return (uint8_t)(seed * 0x9e + i * 7 + (i >> 8) + 1);
}

void pattern_fill(uint8_t *p, unsigned int seed)
{
	for (size_t i = 0; i < EDU_TRANSFER; i++)
		p[i] = pattern_byte(seed, i);
}

size_t pattern_mismatches(const uint8_t *p, unsigned int seed, size_t *first_bad)
{
	size_t bad = 0;

	for (size_t i = 0; i < EDU_TRANSFER; i++)
		if (p[i] != pattern_byte(seed, i) && bad++ == 0)
			*first_bad = i;
	return bad;
}
