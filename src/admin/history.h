/* A zone's recent history for the console and scalerctl top: the server
 * count and the zone average of each metric, one sample per evaluation and
 * at most one per second, for the last hour, in memory only (a restarted
 * or new primary starts again; GET /history says since when). */
#ifndef SCALER_HISTORY_H
#define SCALER_HISTORY_H

#include <jansson.h>
#include <stddef.h>

#define HISTORY_SPAN 3600.0 /* seconds kept */
/* seconds: a sample older than the newest by more empties the ring */
#define HISTORY_STEP_BACK 1.0

struct history;

/* A ring for nmetrics values per sample, sized for HISTORY_SPAN at one
 * sample per `interval` (at least a second); its memory grows as samples
 * come, up to that. NULL when out of memory. */
struct history *history_new(size_t nmetrics, double interval);
void history_free(struct history *h);
size_t history_nmetrics(const struct history *h);
size_t history_len(const struct history *h);
/* The sizes it was made for (to tell whether a zone's settings changed). */
double history_interval(const struct history *h);
/* Bytes the ring holds now; it never holds more than
 * history_max_bytes(nmetrics, interval). */
size_t history_bytes(const struct history *h);
size_t history_max_bytes(size_t nmetrics, double interval);
/* A sample at unix time t: servers that count toward the zone's size and
 * the zone average of each metric (NAN: missing). A sample in the same
 * second as the newest replaces it (but for its missing values); one older
 * than the newest is dropped, unless it is older by more than
 * HISTORY_STEP_BACK: the clock was set back, the ring is emptied and starts
 * again with this sample, and history_add returns 1 (else 0). At capacity
 * the oldest goes. */
int history_add(struct history *h, double t, int servers, const double *values);
/* Samples newer than `since` (0: all), oldest first, as arrays
 * [t, servers, value, ...] (null for a missing value). New reference. */
json_t *history_points_json(const struct history *h, double since);

#endif
