/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Human-readable output of liveupdatectl: each takes an API result or event
 * object as the daemon sent it, and copes with members that are missing or
 * null, so a newer daemon's output still prints.
 */

#include <json-c/json.h>
#include <stdbool.h>

/* One line of JSON on stdout. */
void output_json(json_object *o);
/* An event as one line; timestamp: prefix it with its time (the events command). */
void output_event(json_object *event, bool timestamp);
void output_status(json_object *result);
void output_list(json_object *result);
void output_report(json_object *result);
void output_prepared(json_object *result, const char *kernel);
void output_rebooting(json_object *result);
