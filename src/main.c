/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * liveupdated: orchestrates a kernel live update under running VMs.
 * main() only reads the configuration and starts the Manager.
 */

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "handover-clock.h"
#include "log.h"
#include "manager.h"

static void help(void)
{
	printf("liveupdated [OPTIONS...]\n\n"
	       "Live update daemon: carries running VMs over a kexec into a new kernel.\n\n"
	       "  -h --help                   Show this help\n"
	       "     --version                Show the version\n"
	       "     --runtime-dir=DIR        Sockets go here (default $RUNTIME_DIRECTORY or %s)\n"
	       "     --state-dir=DIR          State that must survive the reboot (default\n"
	       "                              $STATE_DIRECTORY or %s)\n"
	       "     --group=GROUP            Members may use both sockets, besides root\n"
	       "     --max-vmms=N             VMM connections at most (default %u)\n"
	       "     --max-fds-per-vmm=N      Preserved fds per VMM at most (default %u, max %u)\n"
	       "     --max-clients=N          Control API clients at most (default %u)\n"
	       "     --prepare-timeout=MS     VMMs' deadline to preserve (default %u)\n"
	       "     --freeze-timeout=MS      VMMs' deadline to freeze (default %u)\n"
	       "     --restore-timeout=SEC    Free an absent VM's memory after this long after\n"
	       "                              the reboot (default 0: keep until released)\n"
	       "     --modules-dir=DIR        Kernel modules directory (default: libkmod's)\n"
	       "     --boot-dir=DIR           The kernels' config-RELEASE files (default /boot)\n"
	       "     --sysfs-dir=DIR          Where sysfs is mounted (default /sys)\n"
	       "     --log-level=LEVEL        debug, info, notice, warning, err\n",
	       RUNTIME_DIR_DEFAULT, STATE_DIR_DEFAULT, CONFIG_MAX_VMMS_DEFAULT,
	       CONFIG_MAX_FDS_PER_VMM_DEFAULT, LU_VMM_FDS_MAX, CONFIG_MAX_CLIENTS_DEFAULT,
	       CONFIG_PREPARE_TIMEOUT_MS_DEFAULT, CONFIG_FREEZE_TIMEOUT_MS_DEFAULT);
}

static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
		      unsigned long long *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

static int parse_log_level(const char *s)
{
	static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

static int parse_argv(int argc, char *argv[], Config *c)
{
	enum {
		ARG_VERSION = 0x100,
		ARG_RUNTIME_DIR,
		ARG_STATE_DIR,
		ARG_GROUP,
		ARG_MAX_VMMS,
		ARG_MAX_FDS,
		ARG_MAX_CLIENTS,
		ARG_PREPARE_TIMEOUT,
		ARG_FREEZE_TIMEOUT,
		ARG_RESTORE_TIMEOUT,
		ARG_MODULES_DIR,
		ARG_BOOT_DIR,
		ARG_SYSFS_DIR,
		ARG_LOG_LEVEL,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
		{ "state-dir", required_argument, NULL, ARG_STATE_DIR },
		{ "group", required_argument, NULL, ARG_GROUP },
		{ "max-vmms", required_argument, NULL, ARG_MAX_VMMS },
		{ "max-fds-per-vmm", required_argument, NULL, ARG_MAX_FDS },
		{ "max-clients", required_argument, NULL, ARG_MAX_CLIENTS },
		{ "prepare-timeout", required_argument, NULL, ARG_PREPARE_TIMEOUT },
		{ "freeze-timeout", required_argument, NULL, ARG_FREEZE_TIMEOUT },
		{ "restore-timeout", required_argument, NULL, ARG_RESTORE_TIMEOUT },
		{ "modules-dir", required_argument, NULL, ARG_MODULES_DIR },
		{ "boot-dir", required_argument, NULL, ARG_BOOT_DIR },
		{ "sysfs-dir", required_argument, NULL, ARG_SYSFS_DIR },
		{ "log-level", required_argument, NULL, ARG_LOG_LEVEL },
		{}
	};
	unsigned long long v;
	struct group *g;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		r = 0;
		switch (opt) {
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			puts("liveupdated " PACKAGE_VERSION);
			return 0;
		case ARG_RUNTIME_DIR:
			c->runtime_dir = optarg;
			break;
		case ARG_STATE_DIR:
			c->state_dir = optarg;
			break;
		case ARG_GROUP:
			g = getgrnam(optarg);
			if (!g)
				return log_error_errno(ENOENT, "Unknown group %s", optarg);
			c->group = g->gr_gid;
			break;
		case ARG_MAX_VMMS:
			r = parse_uint(optarg, 1, 1u << 20, &v);
			c->max_vmms = (unsigned)v;
			break;
		case ARG_MAX_FDS:
			r = parse_uint(optarg, 1, LU_VMM_FDS_MAX, &v);
			c->max_fds_per_vmm = (unsigned)v;
			break;
		case ARG_MAX_CLIENTS:
			r = parse_uint(optarg, 1, 1u << 16, &v);
			c->max_clients = (unsigned)v;
			break;
		case ARG_PREPARE_TIMEOUT:
			r = parse_uint(optarg, 1, 3600000, &v);
			c->prepare_timeout_ms = (uint32_t)v;
			break;
		case ARG_FREEZE_TIMEOUT:
			r = parse_uint(optarg, 1, 3600000, &v);
			c->freeze_timeout_ms = (uint32_t)v;
			break;
		case ARG_RESTORE_TIMEOUT:
			r = parse_uint(optarg, 0, 365ull * 24 * 3600, &v);
			c->restore_timeout_s = v;
			break;
		case ARG_MODULES_DIR:
			c->modules_dir = optarg;
			break;
		case ARG_BOOT_DIR:
			c->boot_dir = optarg;
			break;
		case ARG_SYSFS_DIR:
			c->sysfs_dir = optarg;
			break;
		case ARG_LOG_LEVEL:
			r = parse_log_level(optarg);
			if (r >= 0) {
				log_set_max_level(r);
				r = 0;
			}
			break;
		case '?':
			return -EINVAL;
		}
		if (r < 0)
			return log_error_errno(EINVAL, "Invalid value for --%s: %s",
					       options[opt == 'h' ? 0 : opt - ARG_VERSION + 1].name, optarg);
	}
	if (optind < argc)
		return log_error_errno(EINVAL, "This program takes no arguments.");
	return 1;
}

int main(int argc, char *argv[])
{
	_cleanup_(manager_freep) Manager *m = NULL;
	Config config = {
		.runtime_dir = getenv("RUNTIME_DIRECTORY") ?: (char *)RUNTIME_DIR_DEFAULT,
		.state_dir = getenv("STATE_DIRECTORY") ?: (char *)STATE_DIR_DEFAULT,
		.group = (gid_t)-1,
		.max_vmms = CONFIG_MAX_VMMS_DEFAULT,
		.max_fds_per_vmm = CONFIG_MAX_FDS_PER_VMM_DEFAULT,
		.max_clients = CONFIG_MAX_CLIENTS_DEFAULT,
		.prepare_timeout_ms = CONFIG_PREPARE_TIMEOUT_MS_DEFAULT,
		.freeze_timeout_ms = CONFIG_FREEZE_TIMEOUT_MS_DEFAULT,
	};
	int r;

	/* First of all: after a kexec, the clock's first stamp ends the reboot in the report. */
	(void)handover_clock_init();
	log_set_prefix("liveupdated");
	/* Modes are ours, not whatever umask started us: no file group- or world-writable. */
	umask(0022);
	r = parse_argv(argc, argv, &config);
	if (r <= 0)
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

	r = manager_new(&config, &m);
	if (r < 0) {
		log_error_errno(r, "Failed to set up: %m");
		return EXIT_FAILURE;
	}
	r = manager_start(m);
	if (r < 0)
		return EXIT_FAILURE;
	r = manager_run(m);
	if (r < 0) {
		log_error_errno(r, "Event loop failed: %m");
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
