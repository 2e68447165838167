/* What every host does for its plugins, scalerd's (src/plugin/host.c) and
 * the tests' fake one (tests/lib/fakehost.c) alike: struct scaler_host's
 * defer and defer_cancel, and the zone average of a metrics result. */
#ifndef SCALER_HOST_SERVICES_H
#define SCALER_HOST_SERVICES_H

#include <stddef.h>

#include <scaler/plugin.h>

struct ev_loop;

/* Call fn(arg) once from `loop` on its next iteration; NULL when out of
 * memory (fn will not be called). */
struct scaler_deferred *defer_on(struct ev_loop *loop, void (*fn)(void *arg), void *arg);
/* Drop a call that has not run yet. */
void defer_cancel(struct scaler_deferred *d);

/* The zone average of a metrics plugin's result: the mean of the values
 * not missing, in *average; 1 when there was one, else 0. A plugin built
 * against ABI 1.1 (abi_minor < 2) gives its own, which is used instead. */
int metrics_average(const struct scaler_metrics_result *res, unsigned plugin_abi_minor,
                    double *average);

#endif
