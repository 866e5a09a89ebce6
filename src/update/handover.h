/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one thing the next daemon must know before it may open
 * /dev/liveupdate: which modules register the handlers of the preserved
 * files (that first open deserializes them, and a missing handler fails
 * it for good). It cannot be read from LUO itself, so it goes to a small
 * file in the state directory, written and synced at commit:
 *
 *   {"update_id": "...", "modules": ["vfio-pci", "iommufd"]}
 *
 * The manifest inside LUO stays the authority; the update ids must match.
 */

#include <stddef.h>

#include "manifest.h"

#define HANDOVER_FILE_NAME "handover.json"

/* Replace dir/name atomically (temporary file, fsync, rename, fsync of dir). */
int state_file_write(const char *dir, const char *name, const char *data, size_t len);

int handover_write(const char *state_dir, const Manifest *m);
/* -ENOENT when there is none. *ret_modules is a NULL-terminated strv. */
int handover_read(const char *state_dir, char **ret_update_id, char ***ret_modules, size_t *ret_n);
int handover_remove(const char *state_dir);
void strv_free(char **l);
