/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef LIVEUPDATE_VMM_H
#define LIVEUPDATE_VMM_H

/*
 * libliveupdate-vmm: what a VMM links to take part in a live update.
 *
 * The library owns one connection to liveupdated. It does not run a loop
 * of its own: poll lu_vmm_get_fd() for POLLIN in the VMM's loop and call
 * lu_vmm_next_event() when it is readable. Every function returns 0 (or a
 * non-negative value) on success and a negative errno on failure; the
 * library never logs and never calls exit().
 *
 *   lu_vmm_connect(NULL, "vm-1", &vmm);
 *   ...
 *   event LU_VMM_EVENT_PREPARE:  lu_vmm_preserve_fd(vmm, ram_fd, 1);
 *                                lu_vmm_prepare_done(vmm);
 *   event LU_VMM_EVENT_FREEZE:   stop vCPUs and device emulation;
 *                                lu_vmm_frozen(vmm);
 *   event LU_VMM_EVENT_THAW:     the update was aborted: run again.
 *   -- kexec; the VMM is started again with the same id --
 *   event LU_VMM_EVENT_RESTORE:  ram_fd = lu_vmm_restored_fd(vmm, 1);
 *                                ... resume the VM ...
 *                                lu_vmm_resumed(vmm);
 *
 * Daemon restarts. liveupdated may be restarted at any time (a crash, an
 * upgrade); systemd keeps its sessions and its socket meanwhile. When the
 * connection closes, the library connects again by itself and says HELLO
 * with the same VM id, retrying for up to the reconnect timeout (default
 * LU_VMM_RECONNECT_TIMEOUT_MS_DEFAULT, $LIVEUPDATE_VMM_RECONNECT_TIMEOUT_MS,
 * or lu_vmm_set_reconnect_timeout()). The fd to poll stays the same; keep
 * polling it and calling lu_vmm_next_event(). Then:
 *
 *   - the new daemon picked up the prepared update the VM is in: nothing
 *     happens, the next event is FREEZE (commit) or THAW (abort);
 *   - the update did not survive the restart (it was preparing, freezing
 *     or frozen, or it was rolled back): a THAW with error -ECONNRESET,
 *     after which the VM runs on, as after any abort, and a PREPARE may
 *     follow for a new update;
 *   - no daemon answered by the deadline: that THAW (if the VM was in an
 *     update: a frozen VM must run again, nothing can jump without the
 *     daemon), then LU_VMM_EVENT_HANGUP for good.
 *
 * Requests made while the library reconnects fail with -ENOTCONN, and one
 * that the hangup interrupted with -ECONNRESET; the events that follow say
 * what became of the update. After the kexec a RESTORE that a restarted
 * daemon sends again is not handed out twice.
 */

#include <stdint.h>

#include <liveupdate/vmm-protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lu_vmm;

enum lu_vmm_event_type {
	LU_VMM_EVENT_NONE,    /* nothing complete yet, poll again */
	LU_VMM_EVENT_PREPARE, /* preserve your fds now, then lu_vmm_prepare_done() */
	LU_VMM_EVENT_FREEZE,  /* stop the VM within timeout_ms, then lu_vmm_frozen() */
	LU_VMM_EVENT_THAW,    /* update aborted (error says why): resume */
	LU_VMM_EVENT_RESTORE, /* after kexec: your files are ready to retrieve */
	LU_VMM_EVENT_HANGUP,  /* the daemon is gone and did not come back in time */
};

struct lu_vmm_event {
	enum lu_vmm_event_type type;
	char update_id[LU_UPDATE_ID_MAX + 1];
	uint32_t timeout_ms; /* FREEZE */
	int error;           /* THAW: negative errno */
	uint32_t max_fds;    /* PREPARE */
	uint32_t n_tokens;   /* RESTORE */
	const uint64_t *tokens; /* RESTORE: valid until the next call into the library */
};

/*
 * Connect and register vm_id. socket_path NULL means $LIVEUPDATED_VMM_SOCKET
 * or /run/liveupdated/vmm.sock. If a restore is pending for vm_id, the first
 * event will be LU_VMM_EVENT_RESTORE.
 */
int lu_vmm_connect(const char *socket_path, const char *vm_id, struct lu_vmm **ret);
struct lu_vmm *lu_vmm_free(struct lu_vmm *vmm);

/* The fd to poll for POLLIN: the same one across reconnections (an epoll fd). */
int lu_vmm_get_fd(const struct lu_vmm *vmm);
const char *lu_vmm_get_vm_id(const struct lu_vmm *vmm);

#define LU_VMM_RECONNECT_TIMEOUT_MS_DEFAULT 30000
/* How long to look for a restarted daemon after a hangup; 0: never, a hangup is final. */
int lu_vmm_set_reconnect_timeout(struct lu_vmm *vmm, uint32_t timeout_ms);

/*
 * The next thing the daemon asked for, without blocking. Returns the event
 * type (positive), 0 when there is none (ret->type is LU_VMM_EVENT_NONE),
 * or a negative errno. Call it until it returns 0 before polling again:
 * events that arrived while a request waited for its reply are queued
 * inside the library and do not make the fd readable.
 */
int lu_vmm_next_event(struct lu_vmm *vmm, struct lu_vmm_event *ret);
/* Block up to timeout_ms (-1: forever) for the next event; 0 when the time ran out. */
int lu_vmm_wait_event(struct lu_vmm *vmm, int timeout_ms, struct lu_vmm_event *ret);

/*
 * During PREPARE: hand fd to the daemon, which preserves it under token.
 *
 * Passed-through devices go this way, in the order the kernel wants them
 * (the guest RAM memfd, the iommufd, then the VFIO device file; -ENOLINK
 * otherwise): the daemon recognises a device file and records its PCI
 * device, and an update in which a device bound to vfio-pci was preserved
 * by no VMM fails (device-not-preservable). A device file preserved with
 * lu_vmm_session_preserve_fd() cannot be seen by the daemon, so it counts
 * as not preserved. -EOPNOTSUPP: a kernel cannot carry devices over;
 * -EBUSY: another VMM preserved that device.
 */
int lu_vmm_preserve_fd(struct lu_vmm *vmm, int fd, uint64_t token);
/*
 * During PREPARE, for fds only their owner can preserve (KVM): get the LUO
 * session fd (owned by the library, do not close it), preserve with
 * lu_vmm_session_preserve_fd(), which also declares the token.
 */
int lu_vmm_get_session_fd(struct lu_vmm *vmm);
int lu_vmm_session_preserve_fd(struct lu_vmm *vmm, int fd, uint64_t token);
int lu_vmm_prepare_done(struct lu_vmm *vmm);

/* After FREEZE, once the VM is stopped. */
int lu_vmm_frozen(struct lu_vmm *vmm);

/* After RESTORE: the file preserved under token, as a new O_CLOEXEC fd owned by the caller. */
int lu_vmm_restored_fd(struct lu_vmm *vmm, uint64_t token);
/*
 * After RESTORE, once the VM runs again: the daemon finishes the session,
 * which moves each passed-through device from the handed-over page tables
 * to the domain the VMM attached it to since. -EBUSY: the kernel refused,
 * a device has no such domain yet (or one that does not map the guest's
 * memory as before). Nothing is lost: the device still translates through
 * the old tables and the session stays; attach it and call this again.
 */
int lu_vmm_resumed(struct lu_vmm *vmm);

const char *lu_vmm_event_type_to_string(enum lu_vmm_event_type t);

#ifdef __cplusplus
}
#endif

#endif
