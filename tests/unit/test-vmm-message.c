/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The VMM wire protocol checker and senders: every type valid, and the ways
 * each can be malformed; then a real round trip over a SEQPACKET socketpair
 * with fds attached.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "socket-util.h"
#include "vmm-message.h"

#define FROM_DAEMON true
#define FROM_VMM false

static struct lu_vmm_hello valid_hello(void)
{
	struct lu_vmm_hello m = {
		.hdr = { .type = LU_VMM_MSG_HELLO, .seq = 1 },
		.version = LU_VMM_PROTOCOL_VERSION,
	};

	strcpy(m.vm_id, "vm-1");
	return m;
}

static struct lu_vmm_prepare valid_prepare(void)
{
	struct lu_vmm_prepare m = { .hdr = { .type = LU_VMM_MSG_PREPARE }, .max_fds = 8 };

	strcpy(m.update_id, "upd-1");
	return m;
}

/* A RESTORE with n tokens 1..n in buf; returns its length. */
static size_t build_restore(void *buf, uint32_t n)
{
	struct lu_vmm_restore m = { .hdr = { .type = LU_VMM_MSG_RESTORE }, .n_tokens = n };

	strcpy(m.update_id, "upd-1");
	memset(buf, 0, LU_VMM_MSG_MAX);
	memcpy(buf, &m, sizeof(m));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t = i + 1;

		memcpy((char *)buf + sizeof(m) + i * sizeof(t), &t, sizeof(t));
	}
	return sizeof(m) + n * sizeof(uint64_t);
}

static void test_hello(void **state)
{
	struct lu_vmm_hello m = valid_hello();
	char big[sizeof(m) + 1] = {};

	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), LU_VMM_MSG_HELLO);
	/* wrong direction, truncated, oversized, fds */
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m) - 1, 0, FROM_VMM), -EBADMSG);
	memcpy(big, &m, sizeof(m));
	assert_int_equal(vmm_message_check(big, sizeof(big), 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 1, FROM_VMM), -EBADMSG);
	/* flags, padding */
	m.flags = 1;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	m = valid_hello();
	m._pad[6] = 1;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	/* the version is the daemon's to judge, not a format error */
	m = valid_hello();
	m.version = 99;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), LU_VMM_MSG_HELLO);
}

static void test_hello_ids(void **state)
{
	struct lu_vmm_hello m = valid_hello();

	/* empty, bad characters, leading '-' or '.' */
	memset(m.vm_id, 0, sizeof(m.vm_id));
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	strcpy(m.vm_id, "vm/1");
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	strcpy(m.vm_id, "-vm");
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	strcpy(m.vm_id, ".vm");
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	/* longest valid id */
	memset(m.vm_id, 'a', LU_VM_ID_MAX);
	m.vm_id[LU_VM_ID_MAX] = '\0';
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), LU_VMM_MSG_HELLO);
	/* not NUL-terminated */
	m.vm_id[LU_VM_ID_MAX] = 'a';
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	/* garbage after the NUL */
	m = valid_hello();
	m.vm_id[10] = 'x';
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
}

static void test_token_messages(void **state)
{
	struct lu_vmm_token_msg m = { .hdr = { .type = LU_VMM_MSG_PRESERVE_FD, .seq = 3 },
				      .token = 7 };

	assert_int_equal(vmm_message_check(&m, sizeof(m), 1, FROM_VMM), LU_VMM_MSG_PRESERVE_FD);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 2, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 1, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m) - 8, 1, FROM_VMM), -EBADMSG);

	m.hdr.type = LU_VMM_MSG_DECLARE_TOKEN;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), LU_VMM_MSG_DECLARE_TOKEN);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 1, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m) - 1, 0, FROM_VMM), -EBADMSG);
}

static void test_simple_messages(void **state)
{
	static const uint32_t types[] = { LU_VMM_MSG_GET_SESSION, LU_VMM_MSG_PREPARE_DONE,
					  LU_VMM_MSG_FROZEN, LU_VMM_MSG_RESUMED };
	char buf[sizeof(struct lu_vmm_header) + 8] = {};

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		struct lu_vmm_header h = { .type = types[i], .seq = 9 };

		memcpy(buf, &h, sizeof(h));
		assert_int_equal(vmm_message_check(buf, sizeof(h), 0, FROM_VMM), (int)types[i]);
		assert_int_equal(vmm_message_check(buf, sizeof(h) + 8, 0, FROM_VMM), -EBADMSG);
		assert_int_equal(vmm_message_check(buf, sizeof(h), 1, FROM_VMM), -EBADMSG);
		assert_int_equal(vmm_message_check(buf, sizeof(h), 0, FROM_DAEMON), -EBADMSG);
	}
}

static void test_header_and_unknown(void **state)
{
	struct lu_vmm_header h = { .type = 0 };
	char big[LU_VMM_MSG_MAX + 1] = {};

	assert_int_equal(vmm_message_check(&h, sizeof(h), 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&h, sizeof(h), 0, FROM_DAEMON), -EBADMSG);
	h.type = 8;
	assert_int_equal(vmm_message_check(&h, sizeof(h), 0, FROM_VMM), -EBADMSG);
	h.type = 69;
	assert_int_equal(vmm_message_check(&h, sizeof(h), 0, FROM_DAEMON), -EBADMSG);
	h.type = LU_VMM_MSG_FROZEN;
	assert_int_equal(vmm_message_check(&h, sizeof(h) - 1, 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&h, 0, 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(NULL, 8, 0, FROM_VMM), -EBADMSG);
	memcpy(big, &h, sizeof(h));
	assert_int_equal(vmm_message_check(big, sizeof(big), 0, FROM_VMM), -EBADMSG);
}

static void test_reply(void **state)
{
	struct lu_vmm_reply m = { .hdr = { .type = LU_VMM_MSG_REPLY, .seq = 5 } };

	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), LU_VMM_MSG_REPLY);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 1, FROM_DAEMON), LU_VMM_MSG_REPLY);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 2, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m) - 4, 0, FROM_DAEMON), -EBADMSG);

	m.flags = LU_VMM_REPLY_RESTORE_PENDING | LU_VMM_REPLY_PREPARE_PENDING | LU_VMM_REPLY_RESUMED;
	m.error = -EPERM;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), LU_VMM_MSG_REPLY);
	m.flags = 1u << 3;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
	m.flags = 0;
	m.error = EPERM;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
	m.error = -5000;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
}

static void test_prepare(void **state)
{
	struct lu_vmm_prepare m = valid_prepare();

	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), LU_VMM_MSG_PREPARE);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 1, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&m, sizeof(m) - 4, 0, FROM_DAEMON), -EBADMSG);
	m.hdr.seq = 1;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
	m = valid_prepare();
	m._pad[0] = 1;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
	m = valid_prepare();
	m.max_fds = LU_VMM_FDS_MAX + 1;
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
	m = valid_prepare();
	strcpy(m.update_id, "a b");
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
	m = valid_prepare();
	memset(m.update_id, 'u', sizeof(m.update_id));
	assert_int_equal(vmm_message_check(&m, sizeof(m), 0, FROM_DAEMON), -EBADMSG);
}

static void test_freeze_thaw(void **state)
{
	struct lu_vmm_freeze f = { .hdr = { .type = LU_VMM_MSG_FREEZE }, .timeout_ms = 500 };
	struct lu_vmm_thaw t = { .hdr = { .type = LU_VMM_MSG_THAW }, .error = -ECANCELED };

	assert_int_equal(vmm_message_check(&f, sizeof(f), 0, FROM_DAEMON), LU_VMM_MSG_FREEZE);
	assert_int_equal(vmm_message_check(&f, sizeof(f), 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&f, sizeof(f), 1, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(&f, sizeof(f) - 4, 0, FROM_DAEMON), -EBADMSG);
	f._pad = 1;
	assert_int_equal(vmm_message_check(&f, sizeof(f), 0, FROM_DAEMON), -EBADMSG);
	f._pad = 0;
	f.hdr.seq = 2;
	assert_int_equal(vmm_message_check(&f, sizeof(f), 0, FROM_DAEMON), -EBADMSG);

	assert_int_equal(vmm_message_check(&t, sizeof(t), 0, FROM_DAEMON), LU_VMM_MSG_THAW);
	assert_int_equal(vmm_message_check(&t, sizeof(t), 0, FROM_VMM), -EBADMSG);
	assert_int_equal(vmm_message_check(&t, sizeof(t), 1, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(&t, sizeof(t) + 1, 0, FROM_DAEMON), -EBADMSG);
	t.error = 1;
	assert_int_equal(vmm_message_check(&t, sizeof(t), 0, FROM_DAEMON), -EBADMSG);
	t.error = -ECANCELED;
	t._pad = 1;
	assert_int_equal(vmm_message_check(&t, sizeof(t), 0, FROM_DAEMON), -EBADMSG);
}

static void test_restore(void **state)
{
	char buf[LU_VMM_MSG_MAX];
	struct lu_vmm_restore m;
	size_t len;

	len = build_restore(buf, 3);
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_DAEMON), LU_VMM_MSG_RESTORE);
	assert_int_equal(vmm_message_check(buf, len, 0, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(buf, len, 2, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_VMM), -EBADMSG);
	/* the length must match n_tokens exactly */
	assert_int_equal(vmm_message_check(buf, len - 8, 1, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(buf, len + 8, 1, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(buf, len - 1, 1, FROM_DAEMON), -EBADMSG);
	assert_int_equal(vmm_message_check(buf, sizeof(m) - 1, 1, FROM_DAEMON), -EBADMSG);

	/* n_tokens bounds: 0 and the maximum are fine, one more is not */
	len = build_restore(buf, 0);
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_DAEMON), LU_VMM_MSG_RESTORE);
	len = build_restore(buf, LU_VMM_FDS_MAX);
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_DAEMON), LU_VMM_MSG_RESTORE);
	len = build_restore(buf, LU_VMM_FDS_MAX);
	memcpy(&m, buf, sizeof(m));
	m.n_tokens = LU_VMM_FDS_MAX + 1;
	memcpy(buf, &m, sizeof(m));
	assert_int_equal(vmm_message_check(buf, len + 8, 1, FROM_DAEMON), -EBADMSG);
	/* a huge n_tokens must not overflow the length computation */
	m.n_tokens = UINT32_MAX;
	memcpy(buf, &m, sizeof(m));
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_DAEMON), -EBADMSG);

	/* seq, padding, update id, duplicate tokens */
	len = build_restore(buf, 2);
	memcpy(&m, buf, sizeof(m));
	m.hdr.seq = 1;
	memcpy(buf, &m, sizeof(m));
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_DAEMON), -EBADMSG);
	len = build_restore(buf, 2);
	buf[offsetof(struct lu_vmm_restore, _pad) + 2] = 1;
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_DAEMON), -EBADMSG);
	len = build_restore(buf, 2);
	buf[offsetof(struct lu_vmm_restore, update_id)] = '\0';
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_DAEMON), -EBADMSG);
	len = build_restore(buf, 2);
	memcpy(buf + sizeof(m) + 8, buf + sizeof(m), 8);
	assert_int_equal(vmm_message_check(buf, len, 1, FROM_DAEMON), -EBADMSG);
}

static void test_unaligned(void **state)
{
	char buf[LU_VMM_MSG_MAX + 1];
	size_t len = build_restore(buf + 1, 5);

	assert_int_equal(vmm_message_check(buf + 1, len, 1, FROM_DAEMON), LU_VMM_MSG_RESTORE);
}

static void test_send_refuses_invalid(void **state)
{
	int sv[2];
	uint64_t tok = 1;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vmm_send_hello(sv[0], 1, "bad id"), -EINVAL);
	assert_int_equal(vmm_send_hello(sv[0], 1, NULL), -EINVAL);
	assert_int_equal(vmm_send_token(sv[0], LU_VMM_MSG_PRESERVE_FD, 1, 1, -1), -EINVAL);
	assert_int_equal(vmm_send_token(sv[0], LU_VMM_MSG_DECLARE_TOKEN, 1, 1, sv[1]), -EINVAL);
	assert_int_equal(vmm_send_token(sv[0], LU_VMM_MSG_FROZEN, 1, 1, -1), -EINVAL);
	assert_int_equal(vmm_send_simple(sv[0], LU_VMM_MSG_HELLO, 1), -EINVAL);
	assert_int_equal(vmm_send_simple(sv[0], LU_VMM_MSG_REPLY, 1), -EINVAL);
	assert_int_equal(vmm_send_reply(sv[0], 1, EPERM, 0, -1), -EINVAL);
	assert_int_equal(vmm_send_reply(sv[0], 1, 0, 1u << 5, -1), -EINVAL);
	assert_int_equal(vmm_send_prepare(sv[0], "", 1), -EINVAL);
	assert_int_equal(vmm_send_prepare(sv[0], "u", LU_VMM_FDS_MAX + 1), -EINVAL);
	assert_int_equal(vmm_send_thaw(sv[0], 4), -EINVAL);
	assert_int_equal(vmm_send_restore(sv[0], "u", &tok, 1, -1), -EINVAL);
	assert_int_equal(vmm_send_restore(sv[0], "u", NULL, 1, sv[1]), -EINVAL);
	assert_int_equal(vmm_send_restore(sv[0], "u", &tok, LU_VMM_FDS_MAX + 1, sv[1]), -EINVAL);

	/* nothing reached the peer */
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(recv(sv[1], &tok, sizeof(tok), 0), -1);
	assert_int_equal(errno, EAGAIN);
	close(sv[0]);
	close(sv[1]);
}

/* Receive one packet and check it; the fd, if any, goes to *fd. */
static int recv_checked(int sock, void *buf, int *fd, bool from_daemon)
{
	size_t n_fds = 1;
	ssize_t n;

	*fd = -1;
	n = socket_recv_fds(sock, buf, LU_VMM_MSG_MAX, fd, &n_fds);
	assert_true(n > 0);
	return vmm_message_check(buf, (size_t)n, n_fds, from_daemon);
}

/* The fd that arrived is the same open file: data written to one end shows on the other. */
static void assert_fd_works(int received, int peer)
{
	char c = 0;

	assert_true(received >= 0);
	assert_int_equal(write(received, "x", 1), 1);
	assert_int_equal(read(peer, &c, 1), 1);
	assert_int_equal(c, 'x');
}

static void test_round_trip(void **state)
{
	union {
		struct lu_vmm_header hdr;
		struct lu_vmm_hello hello;
		struct lu_vmm_token_msg token;
		struct lu_vmm_reply reply;
		struct lu_vmm_prepare prepare;
		struct lu_vmm_freeze freeze;
		struct lu_vmm_thaw thaw;
		struct lu_vmm_restore restore;
		char buf[LU_VMM_MSG_MAX];
	} u;
	static const uint64_t tokens[] = { 1, 2, 0x10000 };
	int vmm_daemon[2], pipe_fds[2], fd;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, vmm_daemon), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipe_fds), 0);
	const int v = vmm_daemon[0], d = vmm_daemon[1];

	/* VMM -> daemon */
	assert_int_equal(vmm_send_hello(v, 1, "vm-1"), 0);
	assert_int_equal(recv_checked(d, &u, &fd, FROM_VMM), LU_VMM_MSG_HELLO);
	assert_int_equal(fd, -1);
	assert_int_equal(u.hello.hdr.seq, 1);
	assert_int_equal(u.hello.version, LU_VMM_PROTOCOL_VERSION);
	assert_string_equal(u.hello.vm_id, "vm-1");

	assert_int_equal(vmm_send_token(v, LU_VMM_MSG_PRESERVE_FD, 2, 42, pipe_fds[0]), 0);
	assert_int_equal(recv_checked(d, &u, &fd, FROM_VMM), LU_VMM_MSG_PRESERVE_FD);
	assert_int_equal(u.token.hdr.seq, 2);
	assert_int_equal(u.token.token, 42);
	assert_fd_works(fd, pipe_fds[1]);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);

	assert_int_equal(vmm_send_token(v, LU_VMM_MSG_DECLARE_TOKEN, 3, 43, -1), 0);
	assert_int_equal(recv_checked(d, &u, &fd, FROM_VMM), LU_VMM_MSG_DECLARE_TOKEN);
	assert_int_equal(u.token.token, 43);
	assert_int_equal(fd, -1);

	assert_int_equal(vmm_send_simple(v, LU_VMM_MSG_PREPARE_DONE, 4), 0);
	assert_int_equal(recv_checked(d, &u, &fd, FROM_VMM), LU_VMM_MSG_PREPARE_DONE);
	assert_int_equal(u.hdr.seq, 4);

	/* daemon -> VMM */
	assert_int_equal(vmm_send_reply(d, 3, -EEXIST, LU_VMM_REPLY_RESTORE_PENDING, -1), 0);
	assert_int_equal(recv_checked(v, &u, &fd, FROM_DAEMON), LU_VMM_MSG_REPLY);
	assert_int_equal(u.reply.hdr.seq, 3);
	assert_int_equal(u.reply.error, -EEXIST);
	assert_int_equal(u.reply.flags, LU_VMM_REPLY_RESTORE_PENDING);
	assert_int_equal(fd, -1);

	assert_int_equal(vmm_send_reply(d, 5, 0, 0, pipe_fds[0]), 0);
	assert_int_equal(recv_checked(v, &u, &fd, FROM_DAEMON), LU_VMM_MSG_REPLY);
	assert_fd_works(fd, pipe_fds[1]);
	close(fd);

	assert_int_equal(vmm_send_prepare(d, "upd-7", 16), 0);
	assert_int_equal(recv_checked(v, &u, &fd, FROM_DAEMON), LU_VMM_MSG_PREPARE);
	assert_string_equal(u.prepare.update_id, "upd-7");
	assert_int_equal(u.prepare.max_fds, 16);

	assert_int_equal(vmm_send_freeze(d, 1500), 0);
	assert_int_equal(recv_checked(v, &u, &fd, FROM_DAEMON), LU_VMM_MSG_FREEZE);
	assert_int_equal(u.freeze.timeout_ms, 1500);

	assert_int_equal(vmm_send_thaw(d, -ETIMEDOUT), 0);
	assert_int_equal(recv_checked(v, &u, &fd, FROM_DAEMON), LU_VMM_MSG_THAW);
	assert_int_equal(u.thaw.error, -ETIMEDOUT);

	assert_int_equal(vmm_send_restore(d, "upd-7", tokens, ARRAY_SIZE(tokens), pipe_fds[0]), 0);
	assert_int_equal(recv_checked(v, &u, &fd, FROM_DAEMON), LU_VMM_MSG_RESTORE);
	assert_string_equal(u.restore.update_id, "upd-7");
	assert_int_equal(u.restore.n_tokens, 3);
	assert_memory_equal(u.restore.tokens, tokens, sizeof(tokens));
	assert_fd_works(fd, pipe_fds[1]);
	close(fd);

	/* the senders never put a message on the wire that the checker refuses */
	assert_int_equal(vmm_send_simple(v, LU_VMM_MSG_FROZEN, 9), 0);
	assert_int_equal(recv_checked(d, &u, &fd, FROM_VMM), LU_VMM_MSG_FROZEN);

	close(pipe_fds[0]);
	close(pipe_fds[1]);
	close(v);
	close(d);
}

static void test_type_names(void **state)
{
	assert_string_equal(vmm_message_type_to_string(LU_VMM_MSG_HELLO), "hello");
	assert_string_equal(vmm_message_type_to_string(LU_VMM_MSG_RESTORE), "restore");
	assert_null(vmm_message_type_to_string(0));
	assert_null(vmm_message_type_to_string(20));
	assert_null(vmm_message_type_to_string(1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_hello_ids),
		cmocka_unit_test(test_token_messages),
		cmocka_unit_test(test_simple_messages),
		cmocka_unit_test(test_header_and_unknown),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_prepare),
		cmocka_unit_test(test_freeze_thaw),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_unaligned),
		cmocka_unit_test(test_send_refuses_invalid),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
