/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Building, sending and checking the messages of the VMM wire protocol
 * (include/liveupdate/vmm-protocol.h). Shared by the daemon and
 * libliveupdate-vmm; no allocation, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liveupdate/vmm-protocol.h>

/*
 * Check a received packet: a known type for its direction (from_daemon:
 * daemon -> VMM types), the exact size of that type (RESTORE: header plus
 * n_tokens tokens, n_tokens <= LU_VMM_FDS_MAX), NUL-terminated strings that
 * are valid ids, flags and padding zero, and the number of fds the type
 * carries (PRESERVE_FD: 1; REPLY: 0 or 1; RESTORE: 1; others 0).
 * Returns the type, or -EBADMSG.
 */
int vmm_message_check(const void *buf, size_t len, size_t n_fds, bool from_daemon);

/* Sending; fd < 0 means none. All return 0 or a negative errno. */
int vmm_send_hello(int sock, uint32_t seq, const char *vm_id);
int vmm_send_token(int sock, uint32_t type, uint32_t seq, uint64_t token, int fd);
int vmm_send_simple(int sock, uint32_t type, uint32_t seq);
int vmm_send_reply(int sock, uint32_t seq, int error, uint32_t flags, int fd);
int vmm_send_prepare(int sock, const char *update_id, uint32_t max_fds);
int vmm_send_freeze(int sock, uint32_t timeout_ms);
int vmm_send_thaw(int sock, int error);
int vmm_send_restore(int sock, const char *update_id, const uint64_t *tokens, uint32_t n_tokens,
		     int session_fd);

const char *vmm_message_type_to_string(uint32_t type);
