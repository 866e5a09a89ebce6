/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The live update state machine, in one place: the states of the update,
 * the states of one VMM in it, and the only transitions allowed. The
 * manager asks update_state_next() before every change, so an event that
 * makes no sense in the current state is refused instead of half-applied.
 */

#include <errno.h>

typedef enum UpdateState {
	UPDATE_IDLE,      /* nothing in flight */
	UPDATE_PREPARING, /* next kernel loaded, VMMs preserving their fds, VMs run */
	UPDATE_PREPARED,  /* every VMM preserved: commit or abort */
	UPDATE_FREEZING,  /* FREEZE sent to every VMM at once, waiting for all acks */
	UPDATE_FROZEN,    /* every VMM stopped: the blackout has begun */
	UPDATE_REBOOTING, /* reboot(LINUX_REBOOT_CMD_KEXEC) issued */
	UPDATE_RESTORING, /* new kernel: handing sessions back to restarted VMMs */
	UPDATE_FINISHING, /* every VMM has its files; finishing sessions as VMs resume */
	_UPDATE_STATE_MAX,
	_UPDATE_STATE_INVALID = -EINVAL,
} UpdateState;

typedef enum UpdateEvent {
	UPDATE_EVENT_PREPARE,      /* operator asked to prepare */
	UPDATE_EVENT_ALL_PREPARED, /* the last VMM finished preserving */
	UPDATE_EVENT_COMMIT,       /* operator asked to commit */
	UPDATE_EVENT_ALL_FROZEN,   /* the last VMM acknowledged FREEZE */
	UPDATE_EVENT_REBOOT,       /* commit record written, jumping */
	UPDATE_EVENT_FAIL,         /* something failed before the kexec: abort */
	UPDATE_EVENT_ABORT,        /* operator asked to abort */
	UPDATE_EVENT_INCOMING,     /* at start: the previous kernel handed over an update */
	UPDATE_EVENT_ALL_RESTORED, /* every VMM took its session back or was released */
	UPDATE_EVENT_ALL_FINISHED, /* every session finished or released */
	UPDATE_EVENT_RESUME,       /* at start: a prepared update a previous instance left */
	_UPDATE_EVENT_MAX,
	_UPDATE_EVENT_INVALID = -EINVAL,
} UpdateEvent;

typedef enum VmmState {
	VMM_REGISTERED, /* connected, no update involves it yet */
	VMM_PREPARING,  /* has a session, preserving its fds */
	VMM_PREPARED,   /* said PREPARE_DONE */
	VMM_FREEZING,   /* FREEZE sent */
	VMM_FROZEN,     /* acknowledged FREEZE */
	VMM_AWAITING,   /* after the kexec: its session waits for it to come back */
	VMM_RESTORED,   /* got its session back; FINISH follows RESUMED */
	VMM_RELEASED,   /* never came back; an operator or the timeout freed it */
	_VMM_STATE_MAX,
	_VMM_STATE_INVALID = -EINVAL,
} VmmState;

/* The state an event leads to, or -EPERM when the event is not allowed in from. */
int update_state_next(UpdateState from, UpdateEvent event);

/* Before the kexec an update can still be rolled back; after it, never. */
int update_state_abortable(UpdateState s);
/* Does this state hold LUO sessions that a daemon exit would cancel or finish? */
int update_state_holds_sessions(UpdateState s);

const char *update_state_to_string(UpdateState s);
UpdateState update_state_from_string(const char *s);
const char *update_event_to_string(UpdateEvent e);
const char *vmm_state_to_string(VmmState s);
VmmState vmm_state_from_string(const char *s);
