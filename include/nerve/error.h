/*  nerve/error.h — error codes shared by libnerve, the daemons and modules.

    Every function that can fail returns int: 0 (NERVE_OK) on success, or a
    negative nerve_err. nerve_strerror() turns a code into a short English
    phrase. Module functions return these codes too; a daemon never trusts a
    module to return a known code and prints unknown ones by number.
*/
#ifndef NERVE_ERROR_H
#define NERVE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nerve_err {
    NERVE_OK = 0,
    NERVE_EINVAL = -1,     /* invalid argument or input */
    NERVE_ENOMEM = -2,     /* out of memory */
    NERVE_EIO = -3,        /* I/O or system call failed (see errno in the log) */
    NERVE_ENOENT = -4,     /* no such file, module, function, key or rule */
    NERVE_EPERM = -5,      /* refused: unsafe permissions, or not allowed */
    NERVE_EABI = -6,       /* module ABI mismatch (magic, version, size) */
    NERVE_EPARSE = -7,     /* syntax error (YAML, template, msgpack) */
    NERVE_ETYPE = -8,      /* value has the wrong type */
    NERVE_ERANGE = -9,     /* value out of range or too large */
    NERVE_EFULL = -10,     /* queue or buffer full; the item was not taken */
    NERVE_ETIMEDOUT = -11, /* deadline or timeout passed */
    NERVE_EEXIST = -12,    /* already exists (duplicate name) */
    NERVE_ESTATE = -13,    /* operation not valid in the current state */
    NERVE_EMODULE = -14,   /* a module function failed */
} nerve_err_t;

/*  Returns a static string naming the error: "invalid argument", … Unknown
    codes give "unknown error". Never returns NULL. */
const char *nerve_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
