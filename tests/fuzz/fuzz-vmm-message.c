/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One SEQPACKET packet as the daemon (from a VMM) or libliveupdate-vmm (from
 * the daemon) receives it, through vmm_message_check().
 *
 * Input: one control byte, then the packet.
 *   bit 0     direction: 1 = from the daemon (the VMM's view)
 *   bits 1-2  how many fds came with it (0-3)
 *   bits 3-5  misalignment of the buffer (the checker must not care)
 *
 * Every packet the checker accepts must be exactly what the project's own
 * sender for that type writes from the decoded fields: one meaning per byte,
 * so an accepted packet is rebuilt through vmm_send_*() over a socketpair
 * and compared byte for byte (HELLO's version aside: the daemon answers
 * that one itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"
#include "socket-util.h"
#include "vmm-message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int pair[2] = { -1, -1 };
static int some_fd = -1;

static void setup(void)
{
	if (pair[0] >= 0)
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		abort();
	some_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (some_fd < 0)
		abort();
}

/* Send the packet of this type that carries these fields; 0 or a negative errno. */
static int resend(uint32_t type, const uint8_t *p, size_t len, size_t n_fds)
{
	struct lu_vmm_header hdr;
	int fd = n_fds ? some_fd : -1;

	memcpy(&hdr, p, sizeof(hdr));
	switch (type) {
	case LU_VMM_MSG_HELLO: {
		struct lu_vmm_hello m;

		memcpy(&m, p, sizeof(m));
		return vmm_send_hello(pair[0], hdr.seq, m.vm_id);
	}
	case LU_VMM_MSG_PRESERVE_FD:
	case LU_VMM_MSG_DECLARE_TOKEN: {
		struct lu_vmm_token_msg m;

		memcpy(&m, p, sizeof(m));
		return vmm_send_token(pair[0], type, hdr.seq, m.token, fd);
	}
	case LU_VMM_MSG_GET_SESSION:
	case LU_VMM_MSG_PREPARE_DONE:
	case LU_VMM_MSG_FROZEN:
	case LU_VMM_MSG_RESUMED:
		return vmm_send_simple(pair[0], type, hdr.seq);
	case LU_VMM_MSG_REPLY: {
		struct lu_vmm_reply m;

		memcpy(&m, p, sizeof(m));
		return vmm_send_reply(pair[0], hdr.seq, m.error, m.flags, fd);
	}
	case LU_VMM_MSG_PREPARE: {
		struct lu_vmm_prepare m;

		memcpy(&m, p, sizeof(m));
		return vmm_send_prepare(pair[0], m.update_id, m.max_fds);
	}
	case LU_VMM_MSG_FREEZE: {
		struct lu_vmm_freeze m;

		memcpy(&m, p, sizeof(m));
		return vmm_send_freeze(pair[0], m.timeout_ms);
	}
	case LU_VMM_MSG_THAW: {
		struct lu_vmm_thaw m;

		memcpy(&m, p, sizeof(m));
		return vmm_send_thaw(pair[0], m.error);
	}
	case LU_VMM_MSG_RESTORE: {
		struct lu_vmm_restore m;
		_cleanup_free_ uint64_t *tokens = NULL;

		memcpy(&m, p, sizeof(m));
		if (m.n_tokens) {
			tokens = memdup(p + sizeof(m), len - sizeof(m));
			if (!tokens)
				return -ENOMEM;
		}
		return vmm_send_restore(pair[0], m.update_id, tokens, m.n_tokens, fd);
	}
	default:
		abort(); /* accepted, but no sender: the two have drifted apart */
	}
}

static void check_canonical(uint32_t type, const uint8_t *p, size_t len, size_t n_fds)
{
	static uint8_t back[LU_VMM_MSG_MAX + 1];
	int fds[4];
	size_t n_back = ARRAY_SIZE(fds);
	ssize_t n;

	if (resend(type, p, len, n_fds) < 0)
		abort();
	n = socket_recv_fds(pair[1], back, sizeof(back), fds, &n_back);
	if (n < 0)
		abort();
	close_many(fds, n_back);
	if (type == LU_VMM_MSG_HELLO)
		memcpy(back + offsetof(struct lu_vmm_hello, version),
		       p + offsetof(struct lu_vmm_hello, version), sizeof(uint32_t));
	if ((size_t)n != len || memcmp(back, p, len) != 0 || n_back != (n_fds ? 1 : 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ uint8_t *buf = NULL;
	bool from_daemon;
	size_t n_fds, shift, len;
	int type;

	if (size < 1)
		return 0;
	from_daemon = data[0] & 1;
	n_fds = (data[0] >> 1) & 3;
	shift = (data[0] >> 3) & 7;
	len = size - 1;

	/* The packet ends where the allocation does: ASan sees any overread. */
	buf = malloc(shift + len ?: 1);
	if (!buf)
		return 0;
	memcpy(buf + shift, data + 1, len);

	type = vmm_message_check(buf + shift, len, n_fds, from_daemon);
	if (type == -EBADMSG)
		return 0;
	if (type < 0 || !vmm_message_type_to_string((uint32_t)type) ||
	    (type >= LU_VMM_MSG_REPLY) != from_daemon || len > LU_VMM_MSG_MAX)
		abort();

	setup();
	check_canonical((uint32_t)type, buf + shift, len, n_fds);
	return 0;
}
