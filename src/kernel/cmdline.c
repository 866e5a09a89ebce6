/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cmdline.h"
#include "macro.h"

int cmdline_read_running(const char *path, char **ret)
{
	_cleanup_close_ int fd = -1;
	char buf[CMDLINE_MAX + 1];
	ssize_t n;

	fd = open(path ?: "/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return negative_errno();
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

/* Next word of s starting at *pos; double quotes group, as the kernel parses them. */
static bool next_word(const char *s, size_t *pos, size_t *start, size_t *len)
{
	size_t i = *pos;
	bool quoted = false;

	while (s[i] == ' ' || s[i] == '\t')
		i++;
	if (!s[i])
		return false;
	*start = i;
	while (s[i] && (quoted || (s[i] != ' ' && s[i] != '\t'))) {
		if (s[i] == '"')
			quoted = !quoted;
		i++;
	}
	*len = i - *start;
	*pos = i;
	return true;
}

static bool word_has_key(const char *w, size_t len, const char *key)
{
	size_t k = strlen(key);

	return len >= k && strncmp(w, key, k) == 0;
}

/* -EINVAL if the line switches key off, 1 if it sets key=on, 0 if absent. */
static int check_switch(const char *line, const char *key)
{
	size_t pos = 0, start, len, klen = strlen(key);
	int found = 0;

	while (next_word(line, &pos, &start, &len)) {
		const char *w = line + start;

		if (!word_has_key(w, len, key) || len <= klen || w[klen] != '=')
			continue;
		/* the kernel takes the last occurrence; so do we */
		if ((len - klen - 1 == 2 && strncmp(w + klen + 1, "on", 2) == 0) ||
		    (len - klen - 1 == 1 && (w[klen + 1] == '1' || w[klen + 1] == 'y')))
			found = 1;
		else
			found = -EINVAL;
	}
	return found;
}

static int append_word(char *buf, size_t *off, const char *w, size_t len)
{
	if (*off + (*off ? 1 : 0) + len + 1 > CMDLINE_MAX)
		return -E2BIG;
	if (*off)
		buf[(*off)++] = ' ';
	memcpy(buf + *off, w, len);
	*off += len;
	buf[*off] = '\0';
	return 0;
}

int cmdline_build(const char *base, const char *append, char **ret)
{
	/* Words after a lone "--" are init's arguments: ours must go before it. */
	char kernel[CMDLINE_MAX] = "", init[CMDLINE_MAX] = "";
	const char *parts[] = { base, append };
	size_t koff = 0, ioff = 0;
	int r;

	for (size_t p = 0; p < ARRAY_SIZE(parts); p++) {
		size_t pos = 0, start, len;
		bool to_init = false;

		if (!parts[p])
			continue;
		while (next_word(parts[p], &pos, &start, &len)) {
			const char *w = parts[p] + start;

			if (!to_init && len == 2 && strncmp(w, "--", 2) == 0) {
				to_init = true;
				continue;
			}
			/* only the boot loader means these; the kexec'd kernel gets its initrd by fd */
			if (!to_init && (word_has_key(w, len, "BOOT_IMAGE=") || word_has_key(w, len, "initrd=")))
				continue;
			r = to_init ? append_word(init, &ioff, w, len) : append_word(kernel, &koff, w, len);
			if (r < 0)
				return r;
		}
	}

	static const char *const needed[] = { "liveupdate", "kho" };
	for (size_t i = 0; i < ARRAY_SIZE(needed); i++) {
		char word[32];

		r = check_switch(kernel, needed[i]);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		snprintf(word, sizeof(word), "%s=on", needed[i]);
		r = append_word(kernel, &koff, word, strlen(word));
		if (r < 0)
			return r;
	}

	if (ioff > 0) {
		r = append_word(kernel, &koff, "--", 2);
		if (r < 0)
			return r;
		r = append_word(kernel, &koff, init, ioff);
		if (r < 0)
			return r;
	}

	*ret = strdup(kernel);
	return *ret ? 0 : -ENOMEM;
}
