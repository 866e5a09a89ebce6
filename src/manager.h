/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Manager owns the daemon: the sd-event loop and every event source,
 * the VMM connections, the control API clients, and the update in flight.
 * One thread; every handler runs to completion, so the state machine is
 * never observed half-changed.
 *
 *   manager.c          lifetime, sockets, signals, sd_notify, fd store
 *   manager-vmm.c      the VMM side of the VMM protocol
 *   manager-control.c  the JSON API server
 *   manager-update.c   prepare, commit, the freeze barrier, abort
 *   manager-restore.c  after the kexec: hand sessions back, finish them
 *   manager-report.c   status, VMM list, reports
 *   manager-held.c     sessions a previous instance left in the fd store
 *   manager-resume.c   the update a previous instance left before the kexec
 *   manager-devices.c  passed-through devices: support, tracking, coverage
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include <liveupdate/vmm-protocol.h>

#include "control-protocol.h"
#include "device-support.h"
#include "luo-uapi.h"
#include "macro.h"
#include "manifest.h"
#include "pci-slot.h"
#include "pci.h"
#include "report.h"
#include "time-util.h"
#include "update-state.h"

typedef struct Manager Manager;
typedef struct Vmm Vmm;
typedef struct ControlClient ControlClient;

typedef struct HeldSession {
	int fd;
	char *name;
	bool incoming; /* retrieved after a kexec: closing it would free memory */
} HeldSession;

typedef struct Config {
	char *runtime_dir;
	char *state_dir;
	char *modules_dir;  /* NULL: libkmod's default */
	char *proc_cmdline; /* NULL: /proc/cmdline */
	char *boot_dir;     /* kernels' configs; NULL: /boot */
	char *sysfs_dir;    /* NULL: /sys */
	gid_t group;        /* may use both APIs besides root; (gid_t)-1: nobody else */
	unsigned max_vmms;
	unsigned max_fds_per_vmm;
	unsigned max_clients;
	uint32_t prepare_timeout_ms;
	uint32_t freeze_timeout_ms;
	uint64_t restore_timeout_s; /* 0: keep an absent VM's memory until released */
} Config;

#define CONFIG_MAX_VMMS_DEFAULT 4096
#define CONFIG_MAX_FDS_PER_VMM_DEFAULT 64
#define CONFIG_MAX_CLIENTS_DEFAULT 64
#define CONFIG_PREPARE_TIMEOUT_MS_DEFAULT 60000
#define CONFIG_FREEZE_TIMEOUT_MS_DEFAULT 5000
#define CONTROL_OUTPUT_MAX (1024 * 1024)

struct Vmm {
	Manager *manager;
	char vm_id[LU_VM_ID_MAX + 1]; /* empty until HELLO */
	int fd;                       /* -1: not connected (after the kexec, until it is back) */
	sd_event_source *io;
	struct ucred cred;
	uint32_t version; /* of the protocol, from HELLO */
	VmmState state;

	int session_fd; /* our copy; -1 when none */
	char session_name[LUO_SESSION_NAME_SIZE];
	uint64_t *tokens;
	size_t n_tokens;
	bool session_handed_out; /* the VMM holds a copy of the session fd */
	bool absent;  /* recreated by a restarted daemon, its VMM not back yet */
	size_t manifest_slot; /* its entry in the manifest, from commit on */

	/* Devices it preserved through us in its last update, one token each. */
	PciSlot *devices;
	size_t n_devices;
	bool hot_swapped; /* that update's session was finished with them on it */
	int finish_error; /* the kernel refused FINISH at its last RESUMED: negative errno */
	bool finish_deferred; /* resumed; FINISH waits until no VMM awaits its restore */

	usec_t freeze_requested_us, frozen_us, restored_us, resumed_us;
};

typedef struct Update {
	char id[LU_UPDATE_ID_MAX + 1];
	char tag[9]; /* short random part, used in session names */
	char *kernel_image, *initrd, *cmdline;
	uint32_t prepare_timeout_ms;

	int session_fd; /* the daemon's own session, MANIFEST_SESSION_NAME */
	int record_fd;  /* the commit record, preserved at commit */
	size_t record_capacity;
	Manifest *manifest; /* modules gathered during prepare; after the kexec, what was read */
	char *device_refusal; /* why the kernels cannot carry devices over; NULL: they can */

	Report *report;
	sd_event_source *timer; /* the deadline of the current phase */
	usec_t freeze_requested_us, frozen_us;
	uint64_t freeze_requested_tsc, frozen_tsc; /* handover clock ticks, 0: none */
} Update;

struct Manager {
	sd_event *event;
	Config config;

	UpdateState state;
	Update *update; /* NULL when idle */
	json_object *last_report;

	Vmm **vmms;
	size_t n_vmms;
	/* VMMs past HELLO, per state: the barriers ask these once per message */
	size_t n_in_state[_VMM_STATE_MAX];

	int vmm_listen_fd, control_listen_fd;
	sd_event_source *vmm_listen_source, *control_listen_source;

	ControlClient *clients;
	size_t n_clients;

	/* The control request waiting for prepare or commit to complete. */
	ControlClient *waiter;
	json_object *waiter_id;
	bool waiter_progress;

	bool under_systemd; /* NOTIFY_SOCKET set: the fd store keeps our sessions */
	bool exiting;       /* leave the fd store alone: the next instance needs it */

	/* Session fds a previous instance left in the fd store (manager-held.c). */
	HeldSession *held;
	size_t n_held;
};

/* manager.c */
int manager_new(const Config *config, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_FREEP(Manager, manager_free)
int manager_start(Manager *m);
int manager_run(Manager *m);
void manager_notify_status(Manager *m);
/* Keep fd in systemd's fd store under name (no-op outside systemd), or forget it. */
void manager_fdstore_add(Manager *m, int fd, const char *name);
void manager_fdstore_remove(Manager *m, const char *name);
usec_t manager_now(void); /* CLOCK_REALTIME µs, the report's clock */
/* manager-held.c */
/* Keep a session fd the fd store handed back; takes fd over. */
int manager_hold_fd(Manager *m, int fd, const char *name);
/* Take a held session of that direction back by name (it stays in the fd store); -ENOENT if none. */
int manager_take_held(Manager *m, const char *name, bool incoming);
/* Cancel the held outgoing sessions (and with unload the kexec image); returns how many. */
size_t manager_release_held(Manager *m, bool unload);
size_t manager_count_held(Manager *m, bool incoming);
json_object *manager_held_json(Manager *m);
/* At exit: close our copies, leave the fd store alone. */
void manager_held_free(Manager *m);

/* manager-vmm.c */
int manager_vmm_accept(Manager *m, int listen_fd);
Vmm *manager_find_vmm(Manager *m, const char *vm_id);
/* Add a VMM known from a manifest that has not reconnected yet, in state s, holding session_fd. */
int manager_add_absent_vmm(Manager *m, const ManifestVm *mvm, VmmState s, int session_fd, Vmm **ret);
/* VMMs of the update in flight that are not connected (after a daemon restart). */
size_t manager_count_absent(Manager *m);
/* The ids of the VMMs match() picks, ", "-separated, cut with "..." to fit size. */
const char *manager_vmm_ids(Manager *m, bool (*match)(const Vmm *v, const void *arg),
			    const void *arg, char *buf, size_t size);
const char *manager_absent_vmms(Manager *m, char *buf, size_t size);
void vmm_remove(Vmm *v);
void vmm_set_state(Vmm *v, VmmState s);
/* Close our session copy (which cancels it before the kexec, finishes it after). */
void vmm_drop_session(Vmm *v);
/* Create the VMM's session for the update in flight and send it PREPARE. */
int vmm_prepare_session(Vmm *v);
size_t manager_count_vmms(Manager *m, VmmState s);

/* manager-control.c */
int manager_control_accept(Manager *m, int listen_fd);
void manager_control_free_all(Manager *m);
/* Events go to subscribers and to a waiter that asked for progress. */
void manager_emit(Manager *m, json_object *event);
void manager_emit_state(Manager *m);
void manager_emit_vmm(Manager *m, Vmm *v);
/* Answer the waiting prepare/commit request. */
void manager_reply_waiter(Manager *m, json_object *result, ControlError code, int error,
			  const char *message);
void manager_forget_client(Manager *m, ControlClient *c);

/* manager-update.c */
int manager_set_state(Manager *m, UpdateEvent event);
/* v has a part in the update in flight before the kexec (preparing to frozen). */
bool vmm_in_update(const Vmm *v);
int manager_prepare(Manager *m, const PrepareParams *p, ControlError *ret_code, char **ret_message);
int manager_commit(Manager *m, const CommitParams *p, ControlError *ret_code, char **ret_message);
/* Roll back everything before the kexec; VMMs are thawed and sessions closed. */
void manager_abort(Manager *m, ControlError code, int error, const char *fmt, ...) _printf_(4, 5);
/* Re-evaluate the update after any VMM changed state. */
void manager_update_progress(Manager *m);
/* A VMM's connection went away: what that means depends on the phase. */
void manager_vmm_lost(Manager *m, Vmm *v);
Update *update_free(Update *u);
DEFINE_FREEP(Update, update_free)
json_object *manager_status_json(Manager *m);
json_object *manager_list_json(Manager *m);
/* The report of the update in flight, else the last one, else NULL. */
json_object *manager_report_json(Manager *m);
void manager_finish_report(Manager *m, ReportOutcome outcome);

/* manager-resume.c */
/* At start, before the kexec: pick up or roll back what a previous instance left. */
int manager_resume_interrupted(Manager *m);
/* Write update.json for the update in flight, as in state (preparing, prepared, freezing). */
void manager_persist_update(Manager *m, UpdateState state);
/* The VMM of an absent record of the resumed update said HELLO again. */
int manager_vmm_reconnected(Manager *m, Vmm *v, uint32_t seq);

/* manager-devices.c */
/* The devices bound to vfio-pci now (libpci, under --sysfs-dir). */
int manager_bound_devices(Manager *m, PciDevice **ret, size_t *ret_n);
/* The running kernel's support for carrying devices over (its config in --boot-dir). */
int manager_running_support(Manager *m, DeviceSupport *ret);
/* Set u->device_refusal from both kernels' support. */
int update_set_device_refusal(Update *u, const DeviceSupport *running, const DeviceSupport *next);
/* The same, the next kernel's read again from u->kernel_image (a resumed update). */
int manager_update_device_refusal(Manager *m, Update *u);
/*
 * PRESERVE_FD of fd by v: 1 and the slot when fd is a VFIO device file
 * that may be preserved, 0 when it is no device file, or a refusal.
 */
int vmm_device_of_fd(Vmm *v, int fd, PciSlot ret);
int vmm_add_device(Vmm *v, const char *slot);
void vmm_forget_devices(Vmm *v);
/* Add v's devices to its entry (index vm) of man. */
int vmm_devices_to_manifest(const Vmm *v, Manifest *man, size_t vm);
/*
 * Was every device bound to vfio-pci preserved by a VMM of the update?
 * 0; -EOPNOTSUPP with *ret_message naming the others; or another negative
 * errno (with a message) when they cannot be listed.
 */
int manager_check_coverage(Manager *m, char **ret_message);
json_object *manager_devices_json(Manager *m);
json_object *vmm_devices_json(const Vmm *v);

/* manager-restore.c */
/* At start: pick up an update the previous kernel handed over, if any. */
int manager_restore_incoming(Manager *m);
/* A VMM with a pending restore said HELLO. */
int manager_restore_vmm(Manager *m, Vmm *v);
/* A restored VMM runs again: finish its session, now or (devices) once no VMM awaits. */
int manager_vmm_resumed(Manager *m, Vmm *v);
/* No VMM awaits its restore any more: FINISH the sessions that waited for that. */
void manager_finish_deferred(Manager *m);
int manager_release_vmm(Manager *m, const char *vm_id, ControlError *ret_code, char **ret_message);
