/* floor_util.h: what the floor programs share: a monotonic clock in ms and
 * a checked positive count from the command line. */
#ifndef FEDFLOW_BENCH_FLOOR_UTIL_H
#define FEDFLOW_BENCH_FLOOR_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Exits 2 with a message naming program and what when s is not >= 1. */
static inline long parse_count(const char *program, const char *s, const char *what) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1) {
        fprintf(stderr, "%s: %s must be a positive integer, not '%s'\n", program, what, s);
        exit(2);
    }
    return v;
}

#endif
