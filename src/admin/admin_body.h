/* The JSON bodies of scalerd's admin endpoints: what each must hold, checked
 * before anything acts on it (src/admin/admin.c; tests/fuzz/admin_json
 * drives these alone). Each returns 0 with the fields filled (strings and
 * arrays point into body), or -1 with the sentence of the 400 in err. */
#ifndef SCALER_ADMIN_BODY_H
#define SCALER_ADMIN_BODY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define ADMIN_REPORT_MAX 1000      /* servers named in one dead report (a zone has at most 1000) */
#define ADMIN_REPORT_MAX_EVENTS 64 /* outlier events in one report (a balancer keeps 64) */
#define ADMIN_PIN_MAX 100000       /* POST /scale count */
#define ADMIN_PIN_FOR_MAX 31622400 /* POST /scale for: a year */

/* PUT /report {"zone": "z1", "dead": ["http://...", ...], "events": [...]} */
struct admin_report_body {
	const char *zone;
	json_t *dead;   /* array of strings, at most ADMIN_REPORT_MAX */
	json_t *events; /* NULL, or at most ADMIN_REPORT_MAX_EVENTS outlier events
	                 * {"kind": "eject" or "return", "server": URL, "reason": text} */
};
int admin_body_report(json_t *body, struct admin_report_body *out, char *err, size_t errlen);

/* POST /scale {"zone": "z1", "count": N or null, "for": seconds} */
struct admin_scale_body {
	const char *zone;
	int count;       /* -1: unpin */
	double duration; /* 0: until unpinned */
};
int admin_body_scale(json_t *body, struct admin_scale_body *out, char *err, size_t errlen);

/* POST /drain {"zone": "z1", "server": "id or address"} */
struct admin_drain_body {
	const char *zone, *server;
};
int admin_body_drain(json_t *body, struct admin_drain_body *out, char *err, size_t errlen);

/* POST /wake {"zone": "z1", "held": N, "epoch": N} */
struct admin_wake_body {
	const char *zone;
	long held;
	uint64_t epoch;
};
int admin_body_wake(json_t *body, struct admin_wake_body *out, char *err, size_t errlen);

#endif
