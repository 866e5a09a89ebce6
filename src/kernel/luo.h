/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Live Update Orchestrator, one function per ioctl. Every call returns
 * a new fd or 0 on success and a negative errno on failure, unchanged from
 * the kernel, so callers can tell EBUSY (device held by someone else),
 * EEXIST (name or token taken), ENOENT (no such session, token, or no
 * handler for this fd type) and EIO (incoming state unreadable) apart.
 *
 * Returned fds are O_CLOEXEC.
 */

#include <stdint.h>

#include "luo-uapi.h"

/* Open /dev/liveupdate (path overridable for diagnostics, not for faking). */
int luo_open(const char *path);

int luo_create_session(int luo_fd, const char *name);
int luo_retrieve_session(int luo_fd, const char *name);

int luo_preserve_fd(int session_fd, int fd, uint64_t token);
int luo_retrieve_fd(int session_fd, uint64_t token);
int luo_finish(int session_fd);
int luo_get_name(int session_fd, char name[LUO_SESSION_NAME_SIZE]);

/*
 * Is this a retrieved (incoming) session rather than an outgoing one? Asks
 * for a token nobody uses: the kernel refuses RETRIEVE_FD on an outgoing
 * session with EINVAL before it looks at anything, and answers ENOENT on an
 * incoming one. Returns 1, 0, or a negative errno.
 */
int luo_session_is_incoming(int session_fd);

/* Is name usable as a session name (1..63 bytes)? */
int luo_session_name_valid(const char *name);
