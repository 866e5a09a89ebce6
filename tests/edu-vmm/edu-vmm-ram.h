/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Guest RAM in liveupdate-edu-vmm's daemon mode: one page per DMA check,
 * written by nothing else; the device copies to the start of the page and
 * a pattern from the CPU is in its second half. The last page is the VM's
 * state across the update (the TSC at FREEZE, the rounds so far): guest
 * RAM is what the kexec keeps.
 */

#include <stdbool.h>
#include <stdint.h>

#include "passthrough.h"

#define ROUND_DST 0x0000u         /* each round, zeroed first */
#define ROUND_SRC 0x0800u
#define IN_FLIGHT_DST 0x1000u     /* the DMA under way during the kexec */
#define IN_FLIGHT_SRC 0x1800u     /* its pattern, loaded into edu at FREEZE */
#define OLD_TABLES_DST 0x2000u    /* taken over: through the handed-over tables */
#define BEFORE_FINISH_DST 0x3000u /* rebuilt, not finished: still through them */
#define NEW_DOMAIN_DST 0x4000u    /* finished: through the new domain */
#define NEW_DOMAIN_SRC 0x4800u
#define VMSTATE_OFFSET (GUEST_RAM_SIZE - 0x1000u)

#define SEED_IN_FLIGHT 2 /* also of old-tables and before-finish: edu keeps it */
#define SEED_NEW_DOMAIN 3
#define SEED_ROUND(n) (16 + (n))

/* FREEZE: what the VM's process after the kexec goes on from (frozen_tsc 0: no TSC). */
void vmstate_save(uint8_t *ram, uint64_t frozen_tsc, unsigned int rounds);

/* After the kexec: false, and nothing set, when guest RAM holds no state. */
bool vmstate_load(const uint8_t *ram, uint64_t *frozen_tsc, unsigned int *rounds);

/* THAW: the VM runs on; its state is not one to go on from any more. */
void vmstate_clear(uint8_t *ram);
