/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * floor-vmm: the VMM of the floor (floor-daemon.c). It sends and receives
 * exactly the packets, fds and ioctls bench-vmm does through the library,
 * but speaks the protocol directly on a blocking socket: no library, no
 * queue, no poll before a read, no checks. Same options, same stamps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liveupdate/vmm-protocol.h>

#include "bench-args.h"
#include "bench-clock.h"
#include "bench-milestone.h"
#include "bench-ram.h"
#include "bench-record.h"
#include "luo.h"
#include "macro.h"
#include "socket-util.h"
#include "vmm-message.h"

struct floor_vmm {
	const char *out;
	size_t size;
	unsigned n_fds;
	int sock;
	uint32_t seq;
	int fds[LU_VMM_FDS_MAX];
	struct bench_record rec;
};

union packet {
	struct lu_vmm_header hdr;
	struct lu_vmm_reply reply;
	struct lu_vmm_restore restore;
	uint8_t buf[LU_VMM_MSG_MAX];
};

/* One packet; its type, 0 at EOF, or a negative errno. */
static int recv_packet(struct floor_vmm *f, union packet *p, int *ret_fd)
{
	size_t n_fds = ret_fd ? 1 : 0;
	ssize_t n;

	if (ret_fd)
		*ret_fd = -1;
	n = socket_recv_fds(f->sock, p->buf, sizeof(p->buf), ret_fd, &n_fds);
	if (n < 0)
		return n == -ECONNRESET ? 0 : (int)n;
	return n == 0 ? 0 : (int)p->hdr.type;
}

/* Send a request and read its reply; the reply's flags, or a negative errno. */
static int request(struct floor_vmm *f, uint32_t type, uint64_t token, int fd)
{
	union packet p;
	int r;

	f->seq++;
	if (type == LU_VMM_MSG_HELLO)
		r = vmm_send_hello(f->sock, f->seq, f->rec.vm_id);
	else if (type == LU_VMM_MSG_PRESERVE_FD)
		r = vmm_send_token(f->sock, type, f->seq, token, fd);
	else
		r = vmm_send_simple(f->sock, type, f->seq);
	if (r < 0)
		return r;
	r = recv_packet(f, &p, NULL);
	if (r != LU_VMM_MSG_REPLY)
		return r < 0 ? r : -EPROTO;
	return p.reply.error < 0 ? p.reply.error : (int)p.reply.flags;
}

static int expect(struct floor_vmm *f, uint32_t type, union packet *p, int *ret_fd)
{
	int r = recv_packet(f, p, ret_fd);

	return r == (int)type ? 0 : r < 0 ? r : -EPROTO;
}

static int run_old(struct floor_vmm *f)
{
	union packet p;
	int r;

	for (unsigned i = 0; i < f->n_fds; i++) {
		f->fds[i] = bench_ram_create(f->rec.vm_id, i, f->size);
		if (f->fds[i] < 0)
			return f->fds[i];
	}
	r = bench_milestone("registered");
	if (r < 0)
		return r;

	r = expect(f, LU_VMM_MSG_PREPARE, &p, NULL);
	if (r < 0)
		return r;
	f->rec.prepare_ns = bench_now_ns();
	for (unsigned i = 0; i < f->n_fds && r >= 0; i++)
		r = request(f, LU_VMM_MSG_PRESERVE_FD, i + 1, f->fds[i]);
	if (r >= 0)
		r = request(f, LU_VMM_MSG_PREPARE_DONE, 0, -1);
	f->rec.prepared_ns = bench_now_ns();
	if (r < 0)
		return r;

	r = expect(f, LU_VMM_MSG_FREEZE, &p, NULL);
	if (r < 0)
		return r;
	f->rec.freeze_ns = bench_now_ns();
	r = vmm_send_simple(f->sock, LU_VMM_MSG_FROZEN, ++f->seq);
	f->rec.frozen_ns = bench_now_ns();
	if (r < 0)
		return r;
	/* the kexec: the floor daemon's end goes away */
	r = recv_packet(f, &p, NULL);
	return r == 0 ? 0 : r < 0 ? r : -EPROTO;
}

static int run_new(struct floor_vmm *f)
{
	_cleanup_close_ int session = -1;
	union packet p;
	int r;

	r = expect(f, LU_VMM_MSG_RESTORE, &p, &session);
	if (r < 0)
		return r;
	f->rec.restore_ns = bench_now_ns();
	f->rec.boot = "new";
	if (p.restore.n_tokens > LU_VMM_FDS_MAX)
		return -E2BIG;
	for (uint32_t i = 0; i < p.restore.n_tokens; i++) {
		uint64_t token = p.restore.tokens[i];

		f->fds[i] = luo_retrieve_fd(session, token);
		if (f->fds[i] < 0)
			return f->fds[i];
		f->n_fds = i + 1;
		r = bench_ram_check(f->fds[i], f->rec.vm_id, (unsigned)(token - 1));
		if (r < 0)
			return r;
	}
	f->rec.holding_ns = bench_now_ns();
	r = request(f, LU_VMM_MSG_RESUMED, 0, -1);
	f->rec.resumed_ns = bench_now_ns();
	return r < 0 ? r : 0;
}

static int run(struct floor_vmm *f)
{
	const char *path = getenv("LIVEUPDATED_VMM_SOCKET");
	int r;

	f->rec.start_ns = bench_now_ns();
	r = bench_milestone("starting");
	if (r < 0)
		return r;
	if (!path)
		return -EINVAL;
	f->sock = socket_connect_unix(path, SOCK_SEQPACKET);
	if (f->sock < 0)
		return f->sock;
	r = request(f, LU_VMM_MSG_HELLO, 0, -1);
	if (r < 0)
		return r;
	if (!(r & LU_VMM_REPLY_RESTORE_PENDING))
		return run_old(f);

	r = run_new(f);
	if (r < 0)
		return r;
	r = bench_record_write(f->out, &f->rec);
	if (r >= 0)
		r = bench_milestone("resumed");
	if (r < 0)
		return r;
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	struct floor_vmm f = {
		.sock = -1,
		.rec = { .boot = "old" },
	};
	struct bench_args a;
	int r;

	if (bench_args_parse(argc, argv, &a) < 0)
		return 2;
	f.rec.vm_id = a.vm_id;
	f.out = a.out;
	f.n_fds = a.n_fds;
	f.size = a.size;
	f.rec.fds = (int)f.n_fds;
	r = run(&f);
	if (r < 0) {
		f.rec.error = r;
		fprintf(stderr, "floor-vmm %s: %s\n", f.rec.vm_id, strerror(-r));
	}
	if (bench_record_write(f.out, &f.rec) < 0)
		fprintf(stderr, "floor-vmm %s: cannot write %s\n", f.rec.vm_id, f.out);
	safe_close(f.sock);
	return r < 0 ? 1 : 0;
}
