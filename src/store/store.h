/* The state store: Redis is the ground truth of which servers exist and
 * who is primary. Keys are namespaced by cluster name:
 *   <cluster>:epoch                 leadership epoch counter (INCR)
 *   <cluster>:leader                hash id, url, epoch
 *   <cluster>:lease                 "<id> <epoch> <client id>", expires unless
 *                                   the primary renews it
 *   <cluster>:servers:<zone>        hash server id -> JSON record
 *   <cluster>:events                stream of scaling actions (capped)
 *   <cluster>:zones                 set of zones that have server records
 * Every write that changes servers or leadership is fenced: a Lua script
 * applies it only when the writer's epoch equals <cluster>:epoch. */
#ifndef SCALER_STORE_H
#define SCALER_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <scaler/plugin.h>

struct redis_conn;
struct store;

enum store_status {
	STORE_OK = 0,
	STORE_ERR = -1,   /* Redis unreachable or replied an error */
	STORE_STALE = -2, /* fenced: the writer's epoch is not current */
	STORE_NOTFOUND = -3,
	STORE_HELD = -4, /* another node's lease is live */
};

struct store_server {
	struct scaler_server srv; /* id, zone, address, ref, created */
	char driver[32];          /* driver plugin name */
	char state[16];           /* "starting", "serving", "deleting" */
	double updated;
};

struct store_leader {
	char id[64];
	char url[256];
	uint64_t epoch;
};

/* The lease as a lease script saw it. */
struct store_lease {
	char holder[64];  /* node id; "" when no lease is live */
	uint64_t epoch;   /* the holder's */
	double remaining; /* seconds until it lapses */
	char ref[160];    /* the record as it is, for store_lease_break */
	uint64_t current_epoch;
};

typedef void (*store_cb)(void *arg, enum store_status st, const char *err);
typedef void (*store_epoch_cb)(void *arg, enum store_status st, uint64_t epoch, const char *err);
typedef void (*store_leader_cb)(void *arg, enum store_status st, const struct store_leader *l,
                                uint64_t current_epoch);
typedef void (*store_lease_cb)(void *arg, enum store_status st, const struct store_lease *l);
typedef void (*store_servers_cb)(void *arg, enum store_status st,
                                 const struct store_server *servers, size_t n);
typedef void (*store_events_cb)(void *arg, enum store_status st,
                                json_t *events /* array, borrowed */, const char *last_id);

struct store *store_new(struct redis_conn *r, const char *cluster);
void store_free(struct store *s);

/* Leadership. */
int store_epoch_take(struct store *s, store_epoch_cb cb, void *arg); /* INCR, new epoch */
int store_epoch_get(struct store *s, store_epoch_cb cb, void *arg);
int store_leader_set(struct store *s, uint64_t epoch, const char *id, const char *url, store_cb cb,
                     void *arg); /* fenced */
int store_leader_get(struct store *s, store_leader_cb cb, void *arg);

/* The primary's lease, `ttl` seconds from each take or renewal, on the
 * connection's CLIENT ID (so a dead holder can be told from a slow one).
 * l is NULL with STORE_ERR, else it is the live lease (holder "" when
 * none) and the current epoch.
 * take: unless another node's lease is live (STORE_HELD), a new epoch, the
 *   leader record and the lease at once.
 * renew: STORE_STALE when `epoch` is not current or the lease is another's.
 * release: drop this node's lease of `epoch`, if it is there.
 * break: drop the lease `ref` (a store_lease's) when its holder's connection
 *   is closed; STORE_HELD when the holder is connected or the lease changed.
 *   -1 at once when `ref` names no connection. */
int store_lease_take(struct store *s, const char *id, const char *url, double ttl,
                     store_lease_cb cb, void *arg);
int store_lease_renew(struct store *s, const char *id, uint64_t epoch, double ttl,
                      store_lease_cb cb, void *arg);
int store_lease_release(struct store *s, const char *id, uint64_t epoch, store_lease_cb cb,
                        void *arg);
int store_lease_get(struct store *s, store_lease_cb cb, void *arg);
int store_lease_break(struct store *s, const char *ref, store_lease_cb cb, void *arg);

/* Servers. zone NULL lists every zone. Deleting a record that is not
 * there is done (STORE_OK): deletions can be retried. Records that do not
 * parse are skipped (and logged) by the list. */
int store_server_put(struct store *s, uint64_t epoch, const struct store_server *srv, store_cb cb,
                     void *arg); /* fenced */
int store_server_del(struct store *s, uint64_t epoch, const char *zone, const char *id, store_cb cb,
                     void *arg); /* fenced */
int store_servers_list(struct store *s, const char *zone, store_servers_cb cb, void *arg);

/* Events: one JSON object per action, fields at least time, zone, kind,
 * from, to, reason; `extra` (may be NULL) is merged in. Capped at ~10000. */
int store_event_add(struct store *s, const char *zone, const char *kind, int from, int to,
                    const char *reason, json_t *extra, store_cb cb, void *arg);
/* The same, recorded only while `epoch` is current (STORE_STALE otherwise):
 * a deposed primary leaves no decision behind. */
int store_event_add_fenced(struct store *s, uint64_t epoch, const char *zone, const char *kind,
                           int from, int to, const char *reason, json_t *extra, store_cb cb,
                           void *arg);
/* Events after stream id `after` ("0" for all, "$" for none), at most max,
 * of `zone` (NULL for all). */
int store_events_read(struct store *s, const char *zone, const char *after, size_t max,
                      store_events_cb cb, void *arg);
/* The newest `max` events of `zone` (NULL for all), oldest first; the
 * callback's last_id is the newest id of the whole stream ("0-0" when it is
 * empty), to read after. */
int store_events_tail(struct store *s, const char *zone, size_t max, store_events_cb cb, void *arg);

/* Cap of the event stream (approximate, MAXLEN ~); 0 restores 10000. */
void store_set_events_cap(struct store *s, size_t cap);
/* "ok", "error", "stale", "not found" */
const char *store_status_name(enum store_status st);
/* On STORE_STALE: the current epoch named in the error message, else 0. */
uint64_t store_stale_current(const char *err);

/* JSON (de)serialisation of a server record, shared with scalerctl. */
json_t *store_server_to_json(const struct store_server *srv);
int store_server_from_json(json_t *j, struct store_server *srv);

#endif
