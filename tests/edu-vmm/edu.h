/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * QEMU's edu device (docs/specs/edu.rst) through its mapped BAR0: the ID
 * check and DMA between its 4 KiB buffer and bus addresses (IOVAs behind
 * an IOMMU). edu masks DMA addresses to 28 bits.
 */

#include <stdint.h>

#define EDU_BAR0_SIZE 0x100000u
#define EDU_DMA_BUFFER 0x40000u /* the device's own buffer, in its DMA space */
/*
 * QEMU 7.2's edu checks a transfer's end one byte too strictly and aborts
 * the whole VM on a full 4 KiB one: stay at half.
 */
#define EDU_TRANSFER 2048u

typedef enum EduDirection {
	EDU_TO_DEVICE = 0x0, /* bus address to the edu buffer */
	EDU_TO_RAM = 0x2,    /* the edu buffer to a bus address */
} EduDirection;

/* 0 when bar0 is an edu's, else -ENODEV. */
int edu_check(volatile uint8_t *bar0);

/* Copy EDU_TRANSFER bytes and wait for the device to finish: 0 or -ETIMEDOUT. */
int edu_dma(volatile uint8_t *bar0, uint64_t src, uint64_t dst, EduDirection dir);

/* Start a copy and return at once; the device does it 100 ms of guest time later. */
void edu_dma_start(volatile uint8_t *bar0, uint64_t src, uint64_t dst, EduDirection dir);
