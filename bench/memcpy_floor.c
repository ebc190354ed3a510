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
 * With DIR, also
 *   write       the write() of the same bytes into a new file in DIR (open,
 *               write, close; no fsync): the floor for "the host has the
 *               result's byte file written";
 *   shm_copy    the same bytes in a file of /dev/shm (a worker's segment),
 *               pread 256 KiB at a time into one buffer and written to a new
 *               file in DIR: the copy that byte_file::copy makes, without its
 *               hash (the floor of a host that reads the segment itself);
 *   shm_splice  the same /dev/shm file spliced through a 1 MiB pipe into a
 *               new file in DIR: byte_file::copy_in_kernel's copy (the
 *               segment's pages go into the pipe by reference; one copy,
 *               into the file's page cache).
 *
 * Output (one line, parsed by bench/result-size):
 *   memcpy_floor bytes=268435456 reps=5 fresh_ms=40.1 prefaulted_ms=20.3 write_ms=80.2 shm_copy_ms=95.0
 * shm_splice_ms=60.1
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, splice */

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

/* Writes n bytes of src to fd (named path in messages); 0, or -1 said on stderr. */
static int write_all(int fd, const char *path, const unsigned char *src, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, src + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            fprintf(stderr, "memcpy_floor: write %s: %s\n", path, w < 0 ? strerror(errno) : "wrote nothing");
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* A new, empty file at path (what was there is removed); -1 said on stderr. */
static int open_new(const char *path) {
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) fprintf(stderr, "memcpy_floor: open %s: %s\n", path, strerror(errno));
    return fd;
}

/* Closes fd and removes path; returns ms since t0, or -1 if anything failed. */
static double finish_timed(int fd, const char *path, int failed, double t0) {
    if (close(fd) != 0 && !failed) {
        fprintf(stderr, "memcpy_floor: close %s: %s\n", path, strerror(errno));
        failed = 1;
    }
    double t = now_ms() - t0;
    unlink(path);
    return failed ? -1.0 : t;
}

/* open + write + close of n bytes into a new file at path; -1 on error. */
static double time_write(const char *path, const unsigned char *src, size_t n) {
    double t0 = now_ms();
    int fd = open_new(path);
    if (fd < 0) return -1.0;
    return finish_timed(fd, path, write_all(fd, path, src, n) != 0, t0);
}

/* pread of n bytes from the file src_fd, 256 KiB at a time, each written to
 * a new file at path; -1 on error. */
static double time_shm_copy(int src_fd, const char *path, size_t n) {
    enum { chunk = 256 * 1024 };
    static unsigned char buf[chunk];
    double t0 = now_ms();
    int fd = open_new(path);
    if (fd < 0) return -1.0;
    int failed = 0;
    for (size_t done = 0; done < n && !failed;) {
        size_t want = n - done < chunk ? n - done : chunk;
        ssize_t r = pread(src_fd, buf, want, (off_t)done);
        if (r <= 0) {
            fprintf(stderr, "memcpy_floor: pread: %s\n", r < 0 ? strerror(errno) : "end of file");
            failed = 1;
        } else {
            failed = write_all(fd, path, buf, (size_t)r) != 0;
            done += (size_t)r;
        }
    }
    return finish_timed(fd, path, failed, t0);
}

/* n bytes of the file src_fd spliced through a pipe into a new file at path;
 * -1 on error. */
static double time_shm_splice(int src_fd, const char *path, size_t n) {
    double t0 = now_ms();
    int fd = open_new(path);
    if (fd < 0) return -1.0;
    int p[2];
    if (pipe(p) != 0) {
        fprintf(stderr, "memcpy_floor: pipe: %s\n", strerror(errno));
        return finish_timed(fd, path, 1, t0);
    }
    int cap = fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    size_t chunk = cap > 0 ? (size_t)cap : 65536;
    int failed = 0;
    loff_t from = 0;
    while ((size_t)from < n && !failed) {
        size_t want = n - (size_t)from < chunk ? n - (size_t)from : chunk;
        ssize_t in = splice(src_fd, &from, p[1], NULL, want, SPLICE_F_MOVE);
        if (in <= 0) {
            fprintf(stderr, "memcpy_floor: splice from /dev/shm: %s\n", in < 0 ? strerror(errno) : "end of file");
            failed = 1;
        }
        while (in > 0 && !failed) {
            ssize_t w = splice(p[0], NULL, fd, NULL, (size_t)in, SPLICE_F_MOVE);
            if (w <= 0) {
                fprintf(stderr, "memcpy_floor: splice into %s: %s\n", path, w < 0 ? strerror(errno) : "nothing");
                failed = 1;
            } else {
                in -= w;
            }
        }
    }
    close(p[0]);
    close(p[1]);
    return finish_timed(fd, path, failed, t0);
}

/* A file of /dev/shm holding n bytes of src (unlinked: only the fd holds it). */
static int shm_file(const unsigned char *src, size_t n) {
    char name[64];
    snprintf(name, sizeof name, "/dev/shm/memcpy_floor.%ld", (long)getpid());
    int fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "memcpy_floor: open %s: %s\n", name, strerror(errno));
        exit(1);
    }
    unlink(name);
    if (write_all(fd, name, src, n) != 0) exit(1);
    return fd;
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? parse_count("memcpy_floor", argv[1], "MIB") : 256;
    long reps = argc > 2 ? parse_count("memcpy_floor", argv[2], "REPS") : 5;
    const char *dir = argc > 3 ? argv[3] : NULL;
    size_t n = (size_t)mib << 20;

    unsigned char *src = xmalloc(n);
    memset(src, 0x5a, n);

    double fresh = -1.0, prefaulted = -1.0, wr = -1.0, shm_copy = -1.0, shm_splice = -1.0;
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
        int shm_fd = shm_file(src, n);
        for (long r = 0; r < reps; ++r) {
            double t = time_shm_copy(shm_fd, path, n);
            if (t < 0) return 1;
            if (shm_copy < 0 || t < shm_copy) shm_copy = t;
            t = time_shm_splice(shm_fd, path, n);
            if (t < 0) return 1;
            if (shm_splice < 0 || t < shm_splice) shm_splice = t;
        }
        close(shm_fd);
        free(path);
    }
    free(src);

    printf("memcpy_floor bytes=%zu reps=%ld fresh_ms=%.3f prefaulted_ms=%.3f", n, reps, fresh, prefaulted);
    if (dir != NULL) printf(" write_ms=%.3f shm_copy_ms=%.3f shm_splice_ms=%.3f", wr, shm_copy, shm_splice);
    printf("\n");
    return 0;
}
