/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * floor-daemon: the floor of the scale benchmark (floor-daemon.h). For N
 * VMMs of F fds it makes the socket round trips, SCM_RIGHTS transfers and
 * fake-kernel ioctls liveupdated makes in an update, in the same order,
 * and nothing else: no state machine, no JSON, no logging, no checks
 * beyond what keeps it from crashing. A VMM's index is the number in its
 * id (vm-0042), so finding it costs nothing.
 *
 *   floor-daemon --vmms N --fds F --kernel IMAGE
 *
 * Started like liveupdated under socket activation: the VMM socket at fd
 * 3, the control socket at fd 4. The control protocol is a word per line:
 * "status" (answers "ok"), "prepare" ("prepared" once every VMM is),
 * "commit" ("rebooting", just before the kexec). Errors end the process.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <liveupdate/vmm-protocol.h>

#include "floor-daemon.h"
#include "luo.h"
#include "macro.h"
#include "socket-util.h"
#include "vmm-message.h"

#define VMM_LISTEN_FD 3
#define CONTROL_LISTEN_FD 4
#define EVENTS_MAX 256

union packet {
	struct lu_vmm_header hdr;
	struct lu_vmm_hello hello;
	struct lu_vmm_token_msg token;
	uint8_t buf[LU_VMM_MSG_MAX];
};

/* What an epoll event is about: a listening socket, the control connection, or a VMM's. */
struct conn {
	int fd;
	int vm; /* index, -1 before HELLO */
	struct conn *prev, *next; /* VMM connections, to free them at exit */
};

static struct conn vmm_listen = { VMM_LISTEN_FD, -1 }, control_listen = { CONTROL_LISTEN_FD, -1 };
static struct conn control_conn = { -1, -1 }, signals = { -1, -1 };
static struct conn *conns;

static void conn_free(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	safe_close(c->fd);
	free(c);
}

static int watch(struct floor *f, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	return epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0 ? negative_errno() : 0;
}

static int say(struct floor *f, const char *line)
{
	size_t len = strlen(line);

	return send(f->control, line, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EIO;
}

static int vm_index(struct floor *f, const char *vm_id)
{
	const char *dash = strrchr(vm_id, '-');
	unsigned long i;

	if (!dash)
		return -EINVAL;
	i = strtoul(dash + 1, NULL, 10);
	return i < f->n ? (int)i : -ERANGE;
}

/* Its session exists: PREPARE goes at once, as liveupdated sends it. */
static int send_prepare(struct floor *f, unsigned vm)
{
	return vmm_send_prepare(f->vms[vm].conn, "floor", LU_VMM_FDS_MAX);
}

static int send_freeze_all(struct floor *f)
{
	for (unsigned i = 0; i < f->n; i++) {
		int r = vmm_send_freeze(f->vms[i].conn, 5000);

		if (r < 0)
			return r;
	}
	return 0;
}

static int on_control(struct floor *f)
{
	char line[64];
	ssize_t n = read(f->control, line, sizeof(line) - 1);
	int r;

	if (n <= 0) {
		(void)epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, f->control, NULL);
		f->control = control_conn.fd = safe_close(f->control);
		return 0;
	}
	line[n] = '\0';
	if (strncmp(line, "status", 6) == 0)
		return say(f, "ok\n");
	if (strncmp(line, "prepare", 7) == 0)
		return floor_luo_prepare(f, send_prepare);
	if (strncmp(line, "commit", 6) == 0) {
		r = floor_luo_commit(f);
		return r < 0 ? r : send_freeze_all(f);
	}
	return -EBADMSG;
}

static int on_hello(struct floor *f, struct conn *c, const union packet *p)
{
	struct floor_vm *vm;
	uint64_t tokens[LU_VMM_FDS_MAX];
	int r;

	c->vm = vm_index(f, p->hello.vm_id);
	if (c->vm < 0)
		return c->vm;
	vm = &f->vms[c->vm];
	vm->conn = c->fd;
	if (!f->incoming)
		return vmm_send_reply(c->fd, p->hdr.seq, 0, 0, -1);
	r = vmm_send_reply(c->fd, p->hdr.seq, 0, LU_VMM_REPLY_RESTORE_PENDING, -1);
	for (unsigned i = 0; i < f->fds; i++)
		tokens[i] = i + 1;
	if (r >= 0)
		r = vmm_send_restore(c->fd, "floor", tokens, f->fds, vm->session);
	return r;
}

static int on_packet(struct floor *f, struct conn *c, const union packet *p, int fd)
{
	struct floor_vm *vm = c->vm >= 0 ? &f->vms[c->vm] : NULL;
	int r;

	if (p->hdr.type == LU_VMM_MSG_HELLO)
		return on_hello(f, c, p);
	if (!vm)
		return -EPROTO;
	switch (p->hdr.type) {
	case LU_VMM_MSG_PRESERVE_FD:
		r = luo_preserve_fd(vm->session, fd, p->token.token);
		return vmm_send_reply(c->fd, p->hdr.seq, r < 0 ? r : 0, 0, -1);
	case LU_VMM_MSG_PREPARE_DONE:
		r = vmm_send_reply(c->fd, p->hdr.seq, 0, 0, -1);
		if (r >= 0 && ++f->prepared == f->n)
			r = say(f, "prepared\n");
		return r;
	case LU_VMM_MSG_FROZEN:
		if (++f->frozen < f->n)
			return 0;
		r = say(f, "rebooting\n");
		return r < 0 ? r : floor_luo_jump(f);
	case LU_VMM_MSG_RESUMED:
		r = luo_finish(vm->session);
		vm->session = safe_close(vm->session);
		r = vmm_send_reply(c->fd, p->hdr.seq, r < 0 ? r : 0, 0, -1);
		if (r >= 0 && ++f->resumed == f->n)
			r = luo_finish(f->session);
		return r;
	}
	return -EPROTO;
}

static int on_vmm(struct floor *f, struct conn *c)
{
	union packet p;
	int fds[1] = { -1 };
	size_t n_fds = 1;
	ssize_t n;
	int r;

	n = socket_recv_fds(c->fd, p.buf, sizeof(p.buf), fds, &n_fds);
	if (n == -EAGAIN)
		return 0;
	if (n <= 0) {
		/* the VMM left: nothing of an update depends on it any more here */
		(void)epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
		if (c->vm >= 0)
			f->vms[c->vm].conn = -1;
		conn_free(c);
		return 0;
	}
	r = on_packet(f, c, &p, n_fds ? fds[0] : -1);
	close_many(fds, n_fds);
	return r;
}

static int on_accept(struct floor *f, struct conn *l)
{
	int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct conn *c;
	int r;

	if (fd < 0)
		return errno == EAGAIN ? 0 : negative_errno();
	if (l == &control_listen) {
		if (f->control >= 0)
			return safe_close(fd), -EBUSY;
		f->control = control_conn.fd = fd;
		return watch(f, &control_conn);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return safe_close(fd), -ENOMEM;
	*c = (struct conn){ .fd = fd, .vm = -1, .next = conns };
	if (conns)
		conns->prev = c;
	conns = c;
	r = watch(f, c);
	if (r < 0)
		conn_free(c);
	return r;
}

static int loop(struct floor *f)
{
	struct epoll_event events[EVENTS_MAX];
	int n, r;

	for (;;) {
		n = epoll_wait(f->epoll_fd, events, EVENTS_MAX, -1);
		if (n < 0 && errno != EINTR)
			return negative_errno();
		for (int i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;

			/* SIGTERM: exit, so that the stamps shim writes its line */
			if (c == &signals)
				return 0;
			if (c == &vmm_listen || c == &control_listen)
				r = on_accept(f, c);
			else if (c == &control_conn)
				r = on_control(f);
			else
				r = on_vmm(f, c);
			if (r < 0)
				return r;
		}
	}
}

static int parse_args(int argc, char **argv, struct floor *f)
{
	static const struct option options[] = {
		{ "vmms", required_argument, NULL, 'n' },
		{ "fds", required_argument, NULL, 'f' },
		{ "kernel", required_argument, NULL, 'k' },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		if (c == 'n')
			f->n = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 'f')
			f->fds = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 'k')
			f->kernel = optarg;
		else
			return -EINVAL;
	}
	if (!f->kernel || f->n == 0 || f->fds == 0 || f->fds > LU_VMM_FDS_MAX || optind != argc)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct floor f = { .control = -1, .session = -1, .record = -1 };
	sigset_t mask;
	int r;

	if (parse_args(argc, argv, &f) < 0) {
		fprintf(stderr, "usage: floor-daemon --vmms N --fds F --kernel IMAGE\n");
		return 2;
	}
	f.vms = calloc(f.n, sizeof(*f.vms));
	f.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (!f.vms || f.epoll_fd < 0)
		return 1;
	for (unsigned i = 0; i < f.n; i++)
		f.vms[i] = (struct floor_vm){ .conn = -1, .session = -1 };

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signals.fd = signalfd(-1, &mask, SFD_CLOEXEC);
	r = signals.fd < 0 ? negative_errno() : watch(&f, &signals);

	if (r >= 0)
		r = floor_luo_start(&f);
	if (r >= 0)
		r = watch(&f, &vmm_listen);
	if (r >= 0)
		r = watch(&f, &control_listen);
	if (r >= 0)
		r = loop(&f);
	while (conns)
		conn_free(conns);
	free(f.vms);
	if (r >= 0)
		return 0;
	fprintf(stderr, "floor-daemon: %s\n", strerror(-r));
	return 1;
}
