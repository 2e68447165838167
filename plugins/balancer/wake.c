/* Scale from zero, the balancer's part (Knative's activator does this job):
 * while requests are held because no server is alive, the primary is told
 * at once, then every second while it lasts (so a primary elected
 * meanwhile hears of it as soon as it pushes itself as the monitor):
 *
 *   POST <monitor>/wake  {"zone": Z, "held": N, "epoch": E}   (bearer token)
 *
 * sent only to the primary the state store confirmed (PUT /monitor), like
 * the dead reports. The primary starts a server (the zone's min becomes 1
 * for a while) and pushes it; meanwhile pending servers are checked every
 * WAKE_PROBE_INTERVAL instead of health_interval, and their failed checks do
 * not count toward dead (a starting server refuses connections), so the
 * held requests go out within tens of milliseconds of the server's first
 * passed check. */
#include "config.h"

#include "bal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAKE_REPEAT 1.0

/* Log `said` once while it stays the outcome. */
static void wake_say(struct bal *b, enum scaler_log_level level, const char *said)
{
	if (strcmp(b->wake_said, said) == 0)
		return;
	snprintf(b->wake_said, sizeof(b->wake_said), "%s", said);
	b->host->log(level, BAL_WHO, "zone %s: %s", b->zone, said);
}

static void wake_done(void *arg, const struct scaler_http_response *resp)
{
	struct bal *b = arg;
	char said[200];
	b->wake_call = NULL;
	if (resp->status >= 200 && resp->status < 300)
		snprintf(said, sizeof(said),
		         "requests are held with no server alive; the primary was asked to start "
		         "one");
	else if (resp->status)
		snprintf(said, sizeof(said),
		         "asking the primary to start a server: status %ld: %.*s", resp->status,
		         (int)(resp->body_len > 100 ? 100 : resp->body_len),
		         resp->body ? resp->body : "");
	else
		snprintf(said, sizeof(said), "asking the primary to start a server: %s",
		         resp->error ? resp->error : "no response");
	wake_say(b,
	         resp->status >= 200 && resp->status < 300 ? SCALER_LOG_NOTICE : SCALER_LOG_WARNING,
	         said);
}

static void wake_send(struct bal *b)
{
	char url[600];
	if (b->wake_call)
		return; /* the previous one is still on its way */
	if (bal_monitor_url(b, "/wake", url, sizeof(url)) < 0) {
		wake_say(b, SCALER_LOG_WARNING,
		         "requests are held with no server alive, and no primary is known to "
		         "start one");
		return;
	}
	json_t *body = json_pack("{s:s, s:i, s:I}", "zone", b->zone, "held", b->nheld, "epoch",
	                         (json_int_t)b->monitor_epoch);
	if (body)
		b->wake_call = bal_send_json(b, "POST", url, body, 2.0, wake_done, b);
}

static void wake_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bal *b = w->data;
	(void)revents;
	if (b->nheld == 0 || b->nalive > 0) {
		ev_timer_stop(loop, w);
		b->wake_said[0] = '\0';
		return;
	}
	wake_send(b);
}

void wake_holding(struct bal *b)
{
	if (!ev_is_active(&b->wake_timer)) {
		ev_timer_init(&b->wake_timer, wake_timer_cb, WAKE_REPEAT, WAKE_REPEAT);
		b->wake_timer.data = b;
		ev_timer_start(b->loop, &b->wake_timer);
	}
	srv_probe_pending(b);
	wake_send(b);
}

void wake_stop(struct bal *b)
{
	ev_timer_stop(b->loop, &b->wake_timer);
	if (b->wake_call) {
		b->host->http_cancel(b->wake_call);
		b->wake_call = NULL;
	}
}
