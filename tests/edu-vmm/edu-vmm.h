/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the parts of liveupdate-edu-vmm share: its exit statuses and, in
 * daemon mode (--vm-id), the VM as the process keeps it.
 *
 *   edu-vmm.c          options, passing edu through, the standalone mode
 *   edu-vmm-daemon.c   daemon mode: its loop, signals and DMA rounds
 *   edu-vmm-update.c   PREPARE, FREEZE, THAW: the update before the kexec
 *   edu-vmm-restore.c  RESTORE, RESUMED: the device taken over after it
 *   edu-vmm-ram.c      guest RAM: its layout, the VM's state kept in it
 */

#include <stdbool.h>
#include <stdint.h>

#include <liveupdate/vmm.h>

#include "passthrough.h"

enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_HANGUP = 4,
	RUN_ON = -1, /* daemon mode's handlers: keep the VM running */
};

enum vm_state {
	VM_RUNNING,
	VM_FROZEN, /* FREEZE: until THAW, or for good (the kexec) */
	VM_HELD,   /* restored and rebuilt, RESUMED held until SIGUSR2 */
};

typedef struct EduVmm {
	const char *slot, *vm_id, *socket;
	bool hold_resume;

	struct lu_vmm *vmm;
	Passthrough p;
	bool attached; /* p is set up: passed through, or taken over */
	enum vm_state state;
	bool in_flight; /* the DMA started at FREEZE, not checked yet */
	unsigned int rounds;
	uint64_t frozen_tsc;  /* the old process's, after the kexec */
	uint64_t running_tsc; /* after the kexec: taken over and rebuilt */
} EduVmm;

/* edu at slot passed through to p, and said ("attached"): 0, or an error event and < 0. */
int vm_attach(Passthrough *p, const char *slot);

/* Daemon mode, until the end: an exit status. */
int run_daemon_mode(EduVmm *e);

/* The handlers of the daemon's events: RUN_ON, or an exit status. */
int on_prepare(EduVmm *e, const struct lu_vmm_event *ev);
int on_freeze(EduVmm *e, const struct lu_vmm_event *ev);
int on_thaw(EduVmm *e, const struct lu_vmm_event *ev);
int on_restore(EduVmm *e, const struct lu_vmm_event *ev);

/* RESUMED, after RESTORE or, held, at SIGUSR2: RUN_ON, or an exit status. */
int vm_resume(EduVmm *e);
