/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The command line both bench VMMs take, so that bench.py starts either
 * the same way:
 *
 *   --vm-id ID [--fds N] [--size BYTES] --out FILE
 */

#include <stddef.h>

struct bench_args {
	const char *vm_id;
	const char *out; /* where the stamps go (bench-record.h) */
	unsigned n_fds;  /* at most LU_VMM_FDS_MAX */
	size_t size;     /* of each memfd */
};

/* Fills a (defaults: 1 fd of 16 KiB); -EINVAL, after a usage line on stderr, if bad. */
int bench_args_parse(int argc, char **argv, struct bench_args *a);
