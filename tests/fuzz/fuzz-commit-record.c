/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The commit record as the next kernel's daemon reads it back
 * (manager-restore.c): checked against the manifest it belongs to.
 *
 * Input: the manifest's JSON, a NUL, then the bytes of the record's memfd
 * (read up to its first NUL by manifest_memfd_read(), as the restore path
 * does). Inputs whose manifest does not read back stop there.
 *
 * A record that reads back must fit the memfd the daemon sizes for it with
 * commit_record_capacity(), and read back the same from there.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool record_equal(const CommitRecord *a, const CommitRecord *b)
{
	return strcmp(a->update_id, b->update_id) == 0 &&
	       a->freeze_requested_us == b->freeze_requested_us && a->frozen_us == b->frozen_us &&
	       a->reboot_us == b->reboot_us && a->freeze_requested_tsc == b->freeze_requested_tsc &&
	       a->frozen_tsc == b->frozen_tsc && a->reboot_tsc == b->reboot_tsc &&
	       a->n_vms == b->n_vms &&
	       memcmp(a->vm_frozen_us, b->vm_frozen_us, a->n_vms * sizeof(usec_t)) == 0;
}

static void check_round_trip(const Manifest *m, const CommitRecord *r)
{
	_cleanup_(commit_record_freep) CommitRecord *back = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t capacity = commit_record_capacity(m->n_vms);
	int n;

	if (r->n_vms != m->n_vms || strcmp(r->update_id, m->update_id) != 0)
		abort();
	buf = malloc(capacity);
	if (!buf)
		return;
	n = commit_record_to_json(r, buf, capacity);
	if (n < 0 || (size_t)n >= capacity)
		abort();
	if (commit_record_from_json(buf, (size_t)n, m, &back) < 0 || !record_equal(r, back))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(manifest_freep) Manifest *m = NULL;
	_cleanup_(commit_record_freep) CommitRecord *r = NULL;
	_cleanup_free_ char *manifest = NULL, *json = NULL, *record = NULL;
	_cleanup_close_ int fd = -1;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t manifest_len, len;

	if (!nul)
		return 0;
	manifest_len = (size_t)(nul - data);
	manifest = memdup(data, manifest_len);
	if (!manifest || manifest_from_json(manifest, manifest_len, &m) < 0)
		return 0;

	data += manifest_len + 1;
	size -= manifest_len + 1;
	fd = manifest_memfd_new("fuzz-commit-record", (const char *)data, size, size);
	if (fd < 0)
		return 0;
	if (manifest_memfd_read(fd, MANIFEST_SIZE_MAX, &json, &len) < 0)
		return 0;

	/* Directly, without a NUL after it: ASan sees any overread. */
	record = memdup(json, len);
	if (!record)
		return 0;
	if (commit_record_from_json(record, len, m, &r) < 0)
		return 0;
	check_round_trip(m, r);
	return 0;
}
