/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "time-util.h"

usec_t now_usec(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / NSEC_PER_USEC;
}

const char *format_timestamp(char buf[static 32], usec_t realtime_us)
{
	time_t sec = (time_t)(realtime_us / USEC_PER_SEC);
	struct tm tm;

	gmtime_r(&sec, &tm);
	char date[24];

	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, 32, "%.19s.%06lluZ", date, (unsigned long long)(realtime_us % USEC_PER_SEC));
	return buf;
}
