/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libliveupdate-vmm: one connection from a VMM to liveupdated.
 *
 * The VMM talks in requests (HELLO, PRESERVE_FD, ...) that the daemon
 * answers with a REPLY echoing the request's seq; the daemon talks in
 * messages of its own (PREPARE, FREEZE, THAW, RESTORE) that can arrive at
 * any time, including while the VMM waits for a reply. A request therefore
 * reads packets until its reply shows up and parks every daemon message it
 * meets in a bounded queue; lu_vmm_next_event() serves that queue before it
 * reads the socket again. Queued messages do not make the socket readable,
 * which is why callers drain lu_vmm_next_event() until it returns 0.
 *
 * A REPLY nobody waits for (one that arrived after its request timed out)
 * is dropped. There is only ever one request in flight: the library is
 * thread-compatible, not thread-safe.
 *
 * Session fds: the library holds at most one. Before the kexec it is the
 * outgoing session from GET_SESSION; a THAW closes it at once, because the
 * kernel unpreserves the session's files only when every copy of the fd is
 * closed. After the kexec it is the incoming session from RESTORE, kept
 * until RESUMED is acknowledged, so that the VMM retrieves its files itself
 * and their pages are charged to it.
 *
 * Daemon restarts: when the daemon's end closes, the library connects
 * again and says HELLO with the same VM id, retrying until a deadline
 * (vmm.h). The fd the VMM polls is an epoll fd of the library's, holding
 * the socket of the moment and a timerfd for the retries, so it stays the
 * same across reconnections. Whether the update the VMM was in goes on is
 * the new daemon's word (LU_VMM_REPLY_RESUMED); if not, or if no daemon
 * answers in time, the library hands out a THAW of its own, and only then
 * HANGUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <liveupdate/vmm.h>

#include "luo.h"
#include "macro.h"
#include "socket-util.h"
#include "string-util.h"
#include "time-util.h"
#include "vmm-message.h"
#include "vmm-queue.h"

#define VMM_SOCKET_ENV "LIVEUPDATED_VMM_SOCKET"
#define VMM_SOCKET_DEFAULT "/run/liveupdated/" LU_VMM_SOCKET_NAME
#define CONNECT_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* The daemon preserves fds while we wait; a large memfd pins many pages. */
#define REQUEST_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define RECONNECT_ENV "LIVEUPDATE_VMM_RECONNECT_TIMEOUT_MS"
#define RECONNECT_TIMEOUT_MS_MAX 3600000u
#define RECONNECT_RETRY_USEC (50 * USEC_PER_MSEC)
#define RECONNECT_RETRY_MAX_USEC (1 * USEC_PER_SEC)

enum reconnect_state {
	RECONNECT_NONE,       /* connected, or reconnection off */
	RECONNECT_WAIT,       /* no socket: the next attempt is due when the timer fires */
	RECONNECT_HELLO_SENT, /* connected again, HELLO sent, its reply awaited */
	RECONNECT_FAILED,     /* no daemon by the deadline: HANGUP */
};

struct lu_vmm {
	int fd;        /* the socket of the moment; -1 while reconnecting */
	int epoll_fd;  /* what the VMM polls: fd and timer_fd */
	int timer_fd;  /* retries and the deadline of a reconnection */
	uint32_t seq;
	bool hangup;   /* fd is at EOF */
	char vm_id[LU_VM_ID_MAX + 1];
	char socket_path[108];

	uint32_t reconnect_timeout_ms; /* 0: a hangup is the end */
	enum reconnect_state reconnect;
	usec_t reconnect_deadline;
	usec_t retry_usec;
	uint32_t hello_seq;
	bool in_update;  /* between PREPARE and THAW or RESTORE */
	bool owe_thaw;   /* the update ended with the old daemon: a THAW of our own is due */
	char update_id[LU_UPDATE_ID_MAX + 1]; /* RESTORE's, to recognise it sent again */

	int session_fd;
	bool session_restored; /* session_fd came with RESTORE */
	uint32_t n_tokens;     /* RESTORE's tokens, what lu_vmm_restored_fd() accepts */
	uint64_t tokens[LU_VMM_FDS_MAX];

	struct vmm_queue queue;
};

static void drop_session(struct lu_vmm *vmm)
{
	vmm->session_fd = safe_close(vmm->session_fd);
	vmm->session_restored = false;
	vmm->n_tokens = 0;
}

static void drop_socket(struct lu_vmm *vmm)
{
	if (vmm->fd >= 0)
		(void)epoll_ctl(vmm->epoll_fd, EPOLL_CTL_DEL, vmm->fd, NULL);
	vmm->fd = safe_close(vmm->fd);
	vmm->hangup = false;
}

static int watch_socket(struct lu_vmm *vmm)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = vmm->fd };

	return epoll_ctl(vmm->epoll_fd, EPOLL_CTL_ADD, vmm->fd, &ev) < 0 ? negative_errno() : 0;
}

/* Wake the VMM's poll at when (CLOCK_MONOTONIC µs); 0 disarms. */
static void timer_arm(struct lu_vmm *vmm, usec_t when)
{
	struct itimerspec its = {};

	if (when) {
		its.it_value.tv_sec = (time_t)(when / USEC_PER_SEC);
		its.it_value.tv_nsec = (long)(when % USEC_PER_SEC) * 1000;
		/* an all-zero value would disarm */
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	(void)timerfd_settime(vmm->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Milliseconds left until deadline for poll(), rounded up; -1 for no deadline. */
static int poll_timeout(usec_t deadline)
{
	usec_t now;

	if (deadline == 0)
		return -1;
	now = now_usec(CLOCK_MONOTONIC);
	if (now >= deadline)
		return 0;
	return (int)MIN((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (usec_t)INT32_MAX);
}

static int wait_fd(int fd, short events, usec_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	for (;;) {
		r = poll(&p, 1, poll_timeout(deadline));
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return negative_errno();
	}
}

/*
 * Read one packet. Returns its type, 0 on EOF (and marks the hangup), or a
 * negative errno: -EAGAIN when nothing is there, -EBADMSG for anything the
 * protocol does not allow (the packet is consumed, its fds closed).
 */
static int recv_packet(struct lu_vmm *vmm, struct vmm_packet *p)
{
	size_t n_fds = 1;
	ssize_t n;
	int r;

	p->fd = -1;
	n = socket_recv_fds(vmm->fd, p->u.buf, sizeof(p->u.buf), &p->fd, &n_fds);
	/* A daemon that closed with our messages unread resets rather than
	 * closes; the kernel reports that once, and what the daemon sent
	 * before (a refusal at connect, say) is still queued behind it. */
	if (n == -ECONNRESET) {
		n_fds = 1;
		n = socket_recv_fds(vmm->fd, p->u.buf, sizeof(p->u.buf), &p->fd, &n_fds);
		if (n == -EAGAIN)
			n = 0;
	}
	if (n == -EMSGSIZE)
		return -EBADMSG;
	if (n == 0 || n == -ECONNRESET) {
		vmm->hangup = true;
		return 0;
	}
	if (n < 0)
		return (int)n;
	p->len = (size_t)n;

	r = vmm_message_check(p->u.buf, p->len, n_fds, true);
	if (r < 0) {
		p->fd = safe_close(p->fd);
		return r;
	}
	/* Cancel at once: the kernel unpreserves only when every copy is closed. */
	if (r == LU_VMM_MSG_THAW)
		drop_session(vmm);
	if (r == LU_VMM_MSG_PREPARE || r == LU_VMM_MSG_FREEZE)
		vmm->in_update = true;
	else if (r == LU_VMM_MSG_THAW || r == LU_VMM_MSG_RESTORE)
		vmm->in_update = false;
	return r;
}

/*
 * Read packets until a REPLY to seq arrives (want == LU_VMM_MSG_REPLY,
 * stored in *reply) or a daemon message of type want has been queued.
 * Everything else the daemon sends meanwhile is queued.
 */
static int wait_for(struct lu_vmm *vmm, uint32_t want, uint32_t seq, usec_t deadline,
		    struct vmm_packet *reply)
{
	struct vmm_packet p;
	int r;

	for (;;) {
		if (want != LU_VMM_MSG_REPLY && vmm_queue_contains(&vmm->queue, want))
			return 0;
		if (vmm->hangup)
			return -ECONNRESET;

		r = wait_fd(vmm->fd, POLLIN, deadline);
		if (r < 0)
			return r;
		r = recv_packet(vmm, &p);
		if (r == -EAGAIN || r == -EINTR)
			continue;
		if (r < 0)
			return r;
		if (r == 0)
			return -ECONNRESET;

		if (r == LU_VMM_MSG_REPLY) {
			/* seq 0 answers no request: the daemon refused the
			 * connection itself (not authorised, or full) */
			const struct lu_vmm_reply *refusal = (const void *)p.u.buf;

			if (p.u.hdr.seq == 0 && refusal->error < 0) {
				p.fd = safe_close(p.fd);
				return refusal->error;
			}
			if (want == LU_VMM_MSG_REPLY && p.u.hdr.seq == seq) {
				memcpy(reply, &p, offsetof(struct vmm_packet, u) + p.len);
				return 0;
			}
			/* a late reply to a request that timed out */
			p.fd = safe_close(p.fd);
			continue;
		}

		r = vmm_queue_push(&vmm->queue, &p);
		if (r < 0) {
			p.fd = safe_close(p.fd);
			return r;
		}
	}
}

/* Send, waiting for room if the daemon is slow to read. */
static int send_request(struct lu_vmm *vmm, uint32_t type, uint32_t seq, uint64_t token, int fd,
			usec_t deadline)
{
	int r;

	for (;;) {
		switch (type) {
		case LU_VMM_MSG_HELLO:
			r = vmm_send_hello(vmm->fd, seq, vmm->vm_id);
			break;
		case LU_VMM_MSG_PRESERVE_FD:
		case LU_VMM_MSG_DECLARE_TOKEN:
			r = vmm_send_token(vmm->fd, type, seq, token, fd);
			break;
		default:
			r = vmm_send_simple(vmm->fd, type, seq);
			break;
		}
		if (r != -EAGAIN)
			return r == -EPIPE ? -ECONNRESET : r;
		r = wait_fd(vmm->fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
}

static uint32_t next_seq(struct lu_vmm *vmm)
{
	/* seq 0 is what the daemon's own messages carry */
	if (++vmm->seq == 0)
		vmm->seq = 1;
	return vmm->seq;
}

/*
 * One request and its reply. ret_fd: where the fd the reply carries goes;
 * NULL when the reply must carry none. ret_flags may be NULL.
 */
static int request(struct lu_vmm *vmm, uint32_t type, uint64_t token, int fd, usec_t timeout,
		   int *ret_fd, uint32_t *ret_flags)
{
	usec_t deadline = now_usec(CLOCK_MONOTONIC) + timeout;
	struct vmm_packet p;
	struct lu_vmm_reply reply;
	uint32_t seq;
	int r;

	if (vmm->hangup || vmm->fd < 0 || vmm->reconnect != RECONNECT_NONE)
		return -ENOTCONN;

	seq = next_seq(vmm);
	r = send_request(vmm, type, seq, token, fd, deadline);
	/* A daemon that refused us at once left its reason queued: read it. */
	if (r < 0 && r != -EPIPE && r != -ECONNRESET)
		return r;
	r = wait_for(vmm, LU_VMM_MSG_REPLY, seq, deadline, &p);
	if (r < 0)
		return r;

	memcpy(&reply, p.u.buf, sizeof(reply));
	if (reply.error < 0 || (p.fd >= 0 && !ret_fd) || (p.fd < 0 && ret_fd)) {
		p.fd = safe_close(p.fd);
		return reply.error < 0 ? reply.error : -EBADMSG;
	}
	if (ret_fd)
		*ret_fd = p.fd;
	if (ret_flags)
		*ret_flags = reply.flags;
	return 0;
}

static const char *socket_path_default(void)
{
	const char *e = secure_getenv(VMM_SOCKET_ENV);

	return e && *e ? e : VMM_SOCKET_DEFAULT;
}

static void retry_later(struct lu_vmm *vmm, usec_t now)
{
	usec_t next = now + vmm->retry_usec;

	vmm->retry_usec = MIN(vmm->retry_usec * 2, RECONNECT_RETRY_MAX_USEC);
	timer_arm(vmm, MIN(next, vmm->reconnect_deadline));
}

/* The update this VMM was in did not survive the daemon: a THAW is owed. */
static void update_lost(struct lu_vmm *vmm)
{
	if (!vmm->in_update)
		return;
	vmm->in_update = false;
	vmm->owe_thaw = true;
	drop_session(vmm);
}

static void reconnect_start(struct lu_vmm *vmm)
{
	drop_socket(vmm);
	vmm->reconnect = RECONNECT_WAIT;
	vmm->reconnect_deadline = now_usec(CLOCK_MONOTONIC) + (usec_t)vmm->reconnect_timeout_ms * USEC_PER_MSEC;
	vmm->retry_usec = RECONNECT_RETRY_USEC;
}

static void reconnect_fail(struct lu_vmm *vmm)
{
	drop_socket(vmm);
	vmm->reconnect = RECONNECT_FAILED;
	timer_arm(vmm, 0);
	update_lost(vmm);
}

/* HELLO's reply on a new connection: done, retry, or give up. */
static int reconnect_answered(struct lu_vmm *vmm, struct vmm_packet *p, usec_t now)
{
	struct lu_vmm_reply reply;

	memcpy(&reply, p->u.buf, sizeof(reply));
	p->fd = safe_close(p->fd);
	if (reply.error == -EEXIST || reply.error == -EBUSY || reply.error == -EAGAIN) {
		/* the daemon has not seen our old connection go yet */
		drop_socket(vmm);
		vmm->reconnect = RECONNECT_WAIT;
		retry_later(vmm, now);
		return 0;
	}
	if (reply.error < 0) {
		reconnect_fail(vmm);
		return reply.error;
	}
	vmm->reconnect = RECONNECT_NONE;
	timer_arm(vmm, 0);
	if (!(reply.flags & LU_VMM_REPLY_RESUMED))
		update_lost(vmm);
	return 1;
}

/*
 * One step of a reconnection, never blocking. Returns 1 once connected and
 * registered again, 0 while it goes on (the timer or the socket will wake
 * the VMM's poll), or a negative errno once it gave up.
 */
static int reconnect_step(struct lu_vmm *vmm)
{
	usec_t now = now_usec(CLOCK_MONOTONIC);
	struct vmm_packet p;
	uint64_t ticks;
	int r;

	(void)!read(vmm->timer_fd, &ticks, sizeof(ticks));
	if (vmm->reconnect == RECONNECT_FAILED)
		return -ENOTCONN;
	if (now >= vmm->reconnect_deadline) {
		reconnect_fail(vmm);
		return -ETIMEDOUT;
	}

	if (vmm->reconnect == RECONNECT_WAIT) {
		r = socket_connect_unix(vmm->socket_path, SOCK_SEQPACKET | SOCK_NONBLOCK);
		if (r < 0) {
			retry_later(vmm, now);
			return 0;
		}
		vmm->fd = r;
		vmm->hello_seq = next_seq(vmm);
		r = watch_socket(vmm);
		if (r >= 0)
			r = vmm_send_hello(vmm->fd, vmm->hello_seq, vmm->vm_id);
		if (r < 0) {
			drop_socket(vmm);
			retry_later(vmm, now);
			return 0;
		}
		vmm->reconnect = RECONNECT_HELLO_SENT;
		/* the reply wakes the VMM up, or the deadline does */
		timer_arm(vmm, vmm->reconnect_deadline);
	}

	for (;;) {
		r = recv_packet(vmm, &p);
		if (r == -EAGAIN)
			return 0;
		if (r == -EINTR || r == -EBADMSG)
			continue;
		if (r <= 0) {
			/* a daemon that went again before answering: try once more */
			drop_socket(vmm);
			vmm->reconnect = RECONNECT_WAIT;
			retry_later(vmm, now);
			return 0;
		}
		if (r == LU_VMM_MSG_REPLY) {
			if (p.u.hdr.seq == vmm->hello_seq)
				return reconnect_answered(vmm, &p, now);
			p.fd = safe_close(p.fd);
			continue;
		}
		if (vmm_queue_push(&vmm->queue, &p) < 0)
			p.fd = safe_close(p.fd);
	}
}

static uint32_t reconnect_timeout_default(void)
{
	const char *e = secure_getenv(RECONNECT_ENV);
	unsigned long v;
	char *end;

	if (!e || !*e)
		return LU_VMM_RECONNECT_TIMEOUT_MS_DEFAULT;
	errno = 0;
	v = strtoul(e, &end, 10);
	if (errno || *end || v > RECONNECT_TIMEOUT_MS_MAX)
		return LU_VMM_RECONNECT_TIMEOUT_MS_DEFAULT;
	return (uint32_t)v;
}

/**
 * lu_vmm_free() - close the connection and every fd the library holds
 * @vmm: the connection, or NULL
 *
 * Return: NULL.
 */
struct lu_vmm *lu_vmm_free(struct lu_vmm *vmm)
{
	if (!vmm)
		return NULL;
	vmm_queue_clear(&vmm->queue);
	drop_session(vmm);
	safe_close(vmm->fd);
	safe_close(vmm->timer_fd);
	safe_close(vmm->epoll_fd);
	free(vmm);
	return NULL;
}

DEFINE_FREEP(struct lu_vmm, lu_vmm_free)

/**
 * lu_vmm_connect() - connect to liveupdated and register a VM
 * @socket_path: the daemon's VMM socket; NULL for $LIVEUPDATED_VMM_SOCKET
 *	or /run/liveupdated/vmm.sock
 * @vm_id: the VM's id, 1..LU_VM_ID_MAX bytes of [A-Za-z0-9._-]
 * @ret: the new connection
 *
 * Sends HELLO and waits up to 10 s for the answer. When the daemon announces
 * a pending RESTORE or PREPARE, that message is awaited too, so the first
 * lu_vmm_next_event() returns it. The socket is non-blocking afterwards.
 *
 * Return: 0; -EINVAL for a bad vm_id, -ETIMEDOUT when the daemon does not
 * answer, the daemon's negative errno when it refuses the VM, or another
 * negative errno from connecting.
 */
int lu_vmm_connect(const char *socket_path, const char *vm_id, struct lu_vmm **ret)
{
	_cleanup_(lu_vmm_freep) struct lu_vmm *vmm = NULL;
	usec_t deadline = now_usec(CLOCK_MONOTONIC) + CONNECT_TIMEOUT_USEC;
	uint32_t flags = 0;
	int r;

	if (!ret || !vm_id_valid(vm_id))
		return -EINVAL;

	vmm = calloc(1, sizeof(*vmm));
	if (!vmm)
		return -ENOMEM;
	vmm->fd = -1;
	vmm->session_fd = -1;
	vmm->epoll_fd = -1;
	vmm->timer_fd = -1;
	for (size_t i = 0; i < VMM_QUEUE_MAX; i++)
		vmm->queue.items[i].fd = -1;
	memcpy(vmm->vm_id, vm_id, strlen(vm_id) + 1);
	socket_path = socket_path ?: socket_path_default();
	if (strlen(socket_path) >= sizeof(vmm->socket_path))
		return -ENAMETOOLONG;
	strcpy(vmm->socket_path, socket_path);
	vmm->reconnect_timeout_ms = reconnect_timeout_default();

	vmm->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (vmm->epoll_fd < 0)
		return negative_errno();
	vmm->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (vmm->timer_fd < 0)
		return negative_errno();
	r = epoll_ctl(vmm->epoll_fd, EPOLL_CTL_ADD, vmm->timer_fd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.fd = vmm->timer_fd });
	if (r < 0)
		return negative_errno();

	vmm->fd = socket_connect_unix(socket_path, SOCK_SEQPACKET);
	if (vmm->fd < 0)
		return vmm->fd;

	r = request(vmm, LU_VMM_MSG_HELLO, 0, -1, CONNECT_TIMEOUT_USEC, NULL, &flags);
	if (r < 0)
		return r;
	if (flags & LU_VMM_REPLY_RESTORE_PENDING) {
		r = wait_for(vmm, LU_VMM_MSG_RESTORE, 0, deadline, NULL);
		if (r < 0)
			return r;
	}
	if (flags & LU_VMM_REPLY_PREPARE_PENDING) {
		r = wait_for(vmm, LU_VMM_MSG_PREPARE, 0, deadline, NULL);
		if (r < 0)
			return r;
	}

	r = fcntl(vmm->fd, F_GETFL);
	if (r < 0 || fcntl(vmm->fd, F_SETFL, r | O_NONBLOCK) < 0)
		return negative_errno();
	r = fcntl(vmm->epoll_fd, F_GETFL);
	if (r < 0 || fcntl(vmm->epoll_fd, F_SETFL, r | O_NONBLOCK) < 0)
		return negative_errno();
	r = watch_socket(vmm);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(vmm);
	return 0;
}

/**
 * lu_vmm_get_fd() - the fd to poll for POLLIN
 * @vmm: the connection
 *
 * An epoll fd of the library's that is readable whenever the connection
 * of the moment is, or a reconnection step is due: the same fd for the
 * library's whole life, across reconnections.
 *
 * Return: the fd, owned by the library, or -EINVAL.
 */
int lu_vmm_get_fd(const struct lu_vmm *vmm)
{
	return vmm ? vmm->epoll_fd : -EINVAL;
}

/**
 * lu_vmm_set_reconnect_timeout() - how long to look for a restarted daemon
 * @vmm: the connection
 * @timeout_ms: 0 turns reconnection off (a hangup is the end), at most one hour
 *
 * Return: 0 or -EINVAL.
 */
int lu_vmm_set_reconnect_timeout(struct lu_vmm *vmm, uint32_t timeout_ms)
{
	if (!vmm || timeout_ms > RECONNECT_TIMEOUT_MS_MAX)
		return -EINVAL;
	vmm->reconnect_timeout_ms = timeout_ms;
	return 0;
}

/**
 * lu_vmm_get_vm_id() - the VM id given to lu_vmm_connect()
 * @vmm: the connection
 *
 * Return: the id, or NULL when vmm is NULL.
 */
const char *lu_vmm_get_vm_id(const struct lu_vmm *vmm)
{
	return vmm ? vmm->vm_id : NULL;
}

static void event_from_packet(struct lu_vmm *vmm, struct vmm_packet *p, struct lu_vmm_event *ev)
{
	switch (p->u.hdr.type) {
	case LU_VMM_MSG_PREPARE: {
		struct lu_vmm_prepare m;

		memcpy(&m, p->u.buf, sizeof(m));
		ev->type = LU_VMM_EVENT_PREPARE;
		memcpy(ev->update_id, m.update_id, sizeof(ev->update_id));
		ev->max_fds = m.max_fds;
		break;
	}
	case LU_VMM_MSG_FREEZE: {
		struct lu_vmm_freeze m;

		memcpy(&m, p->u.buf, sizeof(m));
		ev->type = LU_VMM_EVENT_FREEZE;
		ev->timeout_ms = m.timeout_ms;
		break;
	}
	case LU_VMM_MSG_THAW: {
		struct lu_vmm_thaw m;

		memcpy(&m, p->u.buf, sizeof(m));
		ev->type = LU_VMM_EVENT_THAW;
		ev->error = m.error;
		break;
	}
	case LU_VMM_MSG_RESTORE: {
		struct lu_vmm_restore m;

		memcpy(&m, p->u.buf, sizeof(m));
		if (vmm->session_restored && strcmp(m.update_id, vmm->update_id) == 0) {
			/* a restarted daemon sends it again: we have it already */
			ev->type = LU_VMM_EVENT_NONE;
			break;
		}
		drop_session(vmm);
		memcpy(vmm->update_id, m.update_id, sizeof(vmm->update_id));
		vmm->session_fd = TAKE_FD(p->fd);
		vmm->session_restored = true;
		vmm->n_tokens = m.n_tokens;
		memcpy(vmm->tokens, p->u.buf + sizeof(m), m.n_tokens * sizeof(uint64_t));

		ev->type = LU_VMM_EVENT_RESTORE;
		memcpy(ev->update_id, m.update_id, sizeof(ev->update_id));
		ev->n_tokens = vmm->n_tokens;
		ev->tokens = vmm->tokens;
		break;
	}
	}
	/* The checker allows fds only on RESTORE, which took its own. */
	p->fd = safe_close(p->fd);
}

/**
 * lu_vmm_next_event() - the next thing the daemon asked for, if any
 * @vmm: the connection
 * @ret: the event; type LU_VMM_EVENT_NONE when nothing is pending
 *
 * Serves the events queued while a request waited for its reply first,
 * then reads the socket without blocking. Call it until it returns 0
 * before polling again: queued events do not make the fd readable. After
 * the daemon closed the connection every call returns the HANGUP event.
 *
 * Return: the event type (positive), 0 when there is none, -EBADMSG when
 * the daemon sent something malformed (it is dropped), or another negative
 * errno from the socket.
 */
int lu_vmm_next_event(struct lu_vmm *vmm, struct lu_vmm_event *ret)
{
	struct vmm_packet p;
	int r;

	if (!vmm || !ret)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));

	for (;;) {
		if (vmm_queue_pop(&vmm->queue, &p)) {
			event_from_packet(vmm, &p, ret);
			if (ret->type == LU_VMM_EVENT_NONE)
				continue;
			return ret->type;
		}
		if (vmm->owe_thaw) {
			vmm->owe_thaw = false;
			ret->type = LU_VMM_EVENT_THAW;
			ret->error = -ECONNRESET;
			return ret->type;
		}
		if (vmm->reconnect == RECONNECT_FAILED)
			break;
		if (vmm->reconnect != RECONNECT_NONE) {
			r = reconnect_step(vmm);
			if (r == 0)
				return LU_VMM_EVENT_NONE;
			continue;
		}
		if (vmm->hangup) {
			if (vmm->reconnect_timeout_ms == 0)
				break;
			reconnect_start(vmm);
			continue;
		}

		r = recv_packet(vmm, &p);
		if (r == -EAGAIN)
			return LU_VMM_EVENT_NONE;
		if (r == -EINTR || r == 0)
			continue;
		if (r < 0)
			return r;
		if (r == LU_VMM_MSG_REPLY) {
			/* a late reply to a request that timed out */
			p.fd = safe_close(p.fd);
			continue;
		}
		event_from_packet(vmm, &p, ret);
		if (ret->type == LU_VMM_EVENT_NONE)
			continue;
		return ret->type;
	}

	ret->type = LU_VMM_EVENT_HANGUP;
	return ret->type;
}

/**
 * lu_vmm_wait_event() - block for the next event
 * @vmm: the connection
 * @timeout_ms: how long to wait at most, -1 for ever
 * @ret: the event; LU_VMM_EVENT_NONE when the time ran out
 *
 * Return: as lu_vmm_next_event(): 0 only when timeout_ms passed.
 */
int lu_vmm_wait_event(struct lu_vmm *vmm, int timeout_ms, struct lu_vmm_event *ret)
{
	usec_t deadline = 0;
	int r;

	if (!vmm || !ret)
		return -EINVAL;
	if (timeout_ms >= 0)
		deadline = now_usec(CLOCK_MONOTONIC) + (usec_t)timeout_ms * USEC_PER_MSEC;

	for (;;) {
		r = lu_vmm_next_event(vmm, ret);
		if (r != LU_VMM_EVENT_NONE)
			return r;
		r = wait_fd(vmm->epoll_fd, POLLIN, deadline);
		if (r == -ETIMEDOUT)
			return LU_VMM_EVENT_NONE;
		if (r < 0)
			return r;
	}
}

/**
 * lu_vmm_preserve_fd() - have the daemon preserve fd under token
 * @vmm: the connection
 * @fd: the file (a memfd, ...); the caller keeps its own copy
 * @token: the token to retrieve it with after the kexec
 *
 * Return: 0, or the daemon's negative errno (-EEXIST: token taken, -ENOENT:
 * the kernel cannot preserve this kind of file, ...), -ETIMEDOUT, or a
 * socket error.
 */
int lu_vmm_preserve_fd(struct lu_vmm *vmm, int fd, uint64_t token)
{
	if (!vmm)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	return request(vmm, LU_VMM_MSG_PRESERVE_FD, token, fd, REQUEST_TIMEOUT_USEC, NULL, NULL);
}

/**
 * lu_vmm_get_session_fd() - the LUO session to preserve fds into directly
 * @vmm: the connection
 *
 * Asks the daemon once and keeps the fd; a THAW closes it. After a RESTORE
 * it is the restored session.
 *
 * Return: the session fd, owned by the library, or a negative errno.
 */
int lu_vmm_get_session_fd(struct lu_vmm *vmm)
{
	int r, fd = -1;

	if (!vmm)
		return -EINVAL;
	if (vmm->session_fd >= 0)
		return vmm->session_fd;

	r = request(vmm, LU_VMM_MSG_GET_SESSION, 0, -1, REQUEST_TIMEOUT_USEC, &fd, NULL);
	if (r < 0)
		return r;
	vmm->session_fd = fd;
	vmm->session_restored = false;
	return fd;
}

/**
 * lu_vmm_session_preserve_fd() - preserve fd in the session ourselves
 * @vmm: the connection
 * @fd: a file only its owner can preserve (KVM)
 * @token: the token to retrieve it with after the kexec
 *
 * Preserves fd with the LUO PRESERVE_FD ioctl on the session from
 * lu_vmm_get_session_fd(), then declares the token to the daemon.
 *
 * Return: 0, the kernel's negative errno, or the daemon's.
 */
int lu_vmm_session_preserve_fd(struct lu_vmm *vmm, int fd, uint64_t token)
{
	int r, session;

	if (!vmm)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	session = lu_vmm_get_session_fd(vmm);
	if (session < 0)
		return session;
	r = luo_preserve_fd(session, fd, token);
	if (r < 0)
		return r;
	return request(vmm, LU_VMM_MSG_DECLARE_TOKEN, token, -1, REQUEST_TIMEOUT_USEC, NULL, NULL);
}

/**
 * lu_vmm_prepare_done() - tell the daemon every fd is preserved
 * @vmm: the connection
 *
 * Return: 0 or a negative errno.
 */
int lu_vmm_prepare_done(struct lu_vmm *vmm)
{
	if (!vmm)
		return -EINVAL;
	return request(vmm, LU_VMM_MSG_PREPARE_DONE, 0, -1, REQUEST_TIMEOUT_USEC, NULL, NULL);
}

/**
 * lu_vmm_frozen() - tell the daemon the VM is stopped
 * @vmm: the connection
 *
 * FROZEN has no reply; the next word from the daemon is a THAW or nothing
 * (the kexec).
 *
 * Return: 0 or a negative errno.
 */
int lu_vmm_frozen(struct lu_vmm *vmm)
{
	usec_t deadline = now_usec(CLOCK_MONOTONIC) + REQUEST_TIMEOUT_USEC;

	if (!vmm)
		return -EINVAL;
	if (vmm->hangup || vmm->fd < 0 || vmm->reconnect != RECONNECT_NONE)
		return -ENOTCONN;
	return send_request(vmm, LU_VMM_MSG_FROZEN, next_seq(vmm), 0, -1, deadline);
}

/**
 * lu_vmm_restored_fd() - retrieve a file preserved before the kexec
 * @vmm: the connection
 * @token: one of the tokens the RESTORE event listed
 *
 * Return: a new O_CLOEXEC fd owned by the caller; -ENOENT when token was not
 * in the RESTORE (or there was none), or the kernel's negative errno.
 */
int lu_vmm_restored_fd(struct lu_vmm *vmm, uint64_t token)
{
	if (!vmm)
		return -EINVAL;
	if (!vmm->session_restored)
		return -ENOENT;
	for (uint32_t i = 0; i < vmm->n_tokens; i++)
		if (vmm->tokens[i] == token)
			return luo_retrieve_fd(vmm->session_fd, token);
	return -ENOENT;
}

/**
 * lu_vmm_resumed() - tell the daemon the restored VM runs again
 * @vmm: the connection
 *
 * The daemon finishes the session, which frees every file not retrieved;
 * once it acknowledged, the library closes its session fd. When the kernel
 * refuses to finish it (-EBUSY: a passed-through device has no correct new
 * domain attached), the session stays and this may be called again.
 *
 * Return: 0 or a negative errno.
 */
int lu_vmm_resumed(struct lu_vmm *vmm)
{
	int r;

	if (!vmm)
		return -EINVAL;
	r = request(vmm, LU_VMM_MSG_RESUMED, 0, -1, REQUEST_TIMEOUT_USEC, NULL, NULL);
	if (r < 0)
		return r;
	if (vmm->session_restored)
		drop_session(vmm);
	return 0;
}

static const char *const event_names[] = {
	[LU_VMM_EVENT_NONE] = "none",
	[LU_VMM_EVENT_PREPARE] = "prepare",
	[LU_VMM_EVENT_FREEZE] = "freeze",
	[LU_VMM_EVENT_THAW] = "thaw",
	[LU_VMM_EVENT_RESTORE] = "restore",
	[LU_VMM_EVENT_HANGUP] = "hangup",
};

/**
 * lu_vmm_event_type_to_string() - a name for logs and JSON
 * @t: the event type
 *
 * Return: "none", "prepare", ..., or NULL for an unknown type.
 */
const char *lu_vmm_event_type_to_string(enum lu_vmm_event_type t)
{
	return (unsigned int)t < ARRAY_SIZE(event_names) ? event_names[t] : NULL;
}
