/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <liveupdate/vmm-protocol.h>

#include "bench-args.h"
#include "macro.h"

static int parse(int argc, char **argv, struct bench_args *a)
{
	static const struct option options[] = {
		{ "vm-id", required_argument, NULL, 'i' },
		{ "fds", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{}
	};
	unsigned long v;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		if (c == '?')
			return -EINVAL;
		if (c == 'i') {
			a->vm_id = optarg;
			continue;
		}
		if (c == 'o') {
			a->out = optarg;
			continue;
		}
		errno = 0;
		v = strtoul(optarg, &end, 10);
		if (errno || *end || v == 0)
			return -EINVAL;
		if (c == 'f')
			a->n_fds = (unsigned)MIN(v, (unsigned long)LU_VMM_FDS_MAX);
		else
			a->size = v;
	}
	return a->vm_id && a->out && optind == argc ? 0 : -EINVAL;
}

int bench_args_parse(int argc, char **argv, struct bench_args *a)
{
	*a = (struct bench_args){ .n_fds = 1, .size = 16384 };
	if (parse(argc, argv, a) < 0) {
		fprintf(stderr, "usage: %s --vm-id ID [--fds N] [--size BYTES] --out FILE\n",
			program_invocation_short_name);
		return -EINVAL;
	}
	return 0;
}
