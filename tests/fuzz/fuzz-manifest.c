/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manifest as the next kernel's daemon reads it back (manager-restore.c):
 * the preserved memfd's bytes, read up to the first NUL by
 * manifest_memfd_read(), then manifest_from_json(). The same bytes also go
 * to manifest_from_json() directly, without a NUL after them.
 *
 * A manifest that reads back must write out again (manifest_to_json()), and
 * what it writes must read back to the same text: the reader accepts nothing
 * the writer could not have produced from the parsed fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const Manifest *m)
{
	_cleanup_free_ char *json = NULL, *again = NULL;
	_cleanup_(manifest_freep) Manifest *back = NULL;
	size_t len, len_again;

	if (manifest_to_json(m, &json, &len) < 0)
		return; /* out of memory */
	if (manifest_from_json(json, len, &back) < 0)
		abort();
	if (manifest_to_json(back, &again, &len_again) < 0)
		return;
	if (len != len_again || memcmp(json, again, len) != 0)
		abort();
}

/* What the restore path does: the memfd, read up to its first NUL. */
static void read_via_memfd(const uint8_t *data, size_t size)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *json = NULL;
	_cleanup_(manifest_freep) Manifest *m = NULL;
	size_t len;

	fd = manifest_memfd_new("fuzz-manifest", (const char *)data, size, size);
	if (fd < 0)
		return;
	if (manifest_memfd_read(fd, MANIFEST_SIZE_MAX, &json, &len) < 0)
		return;
	if (len > size || json[len] != '\0')
		abort();
	if (manifest_from_json(json, len, &m) < 0)
		return;
	check_round_trip(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(manifest_freep) Manifest *m = NULL;
	_cleanup_free_ char *buf = NULL;

	/* Exactly size bytes, no NUL after them: ASan sees any overread. */
	buf = memdup(data, size);
	if (!buf)
		return 0;
	if (manifest_from_json(buf, size, &m) == 0)
		check_round_trip(m);

	read_via_memfd(data, size);
	return 0;
}
