/*  nerve/log.h — one logging entry point for every nerve process.

    Lines go to stderr in a journald-friendly form: "<N>id: message" where
    <N> is the syslog priority when stderr is the journal (JOURNAL_STREAM set),
    and "LEVEL id: message" with a timestamp otherwise. `id` is a short word
    naming the subsystem ("wire", "rules", "loader").

    Anything a remote peer can trigger (a malformed event, an unknown key) must
    be logged through a rate limiter: NERVE_LOG_RL(&limiter, …) prints at most
    once per interval and reports how many lines it suppressed in between.

    Threading: every function here is safe to call from any thread.
*/
#ifndef NERVE_LOG_H
#define NERVE_LOG_H

#include <stdint.h>
#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nerve_log_level {
    NERVE_LOG_ERROR = 3,
    NERVE_LOG_WARN = 4,
    NERVE_LOG_INFO = 6,
    NERVE_LOG_DEBUG = 7,
} nerve_log_level_t;

/*  Sets the most verbose level printed (default NERVE_LOG_INFO; the env var
    NERVE_LOG_LEVEL=debug|info|warn|error overrides it at first use). */
void nerve_log_set_level(nerve_log_level_t level);
nerve_log_level_t nerve_log_get_level(void);

/*  Parses "error", "warn", "info", "debug". Returns 0, or NERVE_EINVAL. */
int nerve_log_level_parse(const char *name, nerve_log_level_t *level);

/*  Prints one line if `level` is enabled. Prefer the macros below. */
void nerve_log(nerve_log_level_t level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define NERVE_ERROR(id, ...) nerve_log(NERVE_LOG_ERROR, (id), __VA_ARGS__)
#define NERVE_WARN(id, ...) nerve_log(NERVE_LOG_WARN, (id), __VA_ARGS__)
#define NERVE_INFO(id, ...) nerve_log(NERVE_LOG_INFO, (id), __VA_ARGS__)
#define NERVE_DEBUG(id, ...) nerve_log(NERVE_LOG_DEBUG, (id), __VA_ARGS__)

/*  A rate limiter: at most one line per `interval_ms`. Initialise statically
    with NERVE_RATELIMIT_INIT(ms). Lock-free; safe across threads. */
typedef struct nerve_ratelimit {
    uint64_t interval_ms;
    _Atomic uint64_t next_ms;    /* monotonic ms before which lines are dropped */
    _Atomic uint64_t suppressed; /* lines dropped since the last one printed */
} nerve_ratelimit_t;

#define NERVE_RATELIMIT_INIT(ms) {(ms), 0, 0}

/*  Returns the number of suppressed lines + 1 if a line may be printed now
    (and resets the count), or 0 if it must be dropped. */
uint64_t nerve_ratelimit_take(nerve_ratelimit_t *rl);

/*  Logs through a rate limiter; appends "(N similar suppressed)". */
void nerve_log_rl(nerve_ratelimit_t *rl, nerve_log_level_t level, const char *id,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define NERVE_LOG_RL(rl, level, id, ...) nerve_log_rl((rl), (level), (id), __VA_ARGS__)

/*  Milliseconds and nanoseconds from CLOCK_MONOTONIC, and ns since the Unix
    epoch from CLOCK_REALTIME. */
uint64_t nerve_clock_mono_ms(void);
uint64_t nerve_clock_mono_ns(void);
uint64_t nerve_clock_wall_ns(void);

#ifdef __cplusplus
}
#endif
#endif
