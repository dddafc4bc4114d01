/*  reactions/log.c — reactions.log: write a line to the daemon's log.

        write   logs `message` at `level` (error, warn, info — the default —
                or debug), naming the rule and the event; the output is the
                message

    The cheapest reaction, for rules whose whole point is a trail ("disk
    filling on {{event.host}}: {{value}}%") and for trying a rule out before
    it is given teeth. The line goes through nerve_log(), so it lands in the
    journal with the daemon's other lines.

    Messages are rendered from templates and may carry text from the event,
    which a remote peer controls: control characters (a newline that would
    forge a second log line, terminal escapes) are replaced by spaces in the
    log line. The output keeps the message as rendered.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nerve/module.h>

#define S_LINE_MAX 2048 /* longer messages are cut in the log line */

/*  `level`, default info. A template is accepted unchecked at load time. */
static int s_level(const msgpack_object *args, bool templates, nerve_log_level_t *level)
{
    *level = NERVE_LOG_INFO;
    const msgpack_object *l = nerve_obj_get(args, "level");
    if (!l)
        return 0;
    char name[64];
    if (!nerve_obj_strcpy(l, name, sizeof name))
        return NERVE_EINVAL;
    if (templates && strstr(name, "{{"))
        return 0;
    return nerve_log_level_parse(name, level) == 0 ? 0 : NERVE_EINVAL;
}

static int s_prepare_write(const msgpack_object *args, void **prepared, char *err, size_t errsize)
{
    *prepared = NULL;
    const msgpack_object *m = nerve_obj_get(args, "message");
    const char *s;
    size_t n;
    if (!m || !nerve_obj_str(m, &s, &n)) {
        if (err && errsize)
            snprintf(err, errsize, "write needs 'message' (a string)");
        return NERVE_EINVAL;
    }
    nerve_log_level_t level;
    if (s_level(args, true, &level) != 0) {
        if (err && errsize)
            snprintf(err, errsize, "write: 'level' must be one of error, warn, info, debug");
        return NERVE_EINVAL;
    }
    return 0;
}

/*  The message as one printable line: control bytes become spaces. */
static void s_printable(const char *s, size_t n, char *buf, size_t bufsize)
{
    size_t len = n < bufsize - 1 ? n : bufsize - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    buf[len] = '\0';
}

static int s_write(nerve_reaction_call_t *call)
{
    const msgpack_object *m = nerve_obj_get(call->args, "message");
    if (!m)
        return nerve_reaction_say(call, NERVE_EINVAL, "write needs 'message'");
    nerve_log_level_t level;
    if (s_level(call->args, false, &level) != 0)
        return nerve_reaction_say(call, NERVE_EINVAL, "write: 'level' must be one of error, warn, info, debug");

    /* A message that is one template keeps its value's type: show it. */
    char text[S_LINE_MAX];
    const char *s;
    size_t n;
    if (!nerve_obj_str(m, &s, &n)) {
        nerve_obj_format(m, text, sizeof text);
        s = text;
        n = strlen(text);
    }
    char line[S_LINE_MAX];
    s_printable(s, n, line, sizeof line);
    char tag[NERVE_TAG_MAX + 1] = "-", host[NERVE_HOST_MAX + 1] = "-";
    if (call->event) {
        s_printable(call->event->tag, strnlen(call->event->tag, NERVE_TAG_MAX), tag, sizeof tag);
        s_printable(call->event->host, strnlen(call->event->host, NERVE_HOST_MAX), host,
                    sizeof host);
    }
    nerve_log(level, "reaction", "%s (rule %s, event %s from %s)", line,
              call->rule && call->rule[0] ? call->rule : "-", tag, host);
    return nerve_reaction_say(call, 0, "%.*s", (int)(n > INT32_MAX ? INT32_MAX : n), s);
}

static const nerve_module_fn_t s_functions[] = {
    {"write",
     {.reaction = s_write},
     "logs `message` at `level` (info) with the rule and event; output = the message",
     s_prepare_write,
     NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "log", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
