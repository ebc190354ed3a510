/* memcpy_floor: the baselines for bench/result-size.
 *
 *   memcpy_floor [MIB [REPS [DIR]]]       defaults: 256 5, no DIR
 *
 * Times one memcpy of MIB MiB (best of REPS):
 *   fresh       into a newly mapped buffer (mmap, not malloc: malloc may hand
 *               back pages it already has), so the copy also takes the page
 *               faults of the destination (what landing a result in new
 *               memory, a new shm segment or a new file's page cache costs);
 *   prefaulted  into a buffer already written once (memory bandwidth only).
 * With DIR, also the write() of the same bytes into a new file in DIR (open,
 * write, close; no fsync): the floor for "the host has the result's byte
 * file written".
 *
 * Output (one line, parsed by bench/result-size):
 *   memcpy_floor bytes=268435456 reps=5 fresh_ms=40.1 prefaulted_ms=20.3 write_ms=80.2
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "floor_util.h"

/* Called through a volatile pointer so the compiler cannot drop a copy into
 * a buffer that is freed without being read. */
static void *(*volatile copy_fn)(void *, const void *, size_t) = memcpy;

/* n bytes of memory never touched before. */
static unsigned char *fresh_map(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "memcpy_floor: cannot map %zu bytes: %s\n", n, strerror(errno));
        exit(1);
    }
    return p;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "memcpy_floor: cannot allocate %zu bytes\n", n);
        exit(1);
    }
    return p;
}

/* open + write + close of n bytes into a new file at path; -1 on error. */
static double time_write(const char *path, const unsigned char *src, size_t n) {
    unlink(path);
    double t0 = now_ms();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "memcpy_floor: open %s: %s\n", path, strerror(errno));
        return -1.0;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, src + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "memcpy_floor: write %s: %s\n", path, strerror(errno));
            close(fd);
            unlink(path);
            return -1.0;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0) {
        fprintf(stderr, "memcpy_floor: close %s: %s\n", path, strerror(errno));
        unlink(path);
        return -1.0;
    }
    double t = now_ms() - t0;
    unlink(path);
    return t;
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? parse_count("memcpy_floor", argv[1], "MIB") : 256;
    long reps = argc > 2 ? parse_count("memcpy_floor", argv[2], "REPS") : 5;
    const char *dir = argc > 3 ? argv[3] : NULL;
    size_t n = (size_t)mib << 20;

    unsigned char *src = xmalloc(n);
    memset(src, 0x5a, n);

    double fresh = -1.0, prefaulted = -1.0, wr = -1.0;
    for (long r = 0; r < reps; ++r) {
        unsigned char *dst = fresh_map(n);
        double t0 = now_ms();
        copy_fn(dst, src, n);
        double t = now_ms() - t0;
        if (dst[n - 1] != 0x5a) return 1;
        munmap(dst, n);
        if (fresh < 0 || t < fresh) fresh = t;
    }

    unsigned char *dst = xmalloc(n);
    memset(dst, 0, n);
    for (long r = 0; r < reps; ++r) {
        double t0 = now_ms();
        copy_fn(dst, src, n);
        double t = now_ms() - t0;
        if (prefaulted < 0 || t < prefaulted) prefaulted = t;
    }
    if (dst[n / 2] != 0x5a) return 1;
    free(dst);

    if (dir != NULL) {
        size_t len = strlen(dir) + 64;
        char *path = xmalloc(len);
        snprintf(path, len, "%s/memcpy_floor.%ld.bin", dir, (long)getpid());
        for (long r = 0; r < reps; ++r) {
            double t = time_write(path, src, n);
            if (t < 0) return 1;
            if (wr < 0 || t < wr) wr = t;
        }
        free(path);
    }
    free(src);

    printf("memcpy_floor bytes=%zu reps=%ld fresh_ms=%.3f prefaulted_ms=%.3f", n, reps, fresh, prefaulted);
    if (dir != NULL) printf(" write_ms=%.3f", wr);
    printf("\n");
    return 0;
}
