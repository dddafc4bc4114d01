/*  control.h — the manager's control socket, for the `nerve` CLI.

    Protocol (ZeroMQ, the manager binds ROUTER; a client uses REQ or
    DEALER): a request is two frames, [verb][msgpack map of args]; the
    reply is [status][msgpack body] where status is "ok" or "error" and an
    error body is {error: "message"}. Verbs:

      status                       uptime, counters, reload state
      reload                       reload rules and modules now
      rules.list                   every rule, where it is, its counters
      registers.list {prefix}      register states (scope prefix)
      registers.get  {scope, key}
      registers.set  {scope, key, value}
      registers.del  {scope, key}
      actors                       live actors: id, groups, version, last seen
      explain        {tag, host, data}   one event through the rules, no
                                         side effects (engine_explain)
*/
#ifndef NERVE_MANAGER_CONTROL_H
#define NERVE_MANAGER_CONTROL_H

struct server;

/*  Reads one request from the control socket and answers it. */
void control_handle(struct server *self);

#endif
