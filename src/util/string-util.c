/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <liveupdate/vmm-protocol.h>

#include "string-util.h"

static bool id_valid(const char *id, size_t max)
{
	size_t n;

	if (!id)
		return false;
	n = strnlen(id, max + 1);
	if (n == 0 || n > max)
		return false;
	if (id[0] == '.' || id[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool vm_id_valid(const char *id)
{
	return id_valid(id, LU_VM_ID_MAX);
}

bool update_id_valid(const char *id)
{
	return id_valid(id, LU_UPDATE_ID_MAX);
}

int string_table_lookup(const char *const *table, size_t n, const char *s)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (table[i] && strcmp(table[i], s) == 0)
			return (int)i;
	return -EINVAL;
}

const char *errno_to_name(int error)
{
	if (error < 0)
		error = -error;
	return strerrorname_np(error);
}
