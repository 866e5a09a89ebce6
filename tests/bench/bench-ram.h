/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The bench VMMs' guest RAM: small memfds, each opening with a tag that
 * names its VM and index, so that a restored file is known to be the one
 * preserved, at the cost of one pread. Contents beyond that do not matter
 * here: the fake kernel copies them at the kexec, outside every figure.
 */

#include <stddef.h>
#include <stdint.h>

/* A new memfd of size bytes tagged with vm_id and index; the fd, or a negative errno. */
int bench_ram_create(const char *vm_id, unsigned index, size_t size);
/* 0 if fd carries the tag of (vm_id, index), else -EBADMSG or a negative errno. */
int bench_ram_check(int fd, const char *vm_id, unsigned index);
