/*  nerve/nerve.h — everything public in libnerve, in one include. */
#ifndef NERVE_NERVE_H
#define NERVE_NERVE_H

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/value.h>
#include <nerve/wire.h>
#include <nerve/module.h>
#include <nerve/conf.h>
#include <nerve/template.h>
#include <nerve/paths.h>
#include <nerve/daemon.h>
#include <nerve/beacon.h>
#include <nerve/metrics.h>
#include <nerve/security.h>
#include <nerve/pool.h>

#define NERVE_VERSION_STRING "0.1.0"

#endif
