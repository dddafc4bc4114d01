/*  metrics.h — the manager's Prometheus metrics (docs/metrics.md).

    The engine thread renders its counters into text at most once a second
    (when `metrics:` is set) and publishes it; libmicrohttpd's thread serves
    the latest text at /metrics. Nothing here runs on the HTTP thread.
*/
#ifndef NERVE_MANAGER_METRICS_H
#define NERVE_MANAGER_METRICS_H

#include <nerve/metrics.h>

struct server;

/*  Renders every manager metric into t (reset first). */
void manager_metrics_render(struct server *self, nerve_mtext_t *t);

#endif
