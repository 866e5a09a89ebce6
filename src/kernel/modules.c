/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <libkmod.h>
#include <stdarg.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "macro.h"
#include "modules.h"

static void kmod_unrefp(struct kmod_ctx **ctx)
{
	kmod_unref(*ctx);
}

static void kmod_list_freep(struct kmod_list **l)
{
	kmod_module_unref_list(*l);
}

static void kmod_quiet(void *data, int priority, const char *file, int line, const char *fn,
		       const char *format, va_list args)
{
}

/* A module compiled in but listed nowhere (no modules dir on a minimal guest). */
static int builtin_in_sysfs(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return access(path, F_OK) == 0;
}

static int load_one(struct kmod_ctx *ctx, const char *name)
{
	_cleanup_(kmod_list_freep) struct kmod_list *list = NULL;
	struct kmod_list *l;
	int r;

	r = kmod_module_new_from_lookup(ctx, name, &list);
	if (r < 0)
		return r;
	if (!list)
		return builtin_in_sysfs(name) ? 0 : -ENOENT;

	kmod_list_foreach(l, list) {
		struct kmod_module *mod = kmod_module_get_module(l);
		int state = kmod_module_get_initstate(mod);

		/* built in, or already there: nothing to load */
		if (state == KMOD_MODULE_BUILTIN || state == KMOD_MODULE_LIVE)
			r = 0;
		else
			r = kmod_module_probe_insert_module(mod, KMOD_PROBE_IGNORE_LOADED, NULL, NULL,
							    NULL, NULL);
		kmod_module_unref(mod);
		/* one alias target loading is enough */
		if (r == 0)
			return 0;
	}
	return r < 0 ? r : -ENOENT;
}

int modules_load(const char *modules_dir, char *const *names, size_t n, const char **ret_failed)
{
	_cleanup_(kmod_unrefp) struct kmod_ctx *ctx = NULL;
	int r;

	if (n == 0)
		return 0;
	ctx = kmod_new(modules_dir, NULL);
	if (!ctx)
		return -ENOMEM;
	/* library code does not log: the caller reports the errno it gets */
	kmod_set_log_fn(ctx, kmod_quiet, NULL);
	(void)kmod_load_resources(ctx);

	for (size_t i = 0; i < n; i++) {
		r = load_one(ctx, names[i]);
		if (r < 0) {
			if (ret_failed)
				*ret_failed = names[i];
			return r;
		}
	}
	return 0;
}

int modules_for_fd(int fd, const char **ret)
{
	char link[64], target[256];
	struct statfs sfs;
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0)
		return negative_errno();
	/*
	 * memfd: a regular shmem file, handler built in. Not any file on a
	 * tmpfs: device nodes live on devtmpfs, which says tmpfs too.
	 */
	if (S_ISREG(st.st_mode) && (unsigned long)sfs.f_type == TMPFS_MAGIC) {
		*ret = NULL;
		return 0;
	}
	if (!S_ISCHR(st.st_mode))
		return -EOPNOTSUPP;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return negative_errno();
	target[n] = '\0';

	if (strcmp(target, "/dev/iommu") == 0) {
		*ret = "iommufd";
		return 0;
	}
	if (strncmp(target, "/dev/vfio/devices/", 18) == 0) {
		*ret = "vfio-pci";
		return 0;
	}
	return -EOPNOTSUPP;
}
