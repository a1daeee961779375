/* error.c — thread-local status and message of the last failed call. */
#include "base.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_msg[512];
static _Thread_local kn_status last_status;

static void set_message(kn_status s, const char *fmt, va_list ap)
{
    last_status = s;
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
}

kn_status kn__error(kn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(s, fmt, ap);
    va_end(ap);
    return s;
}

kn_status kn_set_error(kn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(s, fmt, ap);
    va_end(ap);
    return s;
}

void *kn__error_null(kn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(s, fmt, ap);
    va_end(ap);
    return NULL;
}

const char *kn_last_error(void)
{
    return last_msg;
}
kn_status kn_last_status(void)
{
    return last_status;
}

void kn_clear_error(void)
{
    last_msg[0] = '\0';
    last_status = KN_OK;
}

const char *kn_status_name(kn_status s)
{
    switch (s) {
    case KN_OK:
        return "ok";
    case KN_ERR_ARG:
        return "invalid argument";
    case KN_ERR_SHAPE:
        return "shape mismatch";
    case KN_ERR_DTYPE:
        return "unsupported dtype";
    case KN_ERR_NOMEM:
        return "out of memory";
    case KN_ERR_UNSUPPORTED:
        return "unsupported";
    case KN_ERR_STATE:
        return "invalid state";
    case KN_ERR_IO:
        return "i/o or format error";
    case KN_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown status";
}

const char *kn_version(void)
{
    return "0.1.0";
}
