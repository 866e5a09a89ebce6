/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef LIVEUPDATE_VMM_PROTOCOL_H
#define LIVEUPDATE_VMM_PROTOCOL_H

/*
 * The wire protocol between liveupdated and a VMM.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET socket, $RUNTIME_DIRECTORY/vmm.sock
 * (default /run/liveupdated/vmm.sock). One message per packet, at most
 * LU_VMM_MSG_MAX bytes, little-endian host structs (both ends are on the
 * same host). File descriptors travel as SCM_RIGHTS on the packet that
 * names them. Every message starts with struct lu_vmm_header; its size is
 * exact for every type (RESTORE: header plus the token array), anything
 * else is a protocol error and the daemon drops the connection.
 *
 * Conversation:
 *
 *   VMM                                daemon
 *   HELLO(vm_id)                  ->
 *                                 <-   REPLY(flags: RESTORE_PENDING?)
 *   ... idle ...
 *                                 <-   PREPARE(update_id)     at prepare
 *   PRESERVE_FD(token) + fd       ->                           daemon preserves
 *                                 <-   REPLY
 *   GET_SESSION                   ->                           or: VMM preserves
 *                                 <-   REPLY + session fd      itself (KVM fds)
 *   DECLARE_TOKEN(token)          ->                           ... and says so
 *                                 <-   REPLY
 *   PREPARE_DONE                  ->
 *                                 <-   REPLY
 *                                 <-   FREEZE(timeout)        at commit
 *   FROZEN                        ->                           (no reply)
 *                                 <-   THAW(error)            if aborted
 *   ---------------------------- kexec ----------------------------
 *   HELLO(vm_id)                  ->
 *                                 <-   REPLY(RESTORE_PENDING)
 *                                 <-   RESTORE(tokens) + session fd
 *   RESUMED                       ->                           VM runs again
 *                                 <-   REPLY                   session finished
 *
 * A REPLY to RESUMED with an error (-EBUSY: the kernel refused to finish
 * the session, a passed-through device has no correct new domain yet)
 * leaves the session as it was; the VMM may send RESUMED again.
 *
 * Requests from the VMM carry a seq that the REPLY echoes; messages the
 * daemon starts (PREPARE, FREEZE, THAW, RESTORE) have seq 0 and may arrive
 * while a VMM waits for a reply. A VMM that closes its socket outside an
 * update simply leaves; one that vanishes during one aborts it (see README).
 *
 * Daemon restarts (version 2). When the daemon's end of the connection
 * closes before the kexec, the daemon may only be restarting (systemd
 * keeps the sessions in its fd store and the listening socket open). The
 * VMM connects again and says HELLO with the same vm_id and version 2:
 *
 *   - REPLY with LU_VMM_REPLY_RESUMED: the restarted daemon picked up the
 *     prepared update this VMM is in; nothing changes for the VMM (it
 *     keeps its session fd and its preserved files), commit follows;
 *   - REPLY without it, while the VMM was in an update (between PREPARE
 *     and THAW or RESTORE): the update is over; the VMM treats it as a
 *     THAW (closes its copy of the session fd, runs the VM). A daemon that
 *     restarts while preparing, freezing or frozen always ends so;
 *   - no daemon by the VMM's deadline: the same, nothing can jump without
 *     the daemon; then the VMM is on its own.
 *
 * libliveupdate-vmm does all of this itself (see vmm.h).
 */

#include <stdint.h>

/*
 * Version 2 adds the reconnection after a daemon restart (below) and
 * LU_VMM_REPLY_RESUMED. The daemon accepts HELLO of every version from
 * LU_VMM_PROTOCOL_VERSION_MIN on, and sends a VMM only what its version
 * knows.
 */
#define LU_VMM_PROTOCOL_VERSION 2
#define LU_VMM_PROTOCOL_VERSION_MIN 1
#define LU_VMM_MSG_MAX 4096
/* A VM id: 1..LU_VM_ID_MAX bytes of [A-Za-z0-9._-], NUL padded on the wire. */
#define LU_VM_ID_MAX 40
#define LU_UPDATE_ID_MAX 32
/* Hard ceiling on preserved fds per VMM; the daemon's limit may be lower. */
#define LU_VMM_FDS_MAX 250
#define LU_VMM_SOCKET_NAME "vmm.sock"

enum lu_vmm_msg_type {
	/* VMM -> daemon */
	LU_VMM_MSG_HELLO = 1,
	LU_VMM_MSG_PRESERVE_FD = 2,
	LU_VMM_MSG_GET_SESSION = 3,
	LU_VMM_MSG_DECLARE_TOKEN = 4,
	LU_VMM_MSG_PREPARE_DONE = 5,
	LU_VMM_MSG_FROZEN = 6,
	LU_VMM_MSG_RESUMED = 7,

	/* daemon -> VMM */
	LU_VMM_MSG_REPLY = 64,
	LU_VMM_MSG_PREPARE = 65,
	LU_VMM_MSG_FREEZE = 66,
	LU_VMM_MSG_THAW = 67,
	LU_VMM_MSG_RESTORE = 68,
};

struct lu_vmm_header {
	uint32_t type;
	uint32_t seq;
};

struct lu_vmm_hello {
	struct lu_vmm_header hdr;
	uint32_t version; /* LU_VMM_PROTOCOL_VERSION_MIN..LU_VMM_PROTOCOL_VERSION */
	uint32_t flags;   /* none defined, must be 0 */
	char vm_id[LU_VM_ID_MAX + 1];
	char _pad[7];
};

/* PRESERVE_FD: the fd to preserve rides along as SCM_RIGHTS. */
struct lu_vmm_token_msg {
	struct lu_vmm_header hdr;
	uint64_t token;
};

/* GET_SESSION, PREPARE_DONE, FROZEN, RESUMED: header only. */

#define LU_VMM_REPLY_RESTORE_PENDING (1u << 0) /* HELLO: a RESTORE follows */
#define LU_VMM_REPLY_PREPARE_PENDING (1u << 1) /* HELLO: a PREPARE follows */
/* HELLO, version 2: a restarted daemon carries on with this VMM's prepared update */
#define LU_VMM_REPLY_RESUMED (1u << 2)

struct lu_vmm_reply {
	struct lu_vmm_header hdr; /* seq of the request */
	int32_t error;            /* 0 or a negative errno */
	uint32_t flags;
};

struct lu_vmm_prepare {
	struct lu_vmm_header hdr;
	char update_id[LU_UPDATE_ID_MAX + 1];
	char _pad[3];
	uint32_t max_fds; /* how many fds this VMM may preserve */
};

struct lu_vmm_freeze {
	struct lu_vmm_header hdr;
	uint32_t timeout_ms; /* FROZEN must arrive within this */
	uint32_t _pad;
};

struct lu_vmm_thaw {
	struct lu_vmm_header hdr;
	int32_t error; /* why the update was aborted, negative errno */
	uint32_t _pad;
};

/*
 * RESTORE carries the retrieved session fd as SCM_RIGHTS. The VMM gets its
 * files from it with the LUO RETRIEVE_FD ioctl (lu_vmm_restored_fd() does
 * that), so their pages are charged to the VMM's cgroup, and LUO keeps them
 * until the daemon finishes the session when the VMM reports RESUMED.
 */
struct lu_vmm_restore {
	struct lu_vmm_header hdr;
	char update_id[LU_UPDATE_ID_MAX + 1];
	char _pad[3];
	uint32_t n_tokens;
	uint64_t tokens[]; /* every token preserved in the session */
};

#endif
