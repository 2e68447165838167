/* scaler-app: the demo service that scaler scales. Shared state of the
 * process; one libev loop, plus one thread that burns the simulated CPU. */
#ifndef SCALER_APP_H
#define SCALER_APP_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "http_server.h"

struct ev_loop;
struct http_server;
struct load_sim;
struct kafka_sink;
struct influx_sink;

/* What the process looked like over the last second. */
struct app_sample {
	double ts;           /* unix time, seconds */
	double cpu_usage;    /* percent of one core used by the whole process */
	double memory_usage; /* resident set size, percent of MemTotal */
	double memory_mib;   /* resident set size, MiB */
	double throughput;   /* requests served per second */
	int healthy;         /* 1 healthy, 0 failing on purpose */
};

/* One minute of samples is not enough to see a ramp; keep five. */
#define APP_HISTORY 300

struct app {
	struct ev_loop *loop;
	char server_id[64];
	char zone[64];

	struct http_server *http;
	struct load_sim *sim;
	struct kafka_sink *kafka;   /* NULL without KAFKA_BROKERS */
	struct influx_sink *influx; /* NULL without INFLUX_URL */

	int healthy;
	uint64_t requests; /* served since start */

	struct app_sample last;
	struct app_sample history[APP_HISTORY];
	size_t history_len, history_head; /* ring: head is the next slot */
};

/* JSON object of a sample, with server and zone (Kafka value, /stats base). */
json_t *app_sample_json(const struct app *app, const struct app_sample *s);

/* api.c: the HTTP routes. */
void app_api_handle(struct http_exchange *x, const struct http_request *req, void *arg);

/* dashboard-html.c (generated from app/dashboard.html). */
extern const char app_dashboard_html[];

#endif
