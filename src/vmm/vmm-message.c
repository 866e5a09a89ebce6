/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The VMM wire protocol, both directions.
 *
 * Every message has one exact size and every byte of it has one meaning:
 * strings are NUL padded, padding and undefined flags are zero. The checker
 * refuses anything else so that neither end ever interprets bytes the other
 * did not mean to send, and the senders build each message and run it
 * through the same checker before it leaves, so the two cannot drift apart.
 *
 * Buffers handed to the checker may be unaligned: fields are copied out
 * with memcpy, never read through a cast pointer.
 */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "socket-util.h"
#include "string-util.h"
#include "vmm-message.h"

_Static_assert(sizeof(struct lu_vmm_hello) == 64, "wire ABI");
_Static_assert(sizeof(struct lu_vmm_token_msg) == 16, "wire ABI");
_Static_assert(sizeof(struct lu_vmm_reply) == 16, "wire ABI");
_Static_assert(sizeof(struct lu_vmm_prepare) == 48, "wire ABI");
_Static_assert(sizeof(struct lu_vmm_freeze) == 16, "wire ABI");
_Static_assert(sizeof(struct lu_vmm_thaw) == 16, "wire ABI");
_Static_assert(sizeof(struct lu_vmm_restore) == 48, "wire ABI");
_Static_assert(sizeof(struct lu_vmm_restore) + LU_VMM_FDS_MAX * sizeof(uint64_t) <= LU_VMM_MSG_MAX,
	       "RESTORE fits a packet");

#define REPLY_FLAGS_KNOWN \
	(LU_VMM_REPLY_RESTORE_PENDING | LU_VMM_REPLY_PREPARE_PENDING | LU_VMM_REPLY_RESUMED)
/* Errors on the wire are negative errnos; the kernel's errnos stay below 4096. */
#define ERRNO_MAX 4095

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

/* A NUL-terminated id in a fixed field, NUL padded to its end. */
static bool id_field_valid(const char *field, size_t size, bool (*valid)(const char *))
{
	size_t n = strnlen(field, size);

	if (n == size)
		return false;
	return valid(field) && all_zero(field + n, size - n);
}

static bool error_valid(int32_t error)
{
	return error <= 0 && error >= -ERRNO_MAX;
}

static int check_vmm_message(uint32_t type, const void *buf, size_t len, size_t n_fds)
{
	switch (type) {
	case LU_VMM_MSG_HELLO: {
		struct lu_vmm_hello m;

		if (len != sizeof(m) || n_fds != 0)
			return -EBADMSG;
		memcpy(&m, buf, sizeof(m));
		/* version is left to the daemon, which answers a mismatch with an error */
		if (m.flags != 0 || !all_zero(m._pad, sizeof(m._pad)) ||
		    !id_field_valid(m.vm_id, sizeof(m.vm_id), vm_id_valid))
			return -EBADMSG;
		return 0;
	}
	case LU_VMM_MSG_PRESERVE_FD:
	case LU_VMM_MSG_DECLARE_TOKEN:
		if (len != sizeof(struct lu_vmm_token_msg))
			return -EBADMSG;
		if (n_fds != (type == LU_VMM_MSG_PRESERVE_FD ? 1 : 0))
			return -EBADMSG;
		return 0;
	case LU_VMM_MSG_GET_SESSION:
	case LU_VMM_MSG_PREPARE_DONE:
	case LU_VMM_MSG_FROZEN:
	case LU_VMM_MSG_RESUMED:
		if (len != sizeof(struct lu_vmm_header) || n_fds != 0)
			return -EBADMSG;
		return 0;
	default:
		return -EBADMSG;
	}
}

static int check_restore(const void *buf, size_t len, size_t n_fds)
{
	struct lu_vmm_restore m;
	const unsigned char *tokens = (const unsigned char *)buf + sizeof(m);

	if (len < sizeof(m) || n_fds != 1)
		return -EBADMSG;
	memcpy(&m, buf, sizeof(m));
	if (m.hdr.seq != 0 || m.n_tokens > LU_VMM_FDS_MAX ||
	    len != sizeof(m) + (size_t)m.n_tokens * sizeof(uint64_t) ||
	    !all_zero(m._pad, sizeof(m._pad)) ||
	    !id_field_valid(m.update_id, sizeof(m.update_id), update_id_valid))
		return -EBADMSG;

	/* LUO tokens are unique per session: a repeated one is a daemon bug. */
	for (uint32_t i = 0; i < m.n_tokens; i++)
		for (uint32_t j = 0; j < i; j++)
			if (!memcmp(tokens + i * sizeof(uint64_t), tokens + j * sizeof(uint64_t),
				    sizeof(uint64_t)))
				return -EBADMSG;
	return 0;
}

static int check_daemon_message(uint32_t type, const void *buf, size_t len, size_t n_fds)
{
	switch (type) {
	case LU_VMM_MSG_REPLY: {
		struct lu_vmm_reply m;

		if (len != sizeof(m) || n_fds > 1)
			return -EBADMSG;
		memcpy(&m, buf, sizeof(m));
		if (!error_valid(m.error) || (m.flags & ~REPLY_FLAGS_KNOWN))
			return -EBADMSG;
		return 0;
	}
	case LU_VMM_MSG_PREPARE: {
		struct lu_vmm_prepare m;

		if (len != sizeof(m) || n_fds != 0)
			return -EBADMSG;
		memcpy(&m, buf, sizeof(m));
		if (m.hdr.seq != 0 || m.max_fds > LU_VMM_FDS_MAX ||
		    !all_zero(m._pad, sizeof(m._pad)) ||
		    !id_field_valid(m.update_id, sizeof(m.update_id), update_id_valid))
			return -EBADMSG;
		return 0;
	}
	case LU_VMM_MSG_FREEZE: {
		struct lu_vmm_freeze m;

		if (len != sizeof(m) || n_fds != 0)
			return -EBADMSG;
		memcpy(&m, buf, sizeof(m));
		if (m.hdr.seq != 0 || m._pad != 0)
			return -EBADMSG;
		return 0;
	}
	case LU_VMM_MSG_THAW: {
		struct lu_vmm_thaw m;

		if (len != sizeof(m) || n_fds != 0)
			return -EBADMSG;
		memcpy(&m, buf, sizeof(m));
		if (m.hdr.seq != 0 || m._pad != 0 || !error_valid(m.error))
			return -EBADMSG;
		return 0;
	}
	case LU_VMM_MSG_RESTORE:
		return check_restore(buf, len, n_fds);
	default:
		return -EBADMSG;
	}
}

/**
 * vmm_message_check() - validate one received packet
 * @buf: the packet, any alignment
 * @len: its length as received
 * @n_fds: how many fds came with it
 * @from_daemon: true if it came from the daemon (the VMM's view)
 *
 * Return: the message type, or -EBADMSG for anything not exactly as the
 * protocol defines it.
 */
int vmm_message_check(const void *buf, size_t len, size_t n_fds, bool from_daemon)
{
	struct lu_vmm_header hdr;
	int r;

	if (!buf || len < sizeof(hdr) || len > LU_VMM_MSG_MAX)
		return -EBADMSG;
	memcpy(&hdr, buf, sizeof(hdr));

	if (from_daemon)
		r = check_daemon_message(hdr.type, buf, len, n_fds);
	else
		r = check_vmm_message(hdr.type, buf, len, n_fds);
	return r < 0 ? r : (int)hdr.type;
}

/* Every sender checks its own message first: what we send, we would accept. */
static int send_checked(int sock, const void *buf, size_t len, int fd, bool from_daemon)
{
	size_t n_fds = fd >= 0 ? 1 : 0;

	if (vmm_message_check(buf, len, n_fds, from_daemon) < 0)
		return -EINVAL;
	return socket_send_fds(sock, buf, len, &fd, n_fds);
}

int vmm_send_hello(int sock, uint32_t seq, const char *vm_id)
{
	struct lu_vmm_hello m = {
		.hdr = { .type = LU_VMM_MSG_HELLO, .seq = seq },
		.version = LU_VMM_PROTOCOL_VERSION,
	};

	if (!vm_id_valid(vm_id))
		return -EINVAL;
	memcpy(m.vm_id, vm_id, strlen(vm_id));
	return send_checked(sock, &m, sizeof(m), -1, false);
}

int vmm_send_token(int sock, uint32_t type, uint32_t seq, uint64_t token, int fd)
{
	struct lu_vmm_token_msg m = {
		.hdr = { .type = type, .seq = seq },
		.token = token,
	};

	if (type != LU_VMM_MSG_PRESERVE_FD && type != LU_VMM_MSG_DECLARE_TOKEN)
		return -EINVAL;
	return send_checked(sock, &m, sizeof(m), fd, false);
}

int vmm_send_simple(int sock, uint32_t type, uint32_t seq)
{
	struct lu_vmm_header m = { .type = type, .seq = seq };

	if (type != LU_VMM_MSG_GET_SESSION && type != LU_VMM_MSG_PREPARE_DONE &&
	    type != LU_VMM_MSG_FROZEN && type != LU_VMM_MSG_RESUMED)
		return -EINVAL;
	return send_checked(sock, &m, sizeof(m), -1, false);
}

int vmm_send_reply(int sock, uint32_t seq, int error, uint32_t flags, int fd)
{
	struct lu_vmm_reply m = {
		.hdr = { .type = LU_VMM_MSG_REPLY, .seq = seq },
		.error = error,
		.flags = flags,
	};

	return send_checked(sock, &m, sizeof(m), fd, true);
}

int vmm_send_prepare(int sock, const char *update_id, uint32_t max_fds)
{
	struct lu_vmm_prepare m = {
		.hdr = { .type = LU_VMM_MSG_PREPARE },
		.max_fds = max_fds,
	};

	if (!update_id_valid(update_id))
		return -EINVAL;
	memcpy(m.update_id, update_id, strlen(update_id));
	return send_checked(sock, &m, sizeof(m), -1, true);
}

int vmm_send_freeze(int sock, uint32_t timeout_ms)
{
	struct lu_vmm_freeze m = {
		.hdr = { .type = LU_VMM_MSG_FREEZE },
		.timeout_ms = timeout_ms,
	};

	return send_checked(sock, &m, sizeof(m), -1, true);
}

int vmm_send_thaw(int sock, int error)
{
	struct lu_vmm_thaw m = {
		.hdr = { .type = LU_VMM_MSG_THAW },
		.error = error,
	};

	return send_checked(sock, &m, sizeof(m), -1, true);
}

int vmm_send_restore(int sock, const char *update_id, const uint64_t *tokens, uint32_t n_tokens,
		     int session_fd)
{
	union {
		struct lu_vmm_restore m;
		char buf[LU_VMM_MSG_MAX];
	} u = {};
	size_t len;

	if (!update_id_valid(update_id) || n_tokens > LU_VMM_FDS_MAX || (n_tokens && !tokens) ||
	    session_fd < 0)
		return -EINVAL;

	u.m.hdr.type = LU_VMM_MSG_RESTORE;
	memcpy(u.m.update_id, update_id, strlen(update_id));
	u.m.n_tokens = n_tokens;
	if (n_tokens)
		memcpy(u.m.tokens, tokens, n_tokens * sizeof(uint64_t));
	len = sizeof(u.m) + n_tokens * sizeof(uint64_t);
	return send_checked(sock, &u, len, session_fd, true);
}

static const char *const type_names[] = {
	[LU_VMM_MSG_HELLO] = "hello",
	[LU_VMM_MSG_PRESERVE_FD] = "preserve-fd",
	[LU_VMM_MSG_GET_SESSION] = "get-session",
	[LU_VMM_MSG_DECLARE_TOKEN] = "declare-token",
	[LU_VMM_MSG_PREPARE_DONE] = "prepare-done",
	[LU_VMM_MSG_FROZEN] = "frozen",
	[LU_VMM_MSG_RESUMED] = "resumed",
	[LU_VMM_MSG_REPLY] = "reply",
	[LU_VMM_MSG_PREPARE] = "prepare",
	[LU_VMM_MSG_FREEZE] = "freeze",
	[LU_VMM_MSG_THAW] = "thaw",
	[LU_VMM_MSG_RESTORE] = "restore",
};

/* Returns NULL for a type the protocol does not define. */
const char *vmm_message_type_to_string(uint32_t type)
{
	return type < ARRAY_SIZE(type_names) ? type_names[type] : NULL;
}
