#include "config.h"

#include "sinks.h"

#include "http_client.h"
#include "log.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One write a second; a write that takes longer than this is given up, so at
 * most IS_MAX_IN_FLIGHT are ever outstanding and the rest are dropped. */
#define IS_MAX_IN_FLIGHT 3
#define IS_TIMEOUT 2.0
#define IS_ERROR_LOG_INTERVAL 10.0

struct influx_sink {
	struct ev_loop *loop;
	struct http_client *client;
	char *write_url;
	char *auth_header; /* "Authorization: Token ..." or NULL */
	int in_flight;
	uint64_t sent, dropped;
	double last_error_log;
};

void influx_escape_tag(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	if (!outlen)
		return;
	for (; *in; in++) {
		int esc = *in == ',' || *in == ' ' || *in == '=' || *in == '\\';
		if (o + (size_t)esc + 1 >= outlen)
			break; /* never half an escape */
		if (esc)
			out[o++] = '\\';
		out[o++] = *in;
	}
	out[o] = '\0';
}

static int is_url_safe(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

/* InfluxDB down is expected: say it once in a while, not once a second. */
static void is_log_failure(struct influx_sink *s, const char *msg)
{
	double now = ev_now(s->loop);

	if (now - s->last_error_log < IS_ERROR_LOG_INTERVAL)
		return;
	s->last_error_log = now;
	log_warn("influxdb: %s", msg);
}

static void is_written(void *arg, const struct scaler_http_response *resp)
{
	struct influx_sink *s = arg;
	char msg[320];

	s->in_flight--;
	if (resp->status >= 200 && resp->status < 300) {
		s->sent++;
		return;
	}
	s->dropped++;
	if (resp->status == 0)
		snprintf(msg, sizeof(msg), "write to %s failed: %s", s->write_url,
		         resp->error ? resp->error : "no response");
	else
		snprintf(msg, sizeof(msg), "write to %s refused (HTTP %ld): %.200s", s->write_url,
		         resp->status, resp->body ? resp->body : "");
	is_log_failure(s, msg);
}

struct influx_sink *influx_sink_new(struct ev_loop *loop, const char *url, const char *db,
                                    const char *token, char *err, size_t errlen)
{
	struct influx_sink *s = calloc(1, sizeof(*s));
	size_t ulen = strlen(url);
	char dbq[256];
	size_t o = 0;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = loop;
	s->last_error_log = -IS_ERROR_LOG_INTERVAL;
	while (ulen > 0 && url[ulen - 1] == '/')
		ulen--;
	for (const char *p = db; *p && o + 4 < sizeof(dbq); p++) {
		if (is_url_safe((unsigned char)*p))
			dbq[o++] = *p;
		else
			o +=
			    (size_t)snprintf(dbq + o, sizeof(dbq) - o, "%%%02X", (unsigned char)*p);
	}
	dbq[o] = '\0';
	if (asprintf(&s->write_url, "%.*s/write?db=%s&precision=ms", (int)ulen, url, dbq) < 0) {
		s->write_url = NULL;
		goto oom;
	}
	if (token && *token && asprintf(&s->auth_header, "Authorization: Token %s", token) < 0) {
		s->auth_header = NULL;
		goto oom;
	}
	s->client = http_client_new(loop);
	if (!s->client) {
		snprintf(err, errlen, "cannot start the HTTP client");
		influx_sink_free(s);
		return NULL;
	}
	return s;
oom:
	snprintf(err, errlen, "out of memory");
	influx_sink_free(s);
	return NULL;
}

void influx_sink_send(struct influx_sink *s, const char *line)
{
	const char *headers[] = {"Content-Type: text/plain; charset=utf-8", s->auth_header, NULL};
	struct scaler_http_request req = {
	    .method = "POST",
	    .url = s->write_url,
	    .headers = headers,
	    .body = line,
	    .body_len = strlen(line),
	    .timeout = IS_TIMEOUT,
	};

	if (s->in_flight >= IS_MAX_IN_FLIGHT) {
		s->dropped++;
		return;
	}
	if (!http_client_request(s->client, &req, is_written, s)) {
		s->dropped++;
		return;
	}
	s->in_flight++;
}

void influx_sink_counters(const struct influx_sink *s, struct sink_counters *c)
{
	c->sent = s->sent;
	c->dropped = s->dropped;
	c->pending = (uint64_t)s->in_flight;
}

void influx_sink_free(struct influx_sink *s)
{
	if (!s)
		return;
	if (s->client)
		http_client_free(s->client);
	free(s->write_url);
	free(s->auth_header);
	free(s);
}
