/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "vmm-queue.h"

static struct vmm_packet *item(struct vmm_queue *q, size_t i)
{
	return &q->items[(q->head + i) % VMM_QUEUE_MAX];
}

int vmm_queue_push(struct vmm_queue *q, struct vmm_packet *p)
{
	struct vmm_packet *slot;

	if (q->n == VMM_QUEUE_MAX)
		return -ENOBUFS;
	slot = item(q, q->n++);
	slot->len = p->len;
	slot->fd = TAKE_FD(p->fd);
	memcpy(slot->u.buf, p->u.buf, p->len);
	return 0;
}

bool vmm_queue_pop(struct vmm_queue *q, struct vmm_packet *ret)
{
	struct vmm_packet *slot;

	if (q->n == 0)
		return false;
	slot = item(q, 0);
	ret->len = slot->len;
	ret->fd = TAKE_FD(slot->fd);
	memcpy(ret->u.buf, slot->u.buf, slot->len);
	q->head = (q->head + 1) % VMM_QUEUE_MAX;
	q->n--;
	return true;
}

bool vmm_queue_contains(const struct vmm_queue *q, uint32_t type)
{
	for (size_t i = 0; i < q->n; i++)
		if (q->items[(q->head + i) % VMM_QUEUE_MAX].u.hdr.type == type)
			return true;
	return false;
}

void vmm_queue_clear(struct vmm_queue *q)
{
	struct vmm_packet *p;

	while (q->n > 0) {
		p = item(q, 0);
		p->fd = safe_close(p->fd);
		q->head = (q->head + 1) % VMM_QUEUE_MAX;
		q->n--;
	}
}
