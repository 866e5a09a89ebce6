/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The manifest: what the daemon tells its own successor across the kexec.
 * It is JSON in a memfd that the daemon preserves in a LUO session of its
 * own ("liveupdated", token MANIFEST_TOKEN), written at commit before any
 * VMM is frozen. A second, fixed-size memfd (COMMIT_RECORD_TOKEN) takes the
 * few timestamps of the blackout, written in place after the last VMM
 * froze, so nothing of size N is serialized inside the blackout except N
 * numbers. Since version 2 it also carries raw TSC stamps (handover-clock.h),
 * the only clock whose differences mean something across the kexec.
 *
 * Each VM lists the passed-through devices (PCI slots) it preserved
 * through the daemon, so that the next daemon knows whose session carries
 * which device. The list came later within version 1: a manifest without
 * it reads as a VM without devices, and an older reader ignores it.
 *
 * Both are versioned. The reader trusts nothing: every field is checked and
 * an unknown version is refused with -EPROTONOSUPPORT. A version 1 commit
 * record (no TSC stamps) is still read: its writer may be an older daemon.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <liveupdate/vmm-protocol.h>

#include "luo-uapi.h"
#include "macro.h"
#include "pci-slot.h"
#include "time-util.h"

#define MANIFEST_VERSION 1
#define COMMIT_RECORD_VERSION 2
#define MANIFEST_SESSION_NAME "liveupdated"
#define MANIFEST_TOKEN 1
#define COMMIT_RECORD_TOKEN 2
#define MANIFEST_SIZE_MAX (64u * 1024 * 1024)
#define MANIFEST_MODULES_MAX 64
#define MANIFEST_MODULE_NAME_MAX 64
#define MANIFEST_VMS_MAX 65536
#define MANIFEST_DEVICES_MAX 4096 /* over every VM */

typedef struct ManifestVm {
	char vm_id[LU_VM_ID_MAX + 1];
	char session[LUO_SESSION_NAME_SIZE];
	uid_t uid;
	uint64_t *tokens; /* every token in the session, daemon- or self-preserved */
	size_t n_tokens;
	PciSlot *devices; /* devices preserved through the daemon, one token each */
	size_t n_devices;
} ManifestVm;

typedef struct Manifest {
	char update_id[LU_UPDATE_ID_MAX + 1];
	char *kernel_image;
	char *initrd; /* may be NULL */
	char *cmdline;
	char **modules; /* kernel modules the preserved files need, loaded before LUO opens */
	size_t n_modules;
	usec_t prepare_start_us, prepare_end_us, commit_us; /* CLOCK_REALTIME */
	ManifestVm *vms;
	size_t n_vms;
	size_t n_devices; /* over every VM */
	/* a device list read was malformed and dropped: bookkeeping only, the memory is restored */
	bool devices_dropped;
} Manifest;

typedef struct CommitRecord {
	char update_id[LU_UPDATE_ID_MAX + 1];
	usec_t freeze_requested_us, frozen_us, reboot_us; /* CLOCK_REALTIME */
	/* TSC ticks: FREEZE sent to all, the last FROZEN, just before reboot(); 0: unknown */
	uint64_t freeze_requested_tsc, frozen_tsc, reboot_tsc;
	usec_t *vm_frozen_us; /* in manifest order */
	size_t n_vms;
} CommitRecord;

Manifest *manifest_free(Manifest *m);
DEFINE_FREEP(Manifest, manifest_free)
CommitRecord *commit_record_free(CommitRecord *r);
DEFINE_FREEP(CommitRecord, commit_record_free)

/* Append a VM; tokens are copied. */
int manifest_add_vm(Manifest *m, const char *vm_id, const char *session, uid_t uid,
		    const uint64_t *tokens, size_t n_tokens);
/*
 * Record that VM vm (an index) preserved the device at slot: at most one
 * device per token, MANIFEST_DEVICES_MAX in all, each once (-EEXIST). That
 * no two VMs name the same device is the caller's to ensure (the reader
 * checks it).
 */
int manifest_add_device(Manifest *m, size_t vm, const char *slot);
/* Add a module name once. */
int manifest_add_module(Manifest *m, const char *module);

int manifest_to_json(const Manifest *m, char **ret, size_t *ret_len);
int manifest_from_json(const char *buf, size_t len, Manifest **ret);

/* The record's memfd is sized once, before it is preserved. */
size_t commit_record_capacity(size_t n_vms);
int commit_record_to_json(const CommitRecord *r, char *buf, size_t size);
int commit_record_from_json(const char *buf, size_t len, const Manifest *m, CommitRecord **ret);

/* memfd helpers: a sealed-size-free memfd holding buf, padded with NULs to capacity. */
int manifest_memfd_new(const char *name, const char *buf, size_t len, size_t capacity);
/* Read a memfd up to its first NUL (at most max bytes). */
int manifest_memfd_read(int fd, size_t max, char **ret, size_t *ret_len);
