/* Helpers shared by the election plugins (single, bully): reading their
 * settings, node ids, and the JSON replies of the election messages.
 * Header-only (static inline) so each plugin stays one self-contained .so. */
#ifndef SCALER_ELECTION_COMMON_H
#define SCALER_ELECTION_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scaler/plugin.h>

/* A node id is a positive decimal number ("3"); 0 on success. */
static inline int election_id_parse(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0)
		return -1;
	*out = v;
	return 0;
}

/* An id in a message: a JSON integer > 0 or a decimal string. */
static inline int election_json_id(const json_t *v, uint64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i <= 0)
			return -1;
		*out = (uint64_t)i;
		return 0;
	}
	if (json_is_string(v))
		return election_id_parse(json_string_value(v), out);
	return -1;
}

/* An epoch in a message: a JSON integer >= 0. */
static inline int election_json_epoch(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* The longest duration setting an election plugin takes (seconds). */
#define ELECTION_SECONDS_MAX 86400.0

/* Store a malloc'd JSON reply and its HTTP status. Decrefs `j`. */
static inline void election_reply(int *status, char **reply, int code, json_t *j)
{
	*status = code;
	*reply = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
}

/* {"error": "..."} with `code`. */
static inline void election_reply_error(int *status, char **reply, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void election_reply_error(int *status, char **reply, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	election_reply(status, reply, code, json_pack("{s:s}", "error", msg));
}

/* Parse a message body as a JSON object; on failure fill a 400 reply and
 * return NULL. An empty body is an empty object. */
static inline json_t *election_body(const char *body, size_t len, int *status, char **reply)
{
	json_error_t err;
	json_t *j;

	if (!body || len == 0)
		return json_object();
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		election_reply_error(status, reply, 400, "invalid JSON at line %d column %d: %s",
		                     err.line, err.column, err.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		election_reply_error(status, reply, 400, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* Next retry delay: doubles from `min` up to `max`. */
static inline double election_backoff(double cur, double min, double max)
{
	double next = cur <= 0 ? min : cur * 2;
	return next > max ? max : next;
}

#endif
