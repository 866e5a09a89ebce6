/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <unistd.h>

#include "edu.h"
#include "events.h"
#include "guest-kernel.h"
#include "in-flight.h"
#include "kexec.h"
#include "pattern.h"

int in_flight_load(const Passthrough *p, unsigned int src, unsigned int dst, unsigned int seed)
{
	int r;

	pattern_fill(p->ram + src, seed);
	memset(p->ram + dst, 0, EDU_TRANSFER);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	r = edu_dma(p->bar0, GUEST_RAM_IOVA + src, EDU_DMA_BUFFER, EDU_TO_DEVICE);
	if (r < 0)
		event_error("load the edu buffer", -r);
	return r;
}

void in_flight_start(const Passthrough *p, unsigned int dst)
{
	edu_dma_start(p->bar0, EDU_DMA_BUFFER, GUEST_RAM_IOVA + dst, EDU_TO_RAM);
}

void in_flight_kexec(const Passthrough *p, unsigned int dst, const char *image,
		     const char *initrd, const char *append)
{
	int r = load_next_kernel(image, initrd, append);

	if (r < 0) {
		event_error("load the next kernel", -r);
		return;
	}
	emit("{\"event\":\"kexec\",\"image\":\"%s\"}", image);
	sync();
	in_flight_start(p, dst);
	r = kexec_reboot();
	event_error("kexec", -r);
}

bool in_flight_check(const uint8_t *ram, unsigned int dst, unsigned int seed)
{
	return event_check("in-flight", ram, dst, seed, true);
}
