/* The control loop (primary only): per zone, every interval, metrics →
 * policy → driver → state store → balancer. Also dead reports, pins and
 * drains from the admin API. */
#ifndef SCALER_CONTROLLER_H
#define SCALER_CONTROLLER_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include <scaler/plugin.h>

struct daemon;
struct conf;
struct controller;
struct plugin_instance;

struct controller *controller_new(struct daemon *d);
void controller_free(struct controller *c);

/* Load and init the policy plugin of every zone (then drop them): -1 after
 * logging when one is refused. Used by -t and before a reload applies. */
int controller_check_policies(const struct conf *conf, const struct scaler_host *host);

/* This node became primary with `epoch`: reconcile, fill zones to min,
 * then evaluate every zone each interval. */
void controller_start(struct controller *c, uint64_t epoch);
/* Stop acting at once (deposed, fenced, stopping). */
void controller_stop(struct controller *c, const char *reason);
/* The config changed (reload): zones added/removed, settings changed. */
void controller_reconfigure(struct controller *c, const struct conf *old, const struct conf *nc);

/* The metrics plugins the zones use, one instance of each plugin (at most
 * max); returns how many. */
size_t controller_metrics_plugins(struct controller *c, const struct plugin_instance **out,
                                  size_t max);
/* GET /status zones array (new reference). */
json_t *controller_zones_json(struct controller *c);
/* GET /servers: array for one zone or all (zone NULL); NULL when the zone
 * is unknown. */
json_t *controller_servers_json(struct controller *c, const char *zone);

/* GET /history: every zone's (or one zone's) history, samples newer than
 * `since`; NULL when the zone is unknown. */
json_t *controller_history_json(struct controller *c, const char *zone, double since);

/* An answer for the admin API: an HTTP status and a JSON body (taken). */
typedef void (*controller_reply_cb)(void *arg, int status, json_t *reply);
/* PUT /report from a balancer: each reported server (a list of address
 * strings) is checked by this node before it is deleted. done is called
 * once, at once or when the checks are over (within a few seconds). */
void controller_report(struct controller *c, const char *zone, json_t *dead,
                       controller_reply_cb done, void *arg);
/* The outlier events of a PUT /report (checked: objects with "kind" eject
 * or return, "server", "reason"), written, fenced, to the zone's event
 * stream. HTTP status (503 when this node is not the primary), *reply
 * filled when it is not 200. */
int controller_outlier_events(struct controller *c, const char *zone, json_t *events,
                              json_t **reply);
/* POST /scale: pin a zone's count (count < 0: unpin) for `duration` s (0:
 * until unpinned). HTTP status, *reply filled. */
int controller_pin(struct controller *c, const char *zone, int count, double duration,
                   json_t **reply);
/* POST /wake from a zone's balancer that holds `held` requests with no
 * server alive (it knows the primary of `epoch`): the zone keeps at least
 * one server for idle_timeout, and one is started now if it has none. HTTP
 * status, *reply filled. */
int controller_wake(struct controller *c, const char *zone, long held, uint64_t epoch,
                    json_t **reply);
/* POST /drain: take a server out of the balancer, drain, delete, refill. */
int controller_drain(struct controller *c, const char *zone, const char *server, json_t **reply);

/* Prometheus text of the controller's counters. */
void controller_metrics(struct controller *c, FILE *out);

#endif
