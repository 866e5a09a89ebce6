/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-vmm: the scale benchmark's VMM (tests/bench/bench.py). A client of
 * libliveupdate-vmm, as the refvmm is, but idle whenever it waits: no
 * writer thread, no JSON, a few small memfds. A thousand of them fit on
 * two cores and leave the CPU to the daemon being measured.
 *
 *   bench-vmm --vm-id ID --fds F --size BYTES --out FILE
 *
 * Old boot: register, create F memfds, have the daemon preserve them at
 * PREPARE, answer FREEZE, and at the hangup the kexec brings append the
 * stamps to FILE. New boot (same id, restore pending): take RESTORE,
 * retrieve and check every file, say RESUMED, append the stamps, and idle
 * until killed. The milestones (bench-milestone.h) tell the driver when
 * all VMMs are registered and all are resumed.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liveupdate/vmm.h>

#include "bench-args.h"
#include "bench-clock.h"
#include "bench-milestone.h"
#include "bench-ram.h"
#include "bench-record.h"
#include "macro.h"

struct bench_vmm {
	const char *out;
	size_t size;
	unsigned n_fds;
	struct lu_vmm *vmm;
	int fds[LU_VMM_FDS_MAX];
	struct bench_record rec;
};

static int on_prepare(struct bench_vmm *b, const struct lu_vmm_event *ev)
{
	int r;

	b->rec.prepare_ns = bench_now_ns();
	if (ev->max_fds < b->n_fds)
		return -E2BIG;
	for (unsigned i = 0; i < b->n_fds; i++) {
		r = lu_vmm_preserve_fd(b->vmm, b->fds[i], i + 1);
		if (r < 0)
			return r;
	}
	r = lu_vmm_prepare_done(b->vmm);
	b->rec.prepared_ns = bench_now_ns();
	return r;
}

static int on_freeze(struct bench_vmm *b)
{
	int r;

	b->rec.freeze_ns = bench_now_ns();
	r = lu_vmm_frozen(b->vmm);
	b->rec.frozen_ns = bench_now_ns();
	return r;
}

/* One event of the old boot: 1 to go on, 0 at the hangup (the kexec), or a negative errno. */
static int handle(struct bench_vmm *b, const struct lu_vmm_event *ev)
{
	int r = 1;

	switch (ev->type) {
	case LU_VMM_EVENT_PREPARE:
		r = on_prepare(b, ev);
		break;
	case LU_VMM_EVENT_FREEZE:
		r = on_freeze(b);
		break;
	case LU_VMM_EVENT_THAW:
		return ev->error < 0 ? ev->error : -ECANCELED;
	case LU_VMM_EVENT_HANGUP:
		return 0;
	default:
		break;
	}
	return r < 0 ? r : 1;
}

/* Until the hangup: everything the library has, then poll. */
static int run_old(struct bench_vmm *b, const struct lu_vmm_event *first)
{
	struct lu_vmm_event ev = *first;
	int r;

	for (unsigned i = 0; i < b->n_fds; i++) {
		b->fds[i] = bench_ram_create(b->rec.vm_id, i, b->size);
		if (b->fds[i] < 0)
			return b->fds[i];
	}
	r = bench_milestone("registered");
	if (r < 0)
		return r;

	for (;;) {
		struct pollfd p = { .fd = lu_vmm_get_fd(b->vmm), .events = POLLIN };

		while (ev.type != LU_VMM_EVENT_NONE) {
			r = handle(b, &ev);
			if (r <= 0)
				return r;
			r = lu_vmm_next_event(b->vmm, &ev);
			if (r < 0)
				return r;
		}
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return negative_errno();
		r = lu_vmm_next_event(b->vmm, &ev);
		if (r < 0)
			return r;
	}
}

/* The new boot: every file back, checked, kept; then RESUMED. */
static int run_new(struct bench_vmm *b, const struct lu_vmm_event *ev)
{
	int r;

	b->rec.restore_ns = bench_now_ns();
	b->rec.boot = "new";
	if (ev->n_tokens > LU_VMM_FDS_MAX)
		return -E2BIG;
	for (uint32_t i = 0; i < ev->n_tokens; i++) {
		uint64_t token = ev->tokens[i];

		b->fds[i] = lu_vmm_restored_fd(b->vmm, token);
		if (b->fds[i] < 0)
			return b->fds[i];
		b->n_fds = i + 1;
		r = bench_ram_check(b->fds[i], b->rec.vm_id, (unsigned)(token - 1));
		if (r < 0)
			return r;
	}
	b->rec.holding_ns = bench_now_ns();
	r = lu_vmm_resumed(b->vmm);
	b->rec.resumed_ns = bench_now_ns();
	return r;
}

static int run(struct bench_vmm *b)
{
	struct lu_vmm_event ev;
	int r;

	b->rec.start_ns = bench_now_ns();
	r = bench_milestone("starting");
	if (r < 0)
		return r;
	r = lu_vmm_connect(NULL, b->rec.vm_id, &b->vmm);
	if (r < 0)
		return r;
	/* the kexec ends the old daemon: a hangup is the end, not a restart */
	r = lu_vmm_set_reconnect_timeout(b->vmm, 0);
	if (r >= 0)
		r = lu_vmm_next_event(b->vmm, &ev);
	if (r < 0)
		return r;
	if (ev.type != LU_VMM_EVENT_RESTORE)
		return run_old(b, &ev);

	r = run_new(b, &ev);
	if (r < 0)
		return r;
	r = bench_record_write(b->out, &b->rec);
	if (r >= 0)
		r = bench_milestone("resumed");
	if (r < 0)
		return r;
	/* a VMM runs on holding its VM: until the driver ends it */
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	struct bench_vmm b = {
		.rec = { .boot = "old" },
	};
	struct bench_args a;
	int r;

	if (bench_args_parse(argc, argv, &a) < 0)
		return 2;
	b.rec.vm_id = a.vm_id;
	b.out = a.out;
	b.n_fds = a.n_fds;
	b.size = a.size;
	b.rec.fds = (int)b.n_fds;
	r = run(&b);
	if (r < 0) {
		b.rec.error = r;
		fprintf(stderr, "bench-vmm %s: %s\n", b.rec.vm_id, strerror(-r));
	}
	/* the old boot's stamps, or how it failed */
	if (bench_record_write(b.out, &b.rec) < 0)
		fprintf(stderr, "bench-vmm %s: cannot write %s\n", b.rec.vm_id, b.out);
	lu_vmm_free(b.vmm);
	return r < 0 ? 1 : 0;
}
