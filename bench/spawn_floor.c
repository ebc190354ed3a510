/* spawn_floor: the floor for bench/throughput.
 *
 *   spawn_floor [N [JOBS [PROGRAM]]]      defaults: 200 2 /bin/true
 *   spawn_floor N JOBS --fork MIB [READ [WRITTEN]]
 *
 * posix_spawn()s PROGRAM N times, keeping JOBS children in flight (a new one
 * is started as soon as waitpid() reaps one), and prints the total and the
 * per-spawn time. This is what running a process per task costs at the very
 * least on this machine: no exec of a real worker, no handshake, no results.
 *
 * With --fork, the children are fork()ed instead and _exit(0) at once, from
 * a process that has first written MIB MiB of its heap (a fork server's
 * size: its pages are what fork() copies the page tables of). This is the
 * least a forked task costs: no worker code runs in the child. With READ
 * (and WRITTEN), each child first reads one byte of as many pages of that
 * heap (then writes one byte of as many), to show what the first touch of
 * an inherited page, and a copy-on-write, cost on this machine.
 *
 * Output (one line, parsed by bench/throughput):
 *   spawn_floor n=200 jobs=2 total_ms=123.456 per_task_ms=0.617
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor_util.h"

extern char **environ;

/* Reaps one child; returns 0, or -1 when the child did not exit with 0. */
static int reap_one(void) {
    int status = 0;
    pid_t pid;
    do {
        pid = waitpid(-1, &status, 0);
    } while (pid < 0 && errno == EINTR);
    if (pid < 0) {
        perror("spawn_floor: waitpid");
        exit(1);
    }
    return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -1;
}

/* A count of pages that may be 0 (parse_count wants one of at least 1). */
static size_t parse_pages(const char *s, const char *what) {
    return strcmp(s, "0") == 0 ? 0 : (size_t)parse_count("spawn_floor", s, what);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? parse_count("spawn_floor", argv[1], "N") : 200;
    long jobs = argc > 2 ? parse_count("spawn_floor", argv[2], "JOBS") : 2;
    const char *program = argc > 3 ? argv[3] : "/bin/true";
    int fork_mode = strcmp(program, "--fork") == 0;
    volatile char *heap = NULL;
    size_t pages = 0, read_pages = 0, written_pages = 0;
    if (fork_mode) {
        long mib = argc > 4 ? parse_count("spawn_floor", argv[4], "MIB") : 4;
        size_t size = (size_t)mib << 20;
        pages = size / 4096;
        read_pages = argc > 5 ? parse_pages(argv[5], "READ") : 0;
        written_pages = argc > 6 ? parse_pages(argv[6], "WRITTEN") : 0;
        if (read_pages > pages || written_pages > pages) {
            fprintf(stderr, "spawn_floor: READ and WRITTEN are at most %zu pages (%ld MiB)\n", pages, mib);
            return 2;
        }
        heap = malloc(size);
        if (heap == NULL) {
            fprintf(stderr, "spawn_floor: cannot allocate %ld MiB\n", mib);
            return 1;
        }
        memset((char *)heap, 1, size);
        program = "fork";
    }
    char *child_argv[2];
    child_argv[0] = (char *)program;
    child_argv[1] = NULL;

    long started = 0, running = 0, failed = 0;
    double t0 = now_ms();
    while (started < n || running > 0) {
        while (started < n && running < jobs) {
            pid_t pid;
            int rc = 0;
            if (fork_mode) {
                pid = fork();
                if (pid == 0) {
                    /* volatile: each read and write happens */
                    for (size_t i = 0; i < read_pages; ++i) (void)heap[i * 4096];
                    for (size_t i = 0; i < written_pages; ++i) heap[i * 4096] = 2;
                    _exit(0);
                }
                if (pid < 0) rc = errno;
            } else {
                rc = posix_spawn(&pid, program, NULL, NULL, child_argv, environ);
            }
            if (rc != 0) {
                if (fork_mode) fprintf(stderr, "spawn_floor: fork: %s\n", strerror(rc));
                else fprintf(stderr, "spawn_floor: posix_spawn %s: %s\n", program, strerror(rc));
                free((void *)heap);
                return 1;
            }
            ++started;
            ++running;
        }
        if (reap_one() != 0) ++failed;
        --running;
    }
    double total = now_ms() - t0;
    free((void *)heap); /* the sanitizer build's leak check runs at exit */

    printf("spawn_floor n=%ld jobs=%ld total_ms=%.3f per_task_ms=%.4f\n", n, jobs, total, total / (double)n);
    if (failed != 0) {
        fprintf(stderr, "spawn_floor: %ld of %ld children of %s failed\n", failed, n, program);
        return 1;
    }
    return 0;
}
