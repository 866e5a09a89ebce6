/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libliveupdate-vmm against a scripted daemon: each test forks a child that
 * plays liveupdated on a listening SEQPACKET socket in a temp dir, driven
 * with the vmm-message functions, while the parent uses the library. The
 * child reports a broken expectation through its exit status. A plain
 * socketpair end stands in for the LUO session fd: no kernel is needed to
 * see who holds it, and its peer sees EOF once every copy is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <liveupdate/vmm.h>

#include "macro.h"
#include "socket-util.h"
#include "vmm-message.h"

struct fixture {
	char dir[64];
	char path[96];
	pid_t child;
};

union msg {
	struct lu_vmm_header hdr;
	struct lu_vmm_hello hello;
	struct lu_vmm_token_msg token;
	char buf[LU_VMM_MSG_MAX];
};

/* Inside the daemon child: no cmocka, just an exit status naming the line. */
#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "daemon %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			_exit(1);                                                         \
		}                                                                         \
	} while (0)

static int d_recv(int conn, union msg *m, int *fd)
{
	size_t n_fds = 1;
	ssize_t n;

	*fd = -1;
	n = socket_recv_fds(conn, m->buf, sizeof(m->buf), fd, &n_fds);
	/* closing with unread messages queued reads as a reset, not EOF */
	if (n == 0 || n == -ECONNRESET)
		return 0;
	CHECK(n > 0);
	return vmm_message_check(m->buf, (size_t)n, n_fds, false);
}

static void d_expect(int conn, uint32_t type, union msg *m)
{
	int fd;

	CHECK(d_recv(conn, m, &fd) == (int)type);
	CHECK(fd < 0);
}

/* HELLO from vm-1, answered with error and flags; returns the seq used. */
static uint32_t d_hello(int conn, int error, uint32_t flags)
{
	union msg m;

	d_expect(conn, LU_VMM_MSG_HELLO, &m);
	CHECK(!strcmp(m.hello.vm_id, "vm-1"));
	CHECK(m.hello.version == LU_VMM_PROTOCOL_VERSION);
	CHECK(m.hdr.seq != 0);
	CHECK(vmm_send_reply(conn, m.hdr.seq, error, flags, -1) == 0);
	return m.hdr.seq;
}

/* Wait for the library to close the connection. */
static void d_expect_eof(int conn)
{
	union msg m;
	int fd;

	CHECK(d_recv(conn, &m, &fd) == 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test-libvmm-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/vmm.sock", f->dir);
	f->child = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Listen, fork, and run script in the child on the accepted connection. */
static void daemon_start(struct fixture *f, void (*script)(int conn))
{
	int lfd = socket_listen_unix(f->path, SOCK_SEQPACKET, 0600, 4);

	assert_true(lfd >= 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int conn;

		alarm(20);
		CHECK(poll(&p, 1, -1) == 1);
		conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		CHECK(conn >= 0);
		close(lfd);
		script(conn);
		close(conn);
		_exit(0);
	}
	close(lfd);
}

static void daemon_wait(struct fixture *f)
{
	int status;

	assert_int_equal(waitpid(f->child, &status, 0), f->child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void script_hello(int conn)
{
	d_hello(conn, 0, 0);
	d_expect_eof(conn);
}

static void test_connect(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;
	struct lu_vmm_event ev;
	int fd;

	daemon_start(f, script_hello);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), 0);
	assert_non_null(vmm);
	assert_string_equal(lu_vmm_get_vm_id(vmm), "vm-1");
	fd = lu_vmm_get_fd(vmm);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(lu_vmm_next_event(vmm, &ev), 0);
	assert_int_equal(ev.type, LU_VMM_EVENT_NONE);
	assert_int_equal(lu_vmm_wait_event(vmm, 20, &ev), 0);
	assert_int_equal(ev.type, LU_VMM_EVENT_NONE);
	assert_null(lu_vmm_free(vmm));
	daemon_wait(f);
}

static void test_connect_env(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;

	daemon_start(f, script_hello);
	assert_int_equal(setenv("LIVEUPDATED_VMM_SOCKET", f->path, 1), 0);
	assert_int_equal(lu_vmm_connect(NULL, "vm-1", &vmm), 0);
	unsetenv("LIVEUPDATED_VMM_SOCKET");
	lu_vmm_free(vmm);
	daemon_wait(f);
}

static void test_connect_invalid(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;

	assert_int_equal(lu_vmm_connect(f->path, "bad/id", &vmm), -EINVAL);
	assert_int_equal(lu_vmm_connect(f->path, "", &vmm), -EINVAL);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", NULL), -EINVAL);
	/* nobody listens */
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), -ENOENT);
	assert_null(vmm);
	assert_null(lu_vmm_free(NULL));
	assert_int_equal(lu_vmm_get_fd(NULL), -EINVAL);
	assert_null(lu_vmm_get_vm_id(NULL));
	assert_string_equal(lu_vmm_event_type_to_string(LU_VMM_EVENT_RESTORE), "restore");
	assert_null(lu_vmm_event_type_to_string(99));
}

static void script_refuse(int conn)
{
	d_hello(conn, -EEXIST, 0);
	d_expect_eof(conn);
}

static void test_connect_refused(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;

	daemon_start(f, script_refuse);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), -EEXIST);
	assert_null(vmm);
	daemon_wait(f);
}

static void script_preserve(int conn)
{
	union msg m;
	int fd;

	d_hello(conn, 0, 0);

	CHECK(d_recv(conn, &m, &fd) == LU_VMM_MSG_PRESERVE_FD);
	CHECK(m.token.token == 7);
	/* the fd works: write through it, the VMM reads the other end */
	CHECK(fd >= 0);
	CHECK(write(fd, "ram", 3) == 3);
	close(fd);
	CHECK(vmm_send_reply(conn, m.hdr.seq, 0, 0, -1) == 0);

	CHECK(d_recv(conn, &m, &fd) == LU_VMM_MSG_PRESERVE_FD);
	CHECK(m.token.token == 7);
	close(fd);
	CHECK(vmm_send_reply(conn, m.hdr.seq, -EEXIST, 0, -1) == 0);

	d_expect_eof(conn);
}

static void test_preserve_fd(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;
	char buf[4] = {};
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	daemon_start(f, script_preserve);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), 0);
	assert_int_equal(lu_vmm_preserve_fd(vmm, -1, 7), -EBADF);
	assert_int_equal(lu_vmm_preserve_fd(vmm, p[1], 7), 0);
	assert_int_equal(read(p[0], buf, 3), 3);
	assert_string_equal(buf, "ram");
	assert_int_equal(lu_vmm_preserve_fd(vmm, p[1], 7), -EEXIST);
	lu_vmm_free(vmm);
	daemon_wait(f);
	close(p[0]);
	close(p[1]);
}

static void script_queue(int conn)
{
	struct lu_vmm_freeze bad = { .hdr = { .type = LU_VMM_MSG_FREEZE }, ._pad = 1 };
	union msg m;

	d_hello(conn, 0, 0);
	d_expect(conn, LU_VMM_MSG_PREPARE_DONE, &m);
	/* daemon messages, a stale reply, then the answer */
	CHECK(vmm_send_prepare(conn, "upd-1", 9) == 0);
	CHECK(vmm_send_reply(conn, m.hdr.seq + 100, 0, 0, -1) == 0);
	CHECK(vmm_send_freeze(conn, 250) == 0);
	CHECK(vmm_send_reply(conn, m.hdr.seq, 0, 0, -1) == 0);
	/* something malformed, then something fine */
	CHECK(socket_send_fds(conn, &bad, sizeof(bad), NULL, 0) == 0);
	CHECK(vmm_send_thaw(conn, -ECANCELED) == 0);
	d_expect_eof(conn);
}

static void test_queued_events(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;
	struct lu_vmm_event ev;

	daemon_start(f, script_queue);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), 0);
	assert_int_equal(lu_vmm_prepare_done(vmm), 0);

	assert_int_equal(lu_vmm_next_event(vmm, &ev), LU_VMM_EVENT_PREPARE);
	assert_string_equal(ev.update_id, "upd-1");
	assert_int_equal(ev.max_fds, 9);
	assert_int_equal(lu_vmm_next_event(vmm, &ev), LU_VMM_EVENT_FREEZE);
	assert_int_equal(ev.timeout_ms, 250);
	assert_int_equal(lu_vmm_wait_event(vmm, 5000, &ev), -EBADMSG);
	assert_int_equal(lu_vmm_wait_event(vmm, 5000, &ev), LU_VMM_EVENT_THAW);
	assert_int_equal(ev.error, -ECANCELED);
	assert_int_equal(lu_vmm_next_event(vmm, &ev), LU_VMM_EVENT_NONE);
	lu_vmm_free(vmm);
	daemon_wait(f);
}

static void script_overflow(int conn)
{
	union msg m;

	d_hello(conn, 0, 0);
	d_expect(conn, LU_VMM_MSG_PREPARE_DONE, &m);
	/* the VMM gives up after VMM_QUEUE_MAX and may close while we still send */
	for (int i = 0; i < 20; i++)
		if (vmm_send_freeze(conn, 1) < 0)
			return;
	(void)vmm_send_reply(conn, m.hdr.seq, 0, 0, -1);
	d_expect_eof(conn);
}

static void test_queue_bounded(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;

	daemon_start(f, script_overflow);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), 0);
	assert_int_equal(lu_vmm_prepare_done(vmm), -ENOBUFS);
	lu_vmm_free(vmm);
	daemon_wait(f);
}

static void script_thaw(int conn)
{
	union msg m;
	int session[2];
	char c;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, session) == 0);
	d_hello(conn, 0, 0);
	CHECK(vmm_send_prepare(conn, "upd-1", 4) == 0);
	d_expect(conn, LU_VMM_MSG_GET_SESSION, &m);
	CHECK(vmm_send_reply(conn, m.hdr.seq, 0, 0, session[0]) == 0);
	close(session[0]);
	d_expect(conn, LU_VMM_MSG_PREPARE_DONE, &m);
	CHECK(vmm_send_reply(conn, m.hdr.seq, 0, 0, -1) == 0);
	CHECK(vmm_send_freeze(conn, 100) == 0);
	d_expect(conn, LU_VMM_MSG_FROZEN, &m);
	CHECK(vmm_send_thaw(conn, -ETIMEDOUT) == 0);
	/* the VMM's copy of the session goes with the THAW: the peer sees EOF */
	CHECK(read(session[1], &c, 1) == 0);
	close(session[1]);
	d_expect_eof(conn);
}

static void test_thaw(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;
	struct lu_vmm_event ev;
	int session, p[2];

	daemon_start(f, script_thaw);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), 0);
	assert_int_equal(lu_vmm_wait_event(vmm, 5000, &ev), LU_VMM_EVENT_PREPARE);
	session = lu_vmm_get_session_fd(vmm);
	assert_true(session >= 0);
	/* asked once, then kept */
	assert_int_equal(lu_vmm_get_session_fd(vmm), session);
	/* not a LUO session: the ioctl fails and no token is declared */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_true(lu_vmm_session_preserve_fd(vmm, p[0], 1) < 0);
	close(p[0]);
	close(p[1]);
	assert_int_equal(lu_vmm_prepare_done(vmm), 0);
	assert_int_equal(lu_vmm_wait_event(vmm, 5000, &ev), LU_VMM_EVENT_FREEZE);
	assert_int_equal(ev.timeout_ms, 100);
	assert_int_equal(lu_vmm_frozen(vmm), 0);
	assert_int_equal(lu_vmm_wait_event(vmm, 5000, &ev), LU_VMM_EVENT_THAW);
	assert_int_equal(ev.error, -ETIMEDOUT);
	assert_int_equal(fcntl(session, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	lu_vmm_free(vmm);
	daemon_wait(f);
}

static const uint64_t restore_tokens[] = { 1, 2, 0x10000 };

static void script_restore(int conn)
{
	union msg m;
	int session[2];
	char c;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, session) == 0);
	d_hello(conn, 0, LU_VMM_REPLY_RESTORE_PENDING);
	/* late on purpose: lu_vmm_connect() waits for the announced RESTORE */
	usleep(100 * 1000);
	CHECK(vmm_send_restore(conn, "upd-2", restore_tokens, ARRAY_SIZE(restore_tokens),
			       session[0]) == 0);
	close(session[0]);

	d_expect(conn, LU_VMM_MSG_RESUMED, &m);
	CHECK(vmm_send_reply(conn, m.hdr.seq, -EIO, 0, -1) == 0);
	d_expect(conn, LU_VMM_MSG_RESUMED, &m);
	CHECK(vmm_send_reply(conn, m.hdr.seq, 0, 0, -1) == 0);
	/* once RESUMED is acknowledged the library lets go of the session */
	CHECK(read(session[1], &c, 1) == 0);
	close(session[1]);
	d_expect_eof(conn);
}

static void test_restore(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;
	struct lu_vmm_event ev;

	daemon_start(f, script_restore);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), 0);
	/* no RESTORE seen yet: nothing to retrieve */
	assert_int_equal(lu_vmm_restored_fd(vmm, 1), -ENOENT);
	assert_int_equal(lu_vmm_next_event(vmm, &ev), LU_VMM_EVENT_RESTORE);
	assert_string_equal(ev.update_id, "upd-2");
	assert_int_equal(ev.n_tokens, ARRAY_SIZE(restore_tokens));
	assert_memory_equal(ev.tokens, restore_tokens, sizeof(restore_tokens));

	/* tokens not in RESTORE are refused without asking the kernel */
	assert_int_equal(lu_vmm_restored_fd(vmm, 3), -ENOENT);
	assert_int_equal(lu_vmm_restored_fd(vmm, 0), -ENOENT);
	/* listed ones reach the session fd, which is no LUO session here */
	assert_int_equal(lu_vmm_restored_fd(vmm, 0x10000), -ENOTTY);
	/* the restored session is what get_session_fd hands out */
	assert_true(lu_vmm_get_session_fd(vmm) >= 0);

	/* a failed RESUMED keeps the session, a good one drops it */
	assert_int_equal(lu_vmm_resumed(vmm), -EIO);
	assert_int_equal(lu_vmm_restored_fd(vmm, 1), -ENOTTY);
	assert_int_equal(lu_vmm_resumed(vmm), 0);
	assert_int_equal(lu_vmm_restored_fd(vmm, 1), -ENOENT);
	lu_vmm_free(vmm);
	daemon_wait(f);
}

static void script_hangup(int conn)
{
	d_hello(conn, 0, 0);
	CHECK(vmm_send_prepare(conn, "upd-3", 4) == 0);
}

static void test_hangup(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;
	struct lu_vmm_event ev;
	int p[2];

	daemon_start(f, script_hangup);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), 0);
	/* without reconnection a hangup is final */
	assert_int_equal(lu_vmm_set_reconnect_timeout(vmm, 0), 0);
	daemon_wait(f);
	/* what was sent before the close still comes first */
	assert_int_equal(lu_vmm_wait_event(vmm, 5000, &ev), LU_VMM_EVENT_PREPARE);
	assert_int_equal(lu_vmm_wait_event(vmm, 5000, &ev), LU_VMM_EVENT_HANGUP);
	assert_int_equal(lu_vmm_next_event(vmm, &ev), LU_VMM_EVENT_HANGUP);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(lu_vmm_preserve_fd(vmm, p[0], 1), -ENOTCONN);
	assert_int_equal(lu_vmm_frozen(vmm), -ENOTCONN);
	close(p[0]);
	close(p[1]);
	lu_vmm_free(vmm);
}

static void script_hangup_in_request(int conn)
{
	union msg m;

	d_hello(conn, 0, 0);
	d_expect(conn, LU_VMM_MSG_PREPARE_DONE, &m);
	CHECK(vmm_send_freeze(conn, 10) == 0);
}

static void test_hangup_in_request(void **state)
{
	struct fixture *f = *state;
	struct lu_vmm *vmm = NULL;
	struct lu_vmm_event ev;

	daemon_start(f, script_hangup_in_request);
	assert_int_equal(lu_vmm_connect(f->path, "vm-1", &vmm), 0);
	assert_int_equal(lu_vmm_set_reconnect_timeout(vmm, 0), 0);
	assert_int_equal(lu_vmm_prepare_done(vmm), -ECONNRESET);
	assert_int_equal(lu_vmm_next_event(vmm, &ev), LU_VMM_EVENT_FREEZE);
	assert_int_equal(lu_vmm_next_event(vmm, &ev), LU_VMM_EVENT_HANGUP);
	lu_vmm_free(vmm);
	daemon_wait(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preserve_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queued_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thaw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hangup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hangup_in_request, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
