/* Where scaler-app sends its metrics every second. Neither sink ever blocks
 * the loop: queues are bounded and whatever does not fit is dropped and
 * counted. */
#ifndef SCALER_APP_SINKS_H
#define SCALER_APP_SINKS_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;

struct sink_counters {
	uint64_t sent;    /* acknowledged by the broker / database */
	uint64_t dropped; /* refused, timed out or failed */
	uint64_t pending; /* queued or in flight */
};

/* Kafka through librdkafka: one message per call, key = server id. */
struct kafka_sink;
struct kafka_sink *kafka_sink_new(struct ev_loop *loop, const char *brokers, const char *topic,
                                  const char *key, char *err, size_t errlen);
void kafka_sink_send(struct kafka_sink *k, const char *value, size_t len);
void kafka_sink_counters(const struct kafka_sink *k, struct sink_counters *c);
/* Waits up to flush_timeout seconds for queued messages, then frees. */
void kafka_sink_free(struct kafka_sink *k, double flush_timeout);

/* InfluxDB 1.x line protocol over HTTP POST /write?db=DB. */
struct influx_sink;
/* token: optional, sent as "Authorization: Token <token>" (v1 API of 2.x/3.x). */
struct influx_sink *influx_sink_new(struct ev_loop *loop, const char *url, const char *db,
                                    const char *token, char *err, size_t errlen);
/* One line of line protocol, without the newline. */
void influx_sink_send(struct influx_sink *s, const char *line);
void influx_sink_counters(const struct influx_sink *s, struct sink_counters *c);
void influx_sink_free(struct influx_sink *s);

/* Line protocol escaping of a tag value (commas, spaces, equals signs). */
void influx_escape_tag(char *out, size_t outlen, const char *in);

#endif
