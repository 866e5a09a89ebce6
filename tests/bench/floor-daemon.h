/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The floor of the scale benchmark: the least any daemon must do for an
 * update of N VMMs with F fds each, over the same sockets and the same
 * (fake) kernel. floor-daemon.c is its loop and its side of the VMM
 * protocol, floor-luo.c its side of the kernel.
 */

#include <stdbool.h>

#define FLOOR_SESSION "floor"
#define FLOOR_MANIFEST_TOKEN 1
#define FLOOR_RECORD_TOKEN 2

struct floor_vm {
	int conn;    /* the VMM's socket once it said HELLO, else -1 */
	int session; /* its LUO session, -1 when none */
};

struct floor {
	const char *kernel; /* the image prepare loads */
	unsigned n, fds;    /* VMMs and fds per VMM */
	int epoll_fd;
	int control; /* the control connection of the moment, or -1 */
	int session; /* our own session: the manifest and the commit record */
	int record;  /* the commit record, -1 until commit */
	bool incoming; /* the new boot: sessions to hand back */
	struct floor_vm *vms;
	unsigned prepared, frozen, resumed;
};

/* At start: our own session back after the kexec (incoming), or nothing to restore. */
int floor_luo_start(struct floor *f);
/* Load the image, create our session, then one per VMM, calling created() after each. */
int floor_luo_prepare(struct floor *f, int (*created)(struct floor *f, unsigned vm));
/* The manifest and the empty commit record into our session, before the blackout. */
int floor_luo_commit(struct floor *f);
/* The commit record written in place, then reboot(KEXEC); returns only if that failed. */
int floor_luo_jump(struct floor *f);
