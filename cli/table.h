/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A text table with columns as wide as their widest cell, for list and report. */

#include <stdio.h>

#include "macro.h"

typedef struct Table {
	size_t n_columns;
	size_t n_cells;
	size_t allocated;
	char **cells; /* row-major; the first row is the header */
} Table;

#define TABLE_NULL(n) ((Table){ .n_columns = (n) })

/* Append the next cell, filling rows left to right. Returns 0 or -ENOMEM. */
int table_add(Table *t, const char *cell);
int table_addf(Table *t, const char *fmt, ...) _printf_(2, 3);
size_t table_rows(const Table *t);
void table_print(const Table *t, FILE *f);
void table_done(Table *t);
