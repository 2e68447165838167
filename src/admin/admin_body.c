#include "config.h"

#include "admin_body.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static int ab_fail(char *err, size_t errlen, const char *fmt,
                                                         ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *ab_string(json_t *body, const char *key)
{
	return json_string_value(json_object_get(body, key));
}

int admin_body_report(json_t *body, struct admin_report_body *out, char *err, size_t errlen)
{
	size_t i;
	json_t *v;

	out->zone = ab_string(body, "zone");
	out->dead = json_object_get(body, "dead");
	if (!json_is_object(body) || !out->zone || !json_is_array(out->dead))
		return ab_fail(err, errlen, "expected {\"zone\": string, \"dead\": [server URLs]}");
	if (json_array_size(out->dead) > ADMIN_REPORT_MAX)
		return ab_fail(err, errlen, "dead: at most %d servers in one report",
		               ADMIN_REPORT_MAX);
	json_array_foreach(out->dead, i, v) if (!json_is_string(v))
	{
		return ab_fail(err, errlen, "dead[%zu]: must be a string", i);
	}
	out->events = json_object_get(body, "events");
	if (!out->events)
		return 0;
	if (!json_is_array(out->events) || json_array_size(out->events) > ADMIN_REPORT_MAX_EVENTS)
		return ab_fail(err, errlen, "events: must be an array of at most %d events",
		               ADMIN_REPORT_MAX_EVENTS);
	json_array_foreach(out->events, i, v)
	{
		const char *kind = ab_string(v, "kind");
		const char *server = ab_string(v, "server");
		const char *reason = ab_string(v, "reason");
		if (!kind || (strcmp(kind, "eject") && strcmp(kind, "return")) || !server ||
		    strlen(server) > 255 || !reason || strlen(reason) > 200)
			return ab_fail(err, errlen,
			               "events[%zu]: expected {\"kind\": \"eject\" or \"return\", "
			               "\"server\": URL, \"reason\": string}",
			               i);
	}
	return 0;
}

int admin_body_scale(json_t *body, struct admin_scale_body *out, char *err, size_t errlen)
{
	json_t *count = json_object_get(body, "count");
	json_t *dur = json_object_get(body, "for");

	out->zone = ab_string(body, "zone");
	if (!json_is_object(body) || !out->zone)
		return ab_fail(err, errlen, "zone: must be a string");
	if (!count || !(json_is_integer(count) || json_is_null(count)))
		return ab_fail(err, errlen, "count: must be an integer (or null to unpin)");
	if (dur && !json_is_null(dur) &&
	    (!json_is_number(dur) || !(json_number_value(dur) > 0) ||
	     json_number_value(dur) > ADMIN_PIN_FOR_MAX))
		return ab_fail(err, errlen,
		               "for: must be a positive number of seconds (at most a year)");
	if (json_is_integer(count) &&
	    (json_integer_value(count) < 0 || json_integer_value(count) > ADMIN_PIN_MAX))
		return ab_fail(err, errlen, "count: must be from 0 to %d", ADMIN_PIN_MAX);
	out->count = json_is_null(count) ? -1 : (int)json_integer_value(count);
	out->duration = dur && json_is_number(dur) ? json_number_value(dur) : 0;
	return 0;
}

int admin_body_drain(json_t *body, struct admin_drain_body *out, char *err, size_t errlen)
{
	out->zone = ab_string(body, "zone");
	out->server = ab_string(body, "server");
	if (!json_is_object(body) || !out->zone || !out->server)
		return ab_fail(err, errlen, "expected {\"zone\": string, \"server\": string}");
	return 0;
}

int admin_body_wake(json_t *body, struct admin_wake_body *out, char *err, size_t errlen)
{
	json_t *held = json_object_get(body, "held"), *epoch = json_object_get(body, "epoch");

	out->zone = ab_string(body, "zone");
	if (!json_is_object(body) || !out->zone ||
	    (held && (!json_is_integer(held) || json_integer_value(held) < 0)) ||
	    (epoch && (!json_is_integer(epoch) || json_integer_value(epoch) < 0)))
		return ab_fail(err, errlen,
		               "expected {\"zone\": string, \"held\": N, \"epoch\": N} (N >= 0)");
	out->held = held ? (long)json_integer_value(held) : 0;
	out->epoch = epoch ? (uint64_t)json_integer_value(epoch) : 0;
	return 0;
}
