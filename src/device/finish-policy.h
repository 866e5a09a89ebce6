/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * FINISH of a session that carries a device checks the VMM's new domain
 * against the handed-over one page by page: about a second per few GiB
 * of guest RAM, in the daemon's only thread. Other VMMs still waiting
 * for their RESTORE are in their blackout, so it waits for them. The VM
 * whose FINISH waits runs meanwhile; its device keeps translating
 * through the old tables, which map the same memory.
 */

#include <stdbool.h>
#include <stddef.h>

/* Should the FINISH of a resumed VMM's session, with n_devices on it, wait? */
bool finish_deferred(size_t n_devices, size_t n_awaiting);
