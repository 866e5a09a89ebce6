/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Live Update Orchestrator ABI (/dev/liveupdate and its session fds), as
 * documented by the kernel's include/uapi/linux/liveupdate.h. Defined here
 * because the build machines' kernel headers predate it. Every argument
 * struct starts with its own size so the kernel can extend it; the layouts
 * below are checked with static asserts against the documented sizes.
 */

#include <linux/ioctl.h>
#include <stdint.h>

#define LUO_DEVICE_PATH "/dev/liveupdate"
#define LUO_IOCTL_TYPE 0xBA
#define LUO_SESSION_NAME_SIZE 64 /* 63 bytes and the NUL */

struct luo_create_session_arg {
	uint32_t size;
	int32_t fd;
	uint8_t name[LUO_SESSION_NAME_SIZE];
};

struct luo_retrieve_session_arg {
	uint32_t size;
	int32_t fd;
	uint8_t name[LUO_SESSION_NAME_SIZE];
};

struct luo_preserve_fd_arg {
	uint32_t size;
	int32_t fd;
	uint64_t token __attribute__((aligned(8)));
};

struct luo_retrieve_fd_arg {
	uint32_t size;
	int32_t fd;
	uint64_t token __attribute__((aligned(8)));
};

struct luo_finish_arg {
	uint32_t size;
	uint32_t reserved;
};

struct luo_get_name_arg {
	uint32_t size;
	uint32_t reserved;
	uint8_t name[LUO_SESSION_NAME_SIZE];
};

/* On /dev/liveupdate. */
#define LUO_IOCTL_CREATE_SESSION _IO(LUO_IOCTL_TYPE, 0x00)
#define LUO_IOCTL_RETRIEVE_SESSION _IO(LUO_IOCTL_TYPE, 0x01)
/* On a session fd. */
#define LUO_IOCTL_PRESERVE_FD _IO(LUO_IOCTL_TYPE, 0x40)
#define LUO_IOCTL_RETRIEVE_FD _IO(LUO_IOCTL_TYPE, 0x41)
#define LUO_IOCTL_FINISH _IO(LUO_IOCTL_TYPE, 0x42)
#define LUO_IOCTL_GET_NAME _IO(LUO_IOCTL_TYPE, 0x43)

_Static_assert(sizeof(struct luo_create_session_arg) == 72, "LUO ABI");
_Static_assert(sizeof(struct luo_retrieve_session_arg) == 72, "LUO ABI");
_Static_assert(sizeof(struct luo_preserve_fd_arg) == 16, "LUO ABI");
_Static_assert(sizeof(struct luo_retrieve_fd_arg) == 16, "LUO ABI");
_Static_assert(sizeof(struct luo_finish_arg) == 8, "LUO ABI");
_Static_assert(sizeof(struct luo_get_name_arg) == 72, "LUO ABI");
