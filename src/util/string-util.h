/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A VM id: 1..LU_VM_ID_MAX bytes of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool vm_id_valid(const char *id);
/* Same alphabet for update ids, up to LU_UPDATE_ID_MAX. */
bool update_id_valid(const char *id);
/* Index of s in a table of names (NULL holes allowed), or -EINVAL. */
int string_table_lookup(const char *const *table, size_t n, const char *s);
/* Name of an errno value ("EBUSY"), or NULL. */
const char *errno_to_name(int error);
