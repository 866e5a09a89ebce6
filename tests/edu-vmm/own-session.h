/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The LUO session of the programs that hand edu over across a kexec
 * themselves (edu-handover, edu-hotswap), where edu-vmm has liveupdated's.
 */

#include <stdint.h>

#include "passthrough.h"

/* Before the kexec: the session's fd, or -1 after an error event. */
int own_session_create(const char *name);

/*
 * After the kexec: the session retrieved, and guest RAM, preserved in it
 * under token, retrieved and mapped: p->ram_fd and p->ram, p's other fds
 * -1. The session's fd, or -1 after an error event.
 */
int own_session_retrieve_ram(const char *name, uint64_t token, Passthrough *p);
