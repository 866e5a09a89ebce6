/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The update in flight before the kexec, as a restarted daemon needs it:
 * $STATE_DIRECTORY/update.json, replaced atomically whenever the update
 * reaches a state a restart must know about:
 *
 *   preparing   written at prepare (and when a late VMM joins)
 *   prepared    written when the last VMM finished preserving: the VMs,
 *               their session names, uids and tokens, the modules
 *   freezing    written at commit, before the first FREEZE and outside the
 *               blackout (nothing is written inside it)
 *
 * and removed when the update ends (abort, or the restore after the kexec).
 * The sessions themselves ride in systemd's fd store; this file says what
 * they are. The VMs and the kernel are a manifest (manifest.h), so one
 * reader checks both.
 *
 *   {"format": "liveupdated-update", "version": 1, "state": "prepared",
 *    "tag": "1a2b3c4d", "prepare_timeout_ms": N, "manifest": {...}}
 */

#include <stdint.h>

#include "manifest.h"
#include "update-state.h"

#define UPDATE_FILE_NAME "update.json"
#define UPDATE_FILE_VERSION 1

typedef struct UpdateFile {
	UpdateState state; /* preparing, prepared or freezing */
	char tag[9];
	uint32_t prepare_timeout_ms;
	Manifest *manifest;
} UpdateFile;

UpdateFile *update_file_free(UpdateFile *f);
DEFINE_FREEP(UpdateFile, update_file_free)

int update_file_to_json(const UpdateFile *f, char **ret, size_t *ret_len);
/* -EBADMSG for anything malformed, -EPROTONOSUPPORT for an unknown version. */
int update_file_from_json(const char *buf, size_t len, UpdateFile **ret);

int update_file_write(const char *state_dir, const UpdateFile *f);
/* -ENOENT when there is none. */
int update_file_read(const char *state_dir, UpdateFile **ret);
int update_file_remove(const char *state_dir);
