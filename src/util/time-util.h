/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <time.h>

typedef uint64_t usec_t;

#define USEC_PER_SEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL
#define USEC_PER_MSEC 1000ULL
#define NSEC_PER_USEC 1000ULL

usec_t now_usec(clockid_t clock);
/* Format a CLOCK_REALTIME timestamp as ISO 8601 UTC with microseconds. */
const char *format_timestamp(char buf[static 32], usec_t realtime_us);
