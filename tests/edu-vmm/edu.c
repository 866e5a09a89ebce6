/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <time.h>

#include "edu.h"

#define EDU_REG_ID 0x00
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_COUNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_RUN 0x1
#define EDU_ID_MAGIC 0xed /* low byte of the ID register */
#define EDU_DMA_TIMEOUT_MS 10000

static uint64_t reg_read(volatile uint8_t *bar0, unsigned int reg)
{
	return *(volatile uint64_t *)(bar0 + reg);
}

static void reg_write(volatile uint8_t *bar0, unsigned int reg, uint64_t value)
{
	*(volatile uint64_t *)(bar0 + reg) = value;
}

int edu_check(volatile uint8_t *bar0)
{
	/* registers below 0x80 take 32-bit accesses only; edu reads others as all-ones */
	uint32_t id = *(volatile uint32_t *)(bar0 + EDU_REG_ID);

	return (id & 0xff) == EDU_ID_MAGIC ? 0 : -ENODEV;
}

void edu_dma_start(volatile uint8_t *bar0, uint64_t src, uint64_t dst, EduDirection dir)
{
	reg_write(bar0, EDU_REG_DMA_SRC, src);
	reg_write(bar0, EDU_REG_DMA_DST, dst);
	reg_write(bar0, EDU_REG_DMA_COUNT, EDU_TRANSFER);
	reg_write(bar0, EDU_REG_DMA_CMD, dir | EDU_DMA_RUN);
}

int edu_dma(volatile uint8_t *bar0, uint64_t src, uint64_t dst, EduDirection dir)
{
	edu_dma_start(bar0, src, dst, dir);
	for (int ms = 0; ms < EDU_DMA_TIMEOUT_MS; ms += 10) {
		if (!(reg_read(bar0, EDU_REG_DMA_CMD) & EDU_DMA_RUN))
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	return -ETIMEDOUT;
}
