/* Reconciliation: make Redis (the state store) and what the driver lists
 * agree, before a new primary acts and whenever asked to.
 *
 * The order of operations that loses nothing, for whoever changes servers
 * (the controller) — reconciliation relies on it:
 *   create: record the server `starting` (fenced) → driver create →
 *           health check passes → record `serving` (fenced) → balancer add.
 *   delete: record `deleting` (fenced) → balancer delete → driver remove →
 *           delete the record (fenced).
 * A crash between any two steps leaves either a record without a server
 * (dropped here), a server without a record (an orphan: adopted when healthy,
 * removed otherwise), a `starting` record (promoted to `serving` when the
 * server runs and is healthy, dropped when it does not run) or a `deleting`
 * record (the removal is finished here). Servers of zones that are not in
 * the configuration are left alone.
 *
 * Every correction is a fenced write plus an event of kind "reconcile"; a
 * write refused as stale stops the run with RECONCILE_STALE (this node is
 * not primary anymore). Before the driver removes anything, the epoch is
 * read again and the removal is skipped if another primary took over.
 * Bringing zones back to their minimum is the controller's job.
 *
 * A run lists the driver's servers first and reads the records after: a
 * server's record is written before its create begins, so a server listed
 * has its record in what is read next (unless a flow deleted it since).
 *
 * Takeover (reconcile_start) corrects everything above once, before the new
 * primary's controller acts. It cannot see a create still in flight on a
 * deposed primary: the server appears after the listing, its `starting`
 * record is dropped, and the server would stay an orphan. The orphan sweep
 * (reconcile_sweep), run every reconcile_interval while the controller acts,
 * finds such servers: it touches no record (records belong to the
 * controller's flows) and acts only on an orphan that two sweeps in a row
 * found listed without a record, with the same handling as above. */
#ifndef SCALER_RECONCILE_H
#define SCALER_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include <scaler/plugin.h>

struct store;
struct store_server;
struct plugin_instance;
struct reconcile;

enum reconcile_status {
	RECONCILE_OK = 0,
	RECONCILE_ERR = -1,   /* Redis or the driver failed; see err (nothing half-done is lost) */
	RECONCILE_STALE = -2, /* fenced: another node is primary, stop acting */
};

struct reconcile_summary {
	enum reconcile_status status;
	size_t records;            /* records of configured zones found in Redis */
	size_t servers;            /* servers of configured zones the driver listed */
	size_t adopted;            /* orphans that were healthy, now recorded `serving` */
	size_t orphans_removed;    /* orphans that were not healthy, removed */
	size_t promoted;           /* `starting` records whose server is healthy → `serving` */
	size_t records_dropped;    /* records whose server no longer exists (or no longer runs) */
	size_t deletions_finished; /* `deleting` records: server removed, record deleted */
	size_t still_starting;     /* `starting` records whose server runs but is not healthy yet */
	size_t ignored;            /* records and servers of zones not configured */
	size_t errors;             /* corrections that failed (Redis or driver errors) */
	char err[512];             /* first error, "" when none */
	/* sweep: the orphans first seen by this sweep (valid during the
	 * callback only; hand them to the next sweep); NULL otherwise */
	const struct reconcile_seen *seen;
};

/* Orphans a sweep found listed without a record and did not act on yet. */
struct reconcile_seen {
	struct reconcile_seen_server {
		char zone[64];
		char id[64];
	} * v;
	size_t n;
};

/* A sweep adopted an orphan: rec is its new `serving` record. */
typedef void (*reconcile_adopt_fn)(void *arg, const struct store_server *rec);

/* The controller's health check: call done(done_arg, healthy) exactly once,
 * later, on the loop. Return -1 when the check cannot start (counted as
 * unhealthy). */
typedef int (*reconcile_health_fn)(void *health_arg, const struct scaler_server *srv,
                                   void (*done)(void *done_arg, int healthy), void *done_arg);

typedef void (*reconcile_cb)(void *arg, const struct reconcile_summary *summary);

/* Start a run: reads the driver's list and the records, then corrects.
 * zones: the configured zones (nzones pointers, read during the call only;
 * the store and the driver instance must stay valid until the end). cb is called once at the
 * end unless the run is cancelled (also when Redis cannot be read: an
 * error). NULL (cb not called) when it cannot start (the driver cannot
 * list, bad arguments). */
struct reconcile *reconcile_start(struct store *store, const struct plugin_instance *driver,
                                  const struct scaler_zone *const *zones, size_t nzones,
                                  uint64_t epoch, reconcile_health_fn health, void *health_arg,
                                  reconcile_cb cb, void *arg);
/* Start an orphan sweep: only the servers listed without a record are
 * looked at; one in prev (the previous sweep's summary->seen) is adopted or
 * removed, the others are only reported in summary->seen. adopted (may be
 * NULL) is called, before the event, for each orphan recorded `serving`. */
struct reconcile *reconcile_sweep(struct store *store, const struct plugin_instance *driver,
                                  const struct scaler_zone *const *zones, size_t nzones,
                                  uint64_t epoch, const struct reconcile_seen *prev,
                                  reconcile_health_fn health, void *health_arg,
                                  reconcile_adopt_fn adopted, reconcile_cb cb, void *arg);
/* Stop a run: no new correction starts, cb is not called. Operations in
 * flight finish on their own (each is safe alone). */
void reconcile_cancel(struct reconcile *r);

const char *reconcile_status_name(enum reconcile_status st);

#endif
