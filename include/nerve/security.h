/*  nerve/security.h — CURVE on every link: keys, the allowlist, ZAP.

    An actor runs commands as root, so whoever can publish to it owns the
    host, and whoever can push events to the manager can trigger reactions.
    Every TCP link is therefore CURVE-encrypted and authenticated by
    default; `insecure: true` turns that off only when written out.

    Keys live in one directory per host (`keys:`, default $NERVE_HOME/keys,
    mode 0700), in czmq's zcert text format, laid out like salt-key:

        <keys>/<name>.pub, <name>.secret   keypairs made on this host
                                           (secret 0600, refused otherwise),
                                           and servers' .pub files to pin
        <keys>/accepted/<name>.pub         client keys this server lets in
        <keys>/pending/<name>.pub          unknown keys that tried to connect
        <keys>/rejected/<name>.pub         keys refused for good

    A server (manager `events`, publisher `output`) lets a client in when
    its key is in accepted/, or is a keypair of this host (<keys>/<n>.pub
    with <n>.secret beside it: only the owner of the 0700 directory can
    have put it there) — and never when the key is in rejected/, which
    beats everything. An unknown key is refused and recorded in pending/
    under a name made of the first 12 hex digits of the key, for an
    operator to accept.

    How a daemon uses this:

        nerve_security_t sec;
        nerve_security_init(&sec, "manager");          // defaults
        nerve_security_parse(&sec, conf_node, &cerr);  // the `security:` map
        nerve_security_warn("manager", &sec);          // at every start
        nerve_keys_ensure(sec.keys, sec.name, NULL, err, sizeof err);
        zap = nerve_zap_start(ctx, &sec, err, sizeof err);  // before bind
        nerve_sec_server(events, &sec, err, sizeof err);    // before bind
        ...
        // per received message, on a server socket:
        if (!nerve_zap_allowed(zap, zmq_msg_gets(&msg, "User-Id"))) drop;
        ...
        nerve_zap_stop(&zap);          // after closing the sockets,
        zmq_ctx_term(ctx);             // before terminating the context

    and a client (actor, beacond, CLI, the manager's link to the publisher
    input when that is TCP):

        nerve_sec_client(sub, &sec, "publisher", err, sizeof err);  // pins
        zmq_connect(sub, endpoint);

    Errors: every function that can fail returns 0 or a negative nerve_err
    and, when given an `err` buffer, writes one line saying what and where
    ("/var/lib/nerve/keys/manager.secret: readable by group or others (mode
    0640); chmod 600 it"). `err` may be NULL when errsize is 0.

    Threading: the nerve_keys_* functions and nerve_sec_* are reentrant
    (they share no state). nerve_zap_allowed(), nerve_zap_generation() and
    nerve_zap_stats() may be called from any thread while the handler runs.
*/
#ifndef NERVE_SECURITY_H
#define NERVE_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nerve/conf.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  A key name: 1–64 of [A-Za-z0-9._-], not starting with '.' or '-' (so a
    name is always one plain file name, never a path). Host names fit. */
#define NERVE_KEY_NAME_MAX 64

/*  Longest keys directory path, without the NUL. */
#define NERVE_KEYS_DIR_MAX 1023

/*  The ZAP domain every nerve CURVE server socket uses. */
#define NERVE_ZAP_DOMAIN "nerve"

/*  A CURVE key as text: 40 Z85 characters. Buffers are this + 1. */
#define NERVE_Z85_KEY_LEN 40

/* ------------------------------------------------------------------------
   Configuration: the `security:` map of every daemon's config.
   ------------------------------------------------------------------------ */

typedef struct nerve_security {
    bool insecure;                     /* CURVE off; only ever from `insecure: true` */
    bool auto_accept;                  /* let unknown keys in and record them (labs only) */
    char keys[NERVE_KEYS_DIR_MAX + 1]; /* the keys directory */
    char name[NERVE_KEY_NAME_MAX + 1]; /* this daemon's own key name */
} nerve_security_t;

/*  Fills *self with the defaults: CURVE on, auto_accept off, keys
    $NERVE_HOME/keys, own key `name` (e.g. "manager", "publisher", the
    actor's id). Returns 0, NERVE_EINVAL (not a valid key name) or
    NERVE_ERANGE (path too long); *self is usable (defaults) either way. */
int nerve_security_init(nerve_security_t *self, const char *name);

/*  Reads the value node of a `security:` key over the defaults in *self.
    node may be NULL (no `security:` key: keep the defaults). Keys:

        curve: true|false      default true
        insecure: true|false   default false
        keys: DIR              the keys directory, as written
        auto_accept: true|false

    CURVE goes off only with `insecure: true` written out: `curve: false`
    alone is an error that says so, and so is `curve: true` together with
    `insecure: true`. Unknown keys and wrong types fail with the position.
    Returns 0, or NERVE_EINVAL/NERVE_ETYPE/NERVE_ERANGE with *err filled
    ("file:line:column: …"); *self may then be partly updated. */
int nerve_security_parse(nerve_security_t *self, const nerve_conf_t *node, nerve_conf_error_t *err);

/*  Logs how `daemon` is secured, at start: a WARN when insecure (links
    unencrypted, anyone who reaches the sockets can use them) or when
    auto_accept is on, an INFO line naming the key otherwise. */
void nerve_security_warn(const char *daemon, const nerve_security_t *self);

/*  A static word for `status` output: "curve", "curve+auto_accept" or
    "insecure". */
const char *nerve_security_mode(const nerve_security_t *self);

/* ------------------------------------------------------------------------
   Keys on disk (what `nerve keys gen|list|accept|reject|revoke` call).
   ------------------------------------------------------------------------ */

/*  True if `name` is a valid key name (see NERVE_KEY_NAME_MAX). */
bool nerve_key_name_valid(const char *name);

/*  Creates `dir` (0700; parents as needed) if missing and writes a new
    keypair: <dir>/<name>.pub (0644) and <dir>/<name>.secret (0600).
    Never overwrites: NERVE_EEXIST if either file exists. Returns 0,
    NERVE_EINVAL (bad name), NERVE_EEXIST, NERVE_EPERM (dir writable by
    group or others) or NERVE_EIO. */
int nerve_keys_gen(const char *dir, const char *name, char *err, size_t errsize);

/*  Like nerve_keys_gen, but an existing keypair is fine: it is loaded and
    checked (permissions, the public key matches the secret) instead.
    *generated (may be NULL) tells whether a new one was written. For a
    daemon's first start on a fresh host. */
int nerve_keys_ensure(const char *dir, const char *name, bool *generated, char *err,
                      size_t errsize);

/*  Reads a zcert file. public_key gets the 32-byte public key. When
    secret_key is not NULL the file must hold the secret key too, be a
    regular file owned by this user (or root) and not readable or writable
    by group or others (NERVE_EPERM otherwise), and its public key must be
    the one the secret key implies. A public file must not be writable by
    group or others. Returns 0, NERVE_ENOENT, NERVE_EPERM, NERVE_EPARSE (no
    valid curve/public-key or curve/secret-key) or NERVE_EIO. */
int nerve_keys_load(const char *path, uint8_t public_key[32], uint8_t secret_key[32], char *err,
                    size_t errsize);

/*  Finds a server's public key for pinning. `server` is, tried in order:
        a key name with a file <dir>/<name>.pub (dir may be NULL);
        40 Z85 characters that do not name an existing file: the key;
        a path (contains '/'): a zcert file.
    (Z85 includes '/' and '.', hence the order.) Writes the 40-character
    key and a NUL into z85. Returns 0, NERVE_EINVAL (none of these),
    NERVE_ENOENT (a name without its file), or nerve_keys_load's errors. */
int nerve_keys_resolve(const char *dir, const char *server, char z85[NERVE_Z85_KEY_LEN + 1],
                       char *err, size_t errsize);

/*  The name an unknown key gets in pending/: the first 12 hex digits of
    the key. A client can compute it for its own key and log it, so the
    operator knows what to accept. Returns 0 or NERVE_EINVAL (z85 is not
    a 40-character key). */
#define NERVE_KEY_PENDING_NAME_LEN 12
int nerve_keys_pending_name(const char *z85, char name[NERVE_KEY_PENDING_NAME_LEN + 1]);

typedef enum nerve_key_state {
    NERVE_KEY_LOCAL = 1,    /* <dir>/<name>.pub: ours, or a server's we pin */
    NERVE_KEY_ACCEPTED = 2, /* accepted/ */
    NERVE_KEY_PENDING = 3,  /* pending/ */
    NERVE_KEY_REJECTED = 4, /* rejected/ */
} nerve_key_state_t;

/*  "local", "accepted", "pending", "rejected" (static; "?" if unknown). */
const char *nerve_key_state_name(nerve_key_state_t state);

/*  Called once per key file. z85 is NULL when the file cannot be read
    (the CLI shows it as unreadable). Return 0 to go on; anything else
    stops the walk and is returned by nerve_keys_list. */
typedef int(nerve_keys_list_fn)(nerve_key_state_t state, const char *name, const char *z85,
                                void *arg);

/*  Walks the keys in `dir`: local, accepted, pending, rejected, each in
    name order. Missing directories list as empty. Returns 0, what fn
    returned, or NERVE_EIO. */
int nerve_keys_list(const char *dir, nerve_keys_list_fn *fn, void *arg, char *err, size_t errsize);

/*  Moves key `name` into accepted/: from pending/ or rejected/, or copies
    this host's <dir>/<name>.pub. Already accepted: 0. A running ZAP
    handler picks the change up within about a second.
    Returns 0, NERVE_EINVAL, NERVE_ENOENT (no such key), NERVE_EEXIST (the
    target name holds a different key) or NERVE_EIO/NERVE_EPERM. */
int nerve_keys_accept(const char *dir, const char *name, char *err, size_t errsize);

/*  Says no to a key: moves it from pending/ or accepted/ (or copies
    <dir>/<name>.pub) into rejected/. A rejected key is refused and never
    recorded as pending again. Already rejected: 0. Errors as accept. */
int nerve_keys_reject(const char *dir, const char *name, char *err, size_t errsize);

/*  Takes back an accepted key: moves it from accepted/ (or copies this
    host's <dir>/<name>.pub) into rejected/. Running ZAP handlers stop
    admitting it and nerve_zap_allowed() turns false for it within about a
    second, so already-connected peers are cut off per message.
    NERVE_ENOENT if the key is neither accepted nor local. */
int nerve_keys_revoke(const char *dir, const char *name, char *err, size_t errsize);

/* ------------------------------------------------------------------------
   Sockets.
   ------------------------------------------------------------------------ */

/*  Makes `socket` a CURVE server with this daemon's keypair
    (<keys>/<name>.secret) and ZAP domain NERVE_ZAP_DOMAIN. Call before
    zmq_bind(). Fails closed: NERVE_ESTATE unless a nerve_zap handler runs
    in this process (a CURVE server without ZAP would let any key in), and
    where libzmq supports it the socket also refuses connections when no
    handler answers. No-op (0) when sec->insecure. Errors of
    nerve_keys_load, or NERVE_EIO (zmq_setsockopt failed). */
int nerve_sec_server(void *socket, const nerve_security_t *sec, char *err, size_t errsize);

/*  Makes `socket` a CURVE client with this daemon's keypair, pinned to
    the server key `server` (see nerve_keys_resolve): it completes a
    handshake only with the holder of that key's secret. Call before
    zmq_connect(). No-op (0) when sec->insecure.
    Note: libzmq 4.3 never retries a handshake the server refused (an
    unknown or rejected key, a wrong server key): that connection stays
    down. A client that should get in once an operator accepts its key
    watches its socket's ZMQ_EVENT_HANDSHAKE_FAILED_AUTH (zmq_socket_monitor)
    and makes a new socket after a pause, logging its pending name
    (nerve_keys_pending_name) so the operator knows what to accept. */
int nerve_sec_client(void *socket, const nerve_security_t *sec, const char *server, char *err,
                     size_t errsize);

/* ------------------------------------------------------------------------
   The ZAP handler (RFC 27) that decides who may connect.
   ------------------------------------------------------------------------ */

typedef struct nerve_zap nerve_zap_t;

/*  Starts a ZAP handler for the libzmq context `zmq_ctx` (a raw
    zmq_ctx_new() context; czmq's zauth serves only czmq's own): a thread
    with a REP socket bound to inproc://zeromq.zap.01. It answers CURVE
    requests of domain NERVE_ZAP_DOMAIN and refuses everything else. It
    loads the key directories before it returns and reloads them when
    they change (checked once a second, and fully every 30 s).
    Decisions: rejected key → refused; accepted or local key → admitted
    with User-Id = its Z85 public key; unknown key → refused and recorded
    in pending/ (at most 5 new files a second and 1000 in all), or, with
    auto_accept, admitted and recorded in accepted/ (same bounds; warned
    about). Refusals are counted and logged at most once a second.
    When sec->insecure, returns a handle with no thread for which
    nerve_zap_allowed() is always true.
    Returns NULL with err filled when the keys directory is unsafe, or
    the context already has a ZAP handler (one per context), or on
    NERVE_ENOMEM. Call nerve_zap_stop() before zmq_ctx_term(). */
nerve_zap_t *nerve_zap_start(void *zmq_ctx, const nerve_security_t *sec, char *err, size_t errsize);

/*  For per-message checks on a CURVE server socket: true if `user_id`
    (the "User-Id" property of a received message, zmq_msg_gets(&msg,
    "User-Id")) is a key admitted now. False for a key revoked since its
    peer connected, for NULL or malformed ids, and for a NULL handle.
    Insecure handle: always true. Messages from plain (IPC) sockets carry
    no User-Id, so do not check those. A read lock and a hash lookup, no
    allocation; any thread. */
bool nerve_zap_allowed(nerve_zap_t *self, const char *user_id);

/*  A counter that grows whenever the admitted set loses a key (revoke,
    reject, a key file removed). A daemon that cannot check per message (a
    PUB socket) compares it after each poll and, when it moved, closes and
    re-binds its socket so revoked subscribers are cut off. 0 for NULL. */
uint64_t nerve_zap_generation(nerve_zap_t *self);

typedef struct nerve_zap_stats {
    uint64_t admitted;         /* handshakes let in */
    uint64_t refused_unknown;  /* … refused: key in no list */
    uint64_t refused_rejected; /* … refused: key in rejected/ */
    uint64_t refused_other;    /* … refused: wrong domain or mechanism, bad request */
    uint64_t recorded_pending; /* keys written to pending/ */
    uint64_t auto_accepted;    /* keys admitted by auto_accept */
    uint64_t reloads;          /* times the key directories were read */
    uint64_t keys;             /* keys admitted now */
} nerve_zap_stats_t;

/*  Copies the counters (each read atomically). Zeroes for NULL. */
void nerve_zap_stats(nerve_zap_t *self, nerve_zap_stats_t *out);

/*  Stops the handler thread, unbinds, frees; sets *self_p to NULL. Safe on
    NULL and twice. Close the CURVE server sockets first: without a
    handler, libzmq refuses their new peers where it has
    ZMQ_ZAP_ENFORCE_DOMAIN (Debian's does) and lets every key in where it
    has not. */
void nerve_zap_stop(nerve_zap_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
