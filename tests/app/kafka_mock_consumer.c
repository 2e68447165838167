/* Test helper: start a librdkafka mock Kafka cluster on loopback, print
 *   BOOTSTRAP <host:port,...>
 * on stdout, then consume TOPIC from the beginning and print every message
 * as one JSON line {"topic","partition","offset","key","value","timestamp"}.
 * Runs until SIGTERM/SIGINT or until stdin is closed.
 *
 * usage: kafka-mock-consumer TOPIC [PARTITIONS]
 */
#include "config.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t kmc_stop;

static void kmc_on_signal(int sig)
{
	kmc_stop = 1;
}

static rd_kafka_t *kmc_new(rd_kafka_type_t type, const char *bootstrap, const char *const *kv)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[512];
	rd_kafka_t *rk;

	if (bootstrap &&
	    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) != 0)
		goto fail;
	for (; kv && kv[0]; kv += 2)
		if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof(err)) != 0)
			goto fail;
	rk = rd_kafka_new(type, conf, err, sizeof(err));
	if (rk)
		return rk;
	fprintf(stderr, "kafka-mock-consumer: %s\n", err);
	return NULL;
fail:
	fprintf(stderr, "kafka-mock-consumer: %s\n", err);
	rd_kafka_conf_destroy(conf);
	return NULL;
}

static void kmc_print(const rd_kafka_message_t *m)
{
	json_t *o = json_object();
	rd_kafka_timestamp_type_t tstype;
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	char *line;

	json_object_set_new(o, "topic", json_string(rd_kafka_topic_name(m->rkt)));
	json_object_set_new(o, "partition", json_integer(m->partition));
	json_object_set_new(o, "offset", json_integer(m->offset));
	json_object_set_new(o, "key", m->key ? json_stringn(m->key, m->key_len) : json_null());
	json_object_set_new(o, "value",
	                    m->payload ? json_stringn(m->payload, m->len) : json_null());
	json_object_set_new(o, "timestamp", json_integer(ts));
	line = json_dumps(o, JSON_COMPACT);
	if (line) {
		printf("%s\n", line);
		fflush(stdout);
	}
	free(line);
	json_decref(o);
}

int main(int argc, char **argv)
{
	/* clang-format off */
	static const char *const consumer_conf[] = {
	    "group.id", "kafka-mock-consumer",
	    "enable.auto.commit", "false",
	    "enable.partition.eof", "false",
	    NULL,
	};
	/* clang-format on */
	rd_kafka_t *owner, *consumer;
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_topic_partition_list_t *parts;
	const char *topic, *bootstrap;
	int partitions;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: kafka-mock-consumer TOPIC [PARTITIONS]\n");
		return 2;
	}
	topic = argv[1];
	partitions = argc > 2 ? atoi(argv[2]) : 1;
	if (partitions < 1 || partitions > 64) {
		fprintf(stderr, "kafka-mock-consumer: PARTITIONS must be 1-64\n");
		return 2;
	}
	signal(SIGTERM, kmc_on_signal);
	signal(SIGINT, kmc_on_signal);
	signal(SIGPIPE, SIG_IGN);

	/* the cluster needs an instance to live in; it is not used otherwise */
	static const char *const owner_conf[] = {"log_level", "3", NULL};
	owner = kmc_new(RD_KAFKA_PRODUCER, NULL, owner_conf);
	if (!owner)
		return 1;
	mc = rd_kafka_mock_cluster_new(owner, 1);
	if (!mc) {
		fprintf(stderr, "kafka-mock-consumer: cannot start the mock cluster\n");
		return 1;
	}
	if (rd_kafka_mock_topic_create(mc, topic, partitions, 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "kafka-mock-consumer: cannot create topic %s\n", topic);
		return 1;
	}
	bootstrap = rd_kafka_mock_cluster_bootstraps(mc);

	consumer = kmc_new(RD_KAFKA_CONSUMER, bootstrap, consumer_conf);
	if (!consumer)
		return 1;
	rd_kafka_poll_set_consumer(consumer);
	parts = rd_kafka_topic_partition_list_new(partitions);
	for (int p = 0; p < partitions; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
	if (rd_kafka_assign(consumer, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "kafka-mock-consumer: cannot assign %s\n", topic);
		return 1;
	}
	rd_kafka_topic_partition_list_destroy(parts);

	printf("BOOTSTRAP %s\n", bootstrap);
	fflush(stdout);

	while (!kmc_stop) {
		struct pollfd in = {.fd = 0, .events = POLLIN};
		char buf[256];
		rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 200);

		if (m) {
			if (!m->err)
				kmc_print(m);
			else
				fprintf(stderr, "kafka-mock-consumer: %s\n",
				        rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
		}
		/* the test went away: so do we */
		if (poll(&in, 1, 0) == 1 &&
		    (in.revents & (POLLHUP | POLLERR) ||
		     ((in.revents & POLLIN) && read(0, buf, sizeof(buf)) <= 0)))
			break;
	}
	rd_kafka_consumer_close(consumer);
	rd_kafka_destroy(consumer);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(owner);
	return 0;
}
