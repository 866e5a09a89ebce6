/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The reference VMM's device state: one 4 KiB memfd preserved next to the
 * RAM. At FREEZE it receives everything the next process needs to check
 * the RAM: the model's seed and geometry, each file's pass and position
 * where the writer stopped, a checksum of all RAM and the freeze time, on
 * CLOCK_REALTIME and (since version 2) on the TSC, which counts on across
 * the kexec. It is written in place with pwrite: LUO fixed the memfd's
 * size when it was preserved.
 */

#include <stdint.h>

#include "guest-ram.h"

#define VMSTATE_SIZE 4096
#define VMSTATE_TOKEN 0x10000
#define VMSTATE_FILES_MAX 64

struct vmstate_file {
	uint64_t pass;
	uint64_t pos;
};

struct vmstate {
	char magic[8];
	uint32_t version;
	uint32_t n_files;
	uint64_t seed;
	uint64_t bytes_per_file;
	uint64_t frozen_realtime_us;
	uint64_t checksum;
	struct vmstate_file files[VMSTATE_FILES_MAX];
	/* version 2; after the rest, so that version 1 reads the same; 0: unknown */
	uint64_t frozen_tsc;
};

_Static_assert(sizeof(struct vmstate) <= VMSTATE_SIZE, "vmstate fits its memfd");

/* A fresh, sized vmstate memfd. Returns the fd or -errno. */
int vmstate_create(void);
/* Record the paused RAM, its checksum and when it stopped. */
int vmstate_write(int fd, const struct guest_ram *ram, uint64_t checksum, uint64_t realtime_us,
		  uint64_t tsc);
/*
 * Read and check a restored one: -EBADMSG when it is not ours or
 * inconsistent. Version 1 (an older refvmm's) reads with frozen_tsc 0.
 */
int vmstate_read(int fd, struct vmstate *ret);
