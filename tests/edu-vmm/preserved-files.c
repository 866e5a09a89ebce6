/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "events.h"
#include "preserved-files.h"

int preserve_passthrough(const Passthrough *p, PreserveFd preserve, void *ctx)
{
	const struct {
		int fd;
		uint64_t token;
		const char *what;
	} files[N_PRESERVED_FILES] = {
		{ p->ram_fd, TOKEN_RAM, "preserve guest RAM" },
		{ p->iommufd, TOKEN_IOMMUFD, "preserve the iommufd" },
		{ p->device_fd, TOKEN_DEVICE, "preserve the device" },
	};
	int r;

	for (size_t i = 0; i < N_PRESERVED_FILES; i++) {
		r = preserve(ctx, files[i].fd, files[i].token);
		if (r < 0) {
			event_error(files[i].what, -r);
			return r;
		}
	}
	return 0;
}
