#include "config.h"

#include "sinks.h"

#include "log.h"

#include <ev.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* A few seconds of metrics at most: older ones are useless to a controller. */
#define KS_QUEUE_MAX "20"
#define KS_MESSAGE_TIMEOUT_MS "5000"
#define KS_POLL_INTERVAL 0.1
#define KS_ERROR_LOG_INTERVAL 10.0

struct kafka_sink {
	struct ev_loop *loop;
	rd_kafka_t *rk;
	rd_kafka_topic_t *topic;
	char *key;
	ev_timer poll;
	uint64_t sent, dropped;
	double last_error_log;
};

/* Called from rd_kafka_poll, on the loop thread. */
static void ks_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_sink *k = opaque;

	if (m->err) {
		k->dropped++;
		log_debug("kafka: message dropped: %s", rd_kafka_err2str(m->err));
	} else {
		k->sent++;
	}
}

/* Broker down is expected and retried by librdkafka: say it once in a while. */
static void ks_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka_sink *k = opaque;
	double now = ev_now(k->loop);

	if (now - k->last_error_log < KS_ERROR_LOG_INTERVAL)
		return;
	k->last_error_log = now;
	log_warn("kafka: %s (%s)", reason, rd_kafka_err2name((rd_kafka_resp_err_t)err));
}

/* librdkafka's own log lines go to our log, one level quieter. */
static void ks_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	log_msg(level <= LOG_WARNING ? SCALER_LOG_INFO : SCALER_LOG_DEBUG, "kafka", "%s: %s", fac,
	        buf);
}

static void ks_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct kafka_sink *k = w->data;
	rd_kafka_poll(k->rk, 0);
}

static int ks_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                  size_t errlen)
{
	char why[256];

	if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka setting %s=%s: %s", name, value, why);
		return -1;
	}
	return 0;
}

struct kafka_sink *kafka_sink_new(struct ev_loop *loop, const char *brokers, const char *topic,
                                  const char *key, char *err, size_t errlen)
{
	struct kafka_sink *k = calloc(1, sizeof(*k));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char why[512];

	if (!k || !conf) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	k->loop = loop;
	k->last_error_log = -KS_ERROR_LOG_INTERVAL;
	if (ks_set(conf, "bootstrap.servers", brokers, err, errlen) < 0 ||
	    ks_set(conf, "client.id", "scaler-app", err, errlen) < 0 ||
	    ks_set(conf, "queue.buffering.max.messages", KS_QUEUE_MAX, err, errlen) < 0 ||
	    ks_set(conf, "message.timeout.ms", KS_MESSAGE_TIMEOUT_MS, err, errlen) < 0 ||
	    ks_set(conf, "linger.ms", "5", err, errlen) < 0 ||
	    ks_set(conf, "socket.timeout.ms", "3000", err, errlen) < 0 ||
	    ks_set(conf, "reconnect.backoff.max.ms", "2000", err, errlen) < 0 ||
	    ks_set(conf, "log.connection.close", "false", err, errlen) < 0)
		goto fail;
	rd_kafka_conf_set_opaque(conf, k);
	rd_kafka_conf_set_dr_msg_cb(conf, ks_delivered);
	rd_kafka_conf_set_error_cb(conf, ks_error);
	rd_kafka_conf_set_log_cb(conf, ks_log);

	k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!k->rk) {
		snprintf(err, errlen, "kafka producer: %s", why);
		goto fail;
	}
	conf = NULL; /* owned by rk now */
	k->topic = rd_kafka_topic_new(k->rk, topic, NULL);
	if (!k->topic) {
		snprintf(err, errlen, "kafka topic \"%s\": %s", topic,
		         rd_kafka_err2str(rd_kafka_last_error()));
		goto fail;
	}
	k->key = strdup(key);
	if (!k->key) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ev_timer_init(&k->poll, ks_poll, KS_POLL_INTERVAL, KS_POLL_INTERVAL);
	k->poll.data = k;
	ev_timer_start(loop, &k->poll);
	return k;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	if (k && k->topic)
		rd_kafka_topic_destroy(k->topic);
	if (k && k->rk)
		rd_kafka_destroy(k->rk);
	free(k);
	return NULL;
}

void kafka_sink_send(struct kafka_sink *k, const char *value, size_t len)
{
	if (rd_kafka_produce(k->topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)value,
	                     len, k->key, strlen(k->key), NULL) != 0) {
		k->dropped++;
		log_debug("kafka: message dropped: %s", rd_kafka_err2str(rd_kafka_last_error()));
	}
}

void kafka_sink_counters(const struct kafka_sink *k, struct sink_counters *c)
{
	c->sent = k->sent;
	c->dropped = k->dropped;
	c->pending = (uint64_t)rd_kafka_outq_len(k->rk);
}

void kafka_sink_free(struct kafka_sink *k, double flush_timeout)
{
	if (!k)
		return;
	ev_timer_stop(k->loop, &k->poll);
	if (rd_kafka_flush(k->rk, (int)(flush_timeout * 1000)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		log_notice("kafka: %d metric messages not delivered at exit",
		           rd_kafka_outq_len(k->rk));
	/* never let destroy wait for a broker that is gone */
	rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(k->rk, 0);
	rd_kafka_topic_destroy(k->topic);
	rd_kafka_destroy(k->rk);
	free(k->key);
	free(k);
}
