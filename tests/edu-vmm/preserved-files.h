/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The files of a passed-through device that a VMM preserves across a live
 * update for the iommufd and vfio-pci file handlers, with the token each
 * is preserved under. The handlers require this order: the iommufd's
 * needs the memfd that its marked HWPT maps preserved first in the
 * session, the device's needs its iommufd.
 */

#include <stdint.h>

#include "passthrough.h"

#define TOKEN_RAM 1
#define TOKEN_IOMMUFD 2
#define TOKEN_DEVICE 3
#define N_PRESERVED_FILES 3

/*
 * Preserves fd under token: luo_preserve_fd() in a session of the
 * program's own, lu_vmm_preserve_fd() through liveupdated. 0 or a
 * negative errno.
 */
typedef int (*PreserveFd)(void *ctx, int fd, uint64_t token);

/*
 * Guest RAM, the iommufd and the device of p, in that order: 0, or at the
 * first that fails an error event and its negative errno.
 */
int preserve_passthrough(const Passthrough *p, PreserveFd preserve, void *ctx);
