/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a VMM of the bench (bench-vmm or floor-vmm) saw, as one JSON line
 * appended to the run's results file. The stamps are bench_now_ns(), 0
 * where the step did not happen in this boot.
 */

#include <stdint.h>

struct bench_record {
	const char *vm_id;
	const char *boot; /* "old": registered, prepared, froze; "new": restored */
	uint64_t start_ns;    /* the process began to connect */
	uint64_t prepare_ns;  /* PREPARE in hand */
	uint64_t prepared_ns; /* every fd preserved, PREPARE_DONE answered */
	uint64_t freeze_ns;   /* FREEZE in hand */
	uint64_t frozen_ns;   /* FROZEN sent */
	uint64_t restore_ns;  /* RESTORE in hand */
	uint64_t holding_ns;  /* every fd retrieved and its contents checked */
	uint64_t resumed_ns;  /* RESUMED answered */
	int fds;
	int error; /* 0, or the negative errno that ended the VMM */
};

/* Append r to path as one line, with one write(). */
int bench_record_write(const char *path, const struct bench_record *r);
