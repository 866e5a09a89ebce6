/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kconfig.h"
#include "macro.h"

DEFINE_FREEP(FILE, fclose)

int kconfig_missing(const char *config_path, const char *const *options, size_t n, char *missing,
		    size_t size)
{
	_cleanup_(fclosep) FILE *f = NULL;
	bool have[KCONFIG_OPTIONS_MAX] = {};
	bool line_start = true;
	char line[512];
	int n_missing = 0;
	size_t used = 0;

	if (n > KCONFIG_OPTIONS_MAX)
		return -EINVAL;
	f = fopen(config_path, "re");
	if (!f)
		return negative_errno();
	while (fgets(line, sizeof(line), f)) {
		/* the rest of a long line (a string value) is not an option */
		bool at_start = line_start;

		line_start = strchr(line, '\n') != NULL;
		if (!at_start)
			continue;
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(options[i]);

			if (strncmp(line, options[i], len) == 0 &&
			    strncmp(line + len, "=y\n", 3) == 0)
				have[i] = true;
		}
	}
	if (ferror(f))
		return -EIO;

	if (size > 0)
		missing[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w;

		if (have[i])
			continue;
		n_missing++;
		if (used >= size)
			continue;
		w = snprintf(missing + used, size - used, "%s%s", used ? ", " : "", options[i]);
		used += w > 0 ? (size_t)w : 0;
	}
	return n_missing;
}
