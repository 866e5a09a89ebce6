/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "edu-vmm-ram.h"

#define VMSTATE_MAGIC 0x6564752d766d6d31ull /* "edu-vmm1" */

/* In the last page of guest RAM; written at FREEZE, read after the kexec. */
struct vmstate {
	uint64_t magic; /* VMSTATE_MAGIC while frozen (or after the kexec) */
	uint64_t frozen_tsc; /* 0: no TSC */
	uint32_t rounds;
};

void vmstate_save(uint8_t *ram, uint64_t frozen_tsc, unsigned int rounds)
{
	*(struct vmstate *)(ram + VMSTATE_OFFSET) = (struct vmstate){
		.magic = VMSTATE_MAGIC, .frozen_tsc = frozen_tsc, .rounds = rounds
	};
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool vmstate_load(const uint8_t *ram, uint64_t *frozen_tsc, unsigned int *rounds)
{
	const struct vmstate *st = (const struct vmstate *)(ram + VMSTATE_OFFSET);

	if (st->magic != VMSTATE_MAGIC)
		return false;
	*frozen_tsc = st->frozen_tsc;
	*rounds = st->rounds;
	return true;
}

void vmstate_clear(uint8_t *ram)
{
	((struct vmstate *)(ram + VMSTATE_OFFSET))->magic = 0;
}
