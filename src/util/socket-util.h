/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Message sockets with fds attached (SCM_RIGHTS), and peer credentials.
 * All calls are non-blocking friendly: they return -EAGAIN rather than
 * waiting when the socket is non-blocking.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#define SOCKET_FDS_MAX 253 /* SCM_MAX_FD */

/* Send one message with n_fds fds attached. Returns 0 or -errno. A short send is -EMSGSIZE. */
int socket_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t n_fds);

/*
 * Receive one message. Up to *n_fds fds are stored in fds (O_CLOEXEC); *n_fds
 * is set to how many arrived. A message cut short (MSG_TRUNC) or with more
 * fds than room (MSG_CTRUNC) is -EMSGSIZE, and any fds that did arrive are
 * closed. Returns the message length, 0 on EOF, or -errno.
 */
ssize_t socket_recv_fds(int sock, void *buf, size_t len, int *fds, size_t *n_fds);

void close_many(int *fds, size_t n);

/* Bind a listening unix socket of the given type at path with mode, replacing a stale one. */
int socket_listen_unix(const char *path, int type, mode_t mode, int backlog);
int socket_connect_unix(const char *path, int type);

/* The peer's credentials and supplementary groups (SO_PEERGROUPS). */
int socket_peer_cred(int sock, struct ucred *ret);
/* Is the peer root, our own uid, or a member of gid (gid == (gid_t)-1: none)? */
int socket_peer_authorized(int sock, gid_t gid);
