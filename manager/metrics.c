/*  metrics.c — what nerve-manager exports to Prometheus (see metrics.h).

    Names follow Prometheus conventions: counters end in _total, durations
    are in seconds. Per-rule series carry the rule's scope (file stem and
    name), which is unique across the ruleset.
*/
#include "metrics.h"
#include "server.h"

#include <nerve/log.h>

#include <stdio.h>

static void s_counter(nerve_mtext_t *t, const char *name, const char *help, uint64_t v)
{
    nerve_mtext_counter(t, name, help, NULL, v);
}

static void s_gauge(nerve_mtext_t *t, const char *name, const char *help, double v)
{
    nerve_mtext_gauge(t, name, help, NULL, v);
}

static void s_events(server_t *self, nerve_mtext_t *t)
{
    server_counters_t *c = &self->counters;
    engine_stats_t es;
    engine_stats(self->engine, &es);
    s_counter(t, "nerve_events_received_total", "Messages read from the events socket.",
              c->received);
    s_counter(t, "nerve_events_accepted_total", "Events that passed validation.", c->accepted);
    s_counter(t, "nerve_events_injected_total",
              "Events produced inside the manager (reactions, presence, reloads).",
              c->injected);
    s_counter(t, "nerve_events_matched_total", "Events that matched at least one tag block.",
              es.matched);
    for (int r = 1; r < NERVE_WIRE_REASON_COUNT; r++)
        nerve_mtext_counter(t, "nerve_events_rejected_total",
                            "Events dropped as malformed, by reason.",
                            NERVE_LABELS("reason", nerve_wire_reason_name((nerve_wire_reason_t)r)),
                            c->rejected_by[r]);
    nerve_mtext_counter(t, "nerve_events_rejected_total", "Events dropped as malformed, by reason.",
                        NERVE_LABELS("reason", SERVER_REASON_UNAUTHORIZED),
                        c->rejected_unauthorized);
    nerve_mtext_histogram(t, "nerve_engine_latency_seconds",
                          "Time from reading an event to the end of its decision.", NULL,
                          &self->latency);
}

static void s_rules(server_t *self, nerve_mtext_t *t)
{
    engine_stats_t es;
    engine_stats(self->engine, &es);
    size_t n;
    const engine_rule_stats_t *st = engine_rule_stats(self->engine, &n);
    const ruleset_t *rs = self->rules;
    for (size_t i = 0; rs && i < n && i < rs->nrules; i++) {
        const char *const *labels = NERVE_LABELS("rule", rs->rules[i].scope);
        nerve_mtext_counter(t, "nerve_rules_evaluated_total", "Rule evaluations, per rule.",
                            labels, st[i].evaluated);
        nerve_mtext_counter(t, "nerve_rules_fired_total", "Rules that fired, per rule.", labels,
                            st[i].fired);
    }
    s_counter(t, "nerve_rule_errors_total", "Rule or register functions that failed.",
              es.rule_errors);
    s_counter(t, "nerve_rules_suppressed_for_total", "True results held back by `for`.",
              es.suppressed_for);
    s_counter(t, "nerve_rules_suppressed_cooldown_total", "True results held back by cooldown.",
              es.suppressed_cooldown);
    s_gauge(t, "nerve_rules_loaded", "Rules in the running ruleset.", rs ? (double)rs->nrules : 0);
    s_counter(t, "nerve_reload_attempts_total", "Rules and modules reloads tried.",
              self->reload.attempts);
    s_counter(t, "nerve_reload_failures_total", "Reloads that failed (old rules kept).",
              self->reload.failures);
    s_gauge(t, "nerve_reload_last_ok", "1 when the last reload succeeded.",
            self->reload.ok ? 1 : 0);
}

static void s_reactions(server_t *self, nerve_mtext_t *t)
{
    server_counters_t *c = &self->counters;
    engine_stats_t es;
    engine_stats(self->engine, &es);
    delivery_stats_t ds;
    delivery_stats(self->delivery, &ds);
    worker_stats_t ws;
    worker_stats(self->worker, &ws);
    s_counter(t, "nerve_reactions_produced_total", "Reactions produced by rules firing.",
              es.reactions);
    s_counter(t, "nerve_reactions_sent_total", "Reactions pushed to the publisher.",
              c->reactions_sent);
    s_counter(t, "nerve_reactions_retried_total", "Re-sends of host reactions without a result.",
              ds.retried);
    s_counter(t, "nerve_reactions_expired_total", "Host reactions given up at their deadline.",
              ds.expired);
    s_counter(t, "nerve_reactions_acked_total", "Host reactions whose result arrived.",
              ds.acked);
    s_counter(t, "nerve_reactions_send_dropped_total",
              "Reactions the publisher queue refused at once (host ones are retried).",
              c->reactions_send_dropped);
    s_counter(t, "nerve_reactions_unroutable_total",
              "Reactions whose target matched nobody or was invalid.", c->reactions_unroutable);
    s_counter(t, "nerve_reactions_local_total", "Reactions queued to run on the manager.",
              c->reactions_local);
    s_counter(t, "nerve_reactions_local_refused_total", "Local reactions refused: queue full.",
              c->reactions_local_refused);
    s_counter(t, "nerve_reactions_failed_total", "Local reactions that returned an error.",
              ws.failed);
    s_gauge(t, "nerve_reactions_pending", "Host reactions waiting for a result.",
            (double)ds.pending);
    s_gauge(t, "nerve_reactions_local_waiting", "Local reactions queued now.", (double)ws.depth);
}

static void s_registers(server_t *self, nerve_mtext_t *t)
{
    regstore_stats_t rs;
    regstore_stats(self->store, &rs);
    s_counter(t, "nerve_register_commits_total", "LMDB group commits.", rs.commits);
    s_counter(t, "nerve_register_commit_errors_total", "LMDB commits that failed.",
              rs.commit_errors);
    s_counter(t, "nerve_register_entries_written_total", "Register states written to LMDB.",
              rs.entries_written);
    nerve_mtext_histogram(t, "nerve_register_commit_seconds",
                          "LMDB group commit latency (write transaction, commit and sync).",
                          NULL, &rs.commit_seconds);
    s_gauge(t, "nerve_registers_dirty", "Register states not yet committed.", (double)rs.dirty);
    s_gauge(t, "nerve_registers_cached", "Register states in memory.", (double)rs.cached);
}

void manager_metrics_render(server_t *self, nerve_mtext_t *t)
{
    nerve_mtext_reset(t);
    s_gauge(t, "nerve_start_time_seconds", "When this manager started (Unix time).",
            (double)self->start_ns / 1e9);
    s_events(self, t);
    s_rules(self, t);
    s_reactions(self, t);
    s_registers(self, t);
    s_gauge(t, "nerve_actors_live", "Actors whose heartbeats arrive.",
            (double)presence_count(self->presence));
    s_counter(t, "nerve_actors_lost_total", "Actors declared lost.",
              self->counters.actors_lost);
}
