/*  error.c — nerve_strerror(): names for nerve_err codes. */
#include <nerve/error.h>

const char *nerve_strerror(int err)
{
    switch (err) {
    case NERVE_OK: return "success";
    case NERVE_EINVAL: return "invalid argument";
    case NERVE_ENOMEM: return "out of memory";
    case NERVE_EIO: return "input/output error";
    case NERVE_ENOENT: return "not found";
    case NERVE_EPERM: return "not permitted";
    case NERVE_EABI: return "module ABI mismatch";
    case NERVE_EPARSE: return "parse error";
    case NERVE_ETYPE: return "wrong type";
    case NERVE_ERANGE: return "out of range";
    case NERVE_EFULL: return "queue full";
    case NERVE_ETIMEDOUT: return "timed out";
    case NERVE_EEXIST: return "already exists";
    case NERVE_ESTATE: return "invalid state";
    case NERVE_EMODULE: return "module function failed";
    default: return "unknown error";
    }
}
