/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "macro.h"
#include "string-util.h"
#include "update-state.h"

static const char *const update_state_table[_UPDATE_STATE_MAX] = {
	[UPDATE_IDLE] = "idle",
	[UPDATE_PREPARING] = "preparing",
	[UPDATE_PREPARED] = "prepared",
	[UPDATE_FREEZING] = "freezing",
	[UPDATE_FROZEN] = "frozen",
	[UPDATE_REBOOTING] = "rebooting",
	[UPDATE_RESTORING] = "restoring",
	[UPDATE_FINISHING] = "finishing",
};

static const char *const update_event_table[_UPDATE_EVENT_MAX] = {
	[UPDATE_EVENT_PREPARE] = "prepare",
	[UPDATE_EVENT_ALL_PREPARED] = "all-prepared",
	[UPDATE_EVENT_COMMIT] = "commit",
	[UPDATE_EVENT_ALL_FROZEN] = "all-frozen",
	[UPDATE_EVENT_REBOOT] = "reboot",
	[UPDATE_EVENT_FAIL] = "fail",
	[UPDATE_EVENT_ABORT] = "abort",
	[UPDATE_EVENT_INCOMING] = "incoming",
	[UPDATE_EVENT_ALL_RESTORED] = "all-restored",
	[UPDATE_EVENT_ALL_FINISHED] = "all-finished",
	[UPDATE_EVENT_RESUME] = "resume",
};

static const char *const vmm_state_table[_VMM_STATE_MAX] = {
	[VMM_REGISTERED] = "registered",
	[VMM_PREPARING] = "preparing",
	[VMM_PREPARED] = "prepared",
	[VMM_FREEZING] = "freezing",
	[VMM_FROZEN] = "frozen",
	[VMM_AWAITING] = "awaiting",
	[VMM_RESTORED] = "restored",
	[VMM_RELEASED] = "released",
};

/*
 * The whole machine. Anything not listed is refused. FAIL and ABORT both
 * roll back to IDLE, and only before the kexec: after it there is no old
 * kernel to go back to, and a VMM that fails on the new one is handled on
 * its own (released) without failing the others.
 */
static const struct {
	UpdateState from;
	UpdateEvent event;
	UpdateState to;
} transitions[] = {
	{ UPDATE_IDLE, UPDATE_EVENT_PREPARE, UPDATE_PREPARING },
	{ UPDATE_IDLE, UPDATE_EVENT_INCOMING, UPDATE_RESTORING },
	/* the daemon restarted with a prepared update in its fd store */
	{ UPDATE_IDLE, UPDATE_EVENT_RESUME, UPDATE_PREPARED },

	{ UPDATE_PREPARING, UPDATE_EVENT_ALL_PREPARED, UPDATE_PREPARED },
	{ UPDATE_PREPARING, UPDATE_EVENT_FAIL, UPDATE_IDLE },
	{ UPDATE_PREPARING, UPDATE_EVENT_ABORT, UPDATE_IDLE },

	/* a VMM that registers late sends a prepared update back to preparing */
	{ UPDATE_PREPARED, UPDATE_EVENT_PREPARE, UPDATE_PREPARING },
	{ UPDATE_PREPARED, UPDATE_EVENT_COMMIT, UPDATE_FREEZING },
	{ UPDATE_PREPARED, UPDATE_EVENT_FAIL, UPDATE_IDLE },
	{ UPDATE_PREPARED, UPDATE_EVENT_ABORT, UPDATE_IDLE },

	{ UPDATE_FREEZING, UPDATE_EVENT_ALL_FROZEN, UPDATE_FROZEN },
	{ UPDATE_FREEZING, UPDATE_EVENT_FAIL, UPDATE_IDLE },
	{ UPDATE_FREEZING, UPDATE_EVENT_ABORT, UPDATE_IDLE },

	{ UPDATE_FROZEN, UPDATE_EVENT_REBOOT, UPDATE_REBOOTING },
	{ UPDATE_FROZEN, UPDATE_EVENT_FAIL, UPDATE_IDLE },

	/* reboot() returned: the kernel refused the kexec and rolled back */
	{ UPDATE_REBOOTING, UPDATE_EVENT_FAIL, UPDATE_IDLE },

	{ UPDATE_RESTORING, UPDATE_EVENT_ALL_RESTORED, UPDATE_FINISHING },
	{ UPDATE_FINISHING, UPDATE_EVENT_ALL_FINISHED, UPDATE_IDLE },
};

int update_state_next(UpdateState from, UpdateEvent event)
{
	for (size_t i = 0; i < ARRAY_SIZE(transitions); i++)
		if (transitions[i].from == from && transitions[i].event == event)
			return transitions[i].to;
	return -EPERM;
}

int update_state_abortable(UpdateState s)
{
	return update_state_next(s, UPDATE_EVENT_ABORT) >= 0;
}

int update_state_holds_sessions(UpdateState s)
{
	return s != UPDATE_IDLE;
}

const char *update_state_to_string(UpdateState s)
{
	return s >= 0 && s < _UPDATE_STATE_MAX ? update_state_table[s] : NULL;
}

UpdateState update_state_from_string(const char *s)
{
	return string_table_lookup(update_state_table, _UPDATE_STATE_MAX, s);
}

const char *update_event_to_string(UpdateEvent e)
{
	return e >= 0 && e < _UPDATE_EVENT_MAX ? update_event_table[e] : NULL;
}

const char *vmm_state_to_string(VmmState s)
{
	return s >= 0 && s < _VMM_STATE_MAX ? vmm_state_table[s] : NULL;
}

VmmState vmm_state_from_string(const char *s)
{
	return string_table_lookup(vmm_state_table, _VMM_STATE_MAX, s);
}
