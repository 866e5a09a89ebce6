/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

static int table_push(Table *t, char *cell)
{
	if (t->n_cells == t->allocated) {
		size_t n = t->allocated ? t->allocated * 2 : 16;
		char **p = reallocarray(t->cells, n, sizeof(char *));

		if (!p) {
			free(cell);
			return -ENOMEM;
		}
		t->cells = p;
		t->allocated = n;
	}
	t->cells[t->n_cells++] = cell;
	return 0;
}

int table_add(Table *t, const char *cell)
{
	char *s = strdup(cell ?: "-");

	if (!s)
		return -ENOMEM;
	return table_push(t, s);
}

int table_addf(Table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	return table_push(t, s);
}

size_t table_rows(const Table *t)
{
	return t->n_columns ? t->n_cells / t->n_columns : 0;
}

void table_print(const Table *t, FILE *f)
{
	_cleanup_free_ size_t *width = calloc(t->n_columns, sizeof(size_t));

	if (!width)
		return;
	for (size_t i = 0; i < t->n_cells; i++)
		width[i % t->n_columns] = MAX(width[i % t->n_columns], strlen(t->cells[i]));

	for (size_t i = 0; i < t->n_cells; i++) {
		size_t col = i % t->n_columns;
		bool last = col == t->n_columns - 1 || i == t->n_cells - 1;

		/* No trailing blanks after the last column. */
		if (last)
			fprintf(f, "%s\n", t->cells[i]);
		else
			fprintf(f, "%-*s  ", (int)width[col], t->cells[i]);
	}
}

void table_done(Table *t)
{
	for (size_t i = 0; i < t->n_cells; i++)
		free(t->cells[i]);
	free(t->cells);
	*t = TABLE_NULL(t->n_columns);
}
