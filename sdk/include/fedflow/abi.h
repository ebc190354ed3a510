/*
 * fedflow/abi.h: the C boundary between fedflow-worker and a task plugin.
 *
 * This header is the whole contract. It is plain C (C99 and C++ compatible),
 * so that no C++ class, exception or allocator ever crosses the boundary.
 * Most plugins never include it directly: <fedflow/task.hpp> builds a plugin
 * from a C++ class with FEDFLOW_TASK(Class, "name").
 *
 * How a plugin is found and run
 * -----------------------------
 * 1. Discovery (in fedflow-host, no plugin code runs): the host reads the
 *    ELF section FEDFLOW_INFO_SECTION of every `*.so` on the plugin path. It
 *    holds one fedflow_plugin_info per task the plugin provides: magic, ABI
 *    version and name, with no pointers, so it can be read from the file.
 * 2. Loading (in fedflow-worker, one process per task): the worker dlopens
 *    the plugin and calls the one well-known exported symbol
 *    FEDFLOW_PLUGIN_ENUM_SYMBOL to find the fedflow_plugin of that name. It
 *    checks magic, abi_version and size before it touches anything else.
 * 3. Running: create() once, load() when the host says so, train() when the
 *    host says so (possibly much later: the two stages are separate
 *    commands), destroy() before the process exits.
 *
 * Versioning
 * ----------
 * Every struct that crosses the boundary starts with a version or size
 * field. A reader uses a field only when the size it was given covers it, so
 * fields can be appended without breaking older plugins or hosts. Changing
 * or removing a field bumps FEDFLOW_ABI_VERSION, and the host refuses a
 * plugin of another ABI version with a message that names both versions.
 *
 * Values
 * ------
 * Params, inputs and results are dictionaries of values (null, bool, int64,
 * double, string, bytes, list, dict) in the FFV1 encoding described in
 * <fedflow/detail/wire.hpp>. The plugin reads params and inputs from
 * buffers it is given, and writes its result into a buffer it asks the host
 * for (fedflow_host_services.result_alloc). Large byte values are written
 * straight into shared memory (fedflow_host_services.bytes_alloc) and only
 * referenced by id from the result, so they are never copied through a pipe.
 */
#ifndef FEDFLOW_ABI_H
#define FEDFLOW_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "FDFW" read as a little-endian uint32: first field of every plugin struct. */
#define FEDFLOW_ABI_MAGIC 0x57464446u

/* Bumped on any incompatible change of this header. */
#define FEDFLOW_ABI_VERSION 1u

/* Status codes, the value of fedflow_status.code and of the int32_t that
 * every entry point returns. Entry points return the same code they store. */
#define FEDFLOW_OK 0    /* the call did what it was asked */
#define FEDFLOW_ERROR 1 /* failed; message says why; not retried */
#define FEDFLOW_OUT_OF_MEMORY                                                                                          \
    2                     /* std::bad_alloc or CUDA out of memory:                                                     \
                             the host may retry the stage */
#define FEDFLOW_INVALID 3 /* bad argument (e.g. a malformed result) */

/* Longest message, including its terminating NUL. Longer text is cut. */
#define FEDFLOW_MESSAGE_MAX 1024

/*
 * Error status out-parameter. The caller zeroes it before a call; the
 * callee fills it only on failure. `message` is NUL-terminated UTF-8.
 */
typedef struct fedflow_status {
    int32_t code;                      /* FEDFLOW_OK, FEDFLOW_ERROR, ... */
    uint32_t reserved;                 /* zero */
    char message[FEDFLOW_MESSAGE_MAX]; /* why it failed; "" on success */
} fedflow_status;

/* A read-only byte range owned by the host. */
typedef struct fedflow_buffer {
    const uint8_t *data; /* NULL when size is 0 */
    uint64_t size;
} fedflow_buffer;

/* Log levels for fedflow_host_services.log. */
#define FEDFLOW_LOG_DEBUG 0
#define FEDFLOW_LOG_INFO 1
#define FEDFLOW_LOG_WARNING 2
#define FEDFLOW_LOG_ERROR 3

/* 2: set_estimates appended. 3: declare_gpu_memory appended. A plugin
 * reads an entry only when `size` covers it, so a plugin built against an
 * older version works with any worker. */
#define FEDFLOW_HOST_SERVICES_VERSION 3u

/*
 * Services the worker offers to the plugin, so that a plugin needs no
 * link-time symbol from Fedflow (it links with -Wl,--no-undefined).
 * Every function takes `host` as its first argument. All of them may be
 * called from the thread that runs load/train only.
 */
typedef struct fedflow_host_services {
    uint32_t version; /* FEDFLOW_HOST_SERVICES_VERSION */
    uint32_t size;    /* sizeof(fedflow_host_services) as the host built it */
    void *host;       /* opaque; pass it back on every call */

    /* Writes one line to the task's log (stderr.log), with the level.
     * `message` is NUL-terminated; it is copied before the call returns. */
    void (*log)(void *host, int32_t level, const char *message);

    /*
     * A zero-filled, writable buffer of `size` bytes in a new shared-memory
     * segment. On success returns the buffer and stores in *id the number by
     * which a result refers to it (FFV1 tag BYTES_REF). The buffer stays
     * mapped until the process exits; the plugin must not free it. On
     * failure returns NULL and fills *status (FEDFLOW_OUT_OF_MEMORY when
     * shared memory is exhausted).
     */
    uint8_t *(*bytes_alloc)(void *host, uint64_t size, uint64_t *id, fedflow_status *status);

    /*
     * The buffer, `size` bytes, into which train() encodes its result as
     * one FFV1 document whose top-level value is a dict. Call it at most
     * once per train(); the content is read by the host after train()
     * returns FEDFLOW_OK. A train() that returns FEDFLOW_OK without calling
     * it produced an empty dict. NULL and *status on failure.
     */
    uint8_t *(*result_alloc)(void *host, uint64_t size, fedflow_status *status);

    /*
     * Since version 2; call it only when `size` covers it (a worker built
     * before has no such entry).
     * The task's own estimates of the RAM and the GPU memory it needs, in
     * bytes, -1 for none: called during load (where a Python task's
     * constructor runs), they reach the host with load's end, and the host
     * admits the train, its retries and a reload of the task on them in
     * place of the plan's. A later call replaces an earlier one.
     */
    void (*set_estimates)(void *host, int64_t memory, int64_t gpu_memory);

    /*
     * Since version 3; call it only when `size` covers it.
     * On a simulated GPU (train's device is "sim:N", fedflow-host
     * --simulate-gpus): the task now holds `bytes` of GPU memory there, in
     * place of what it declared before, as if it had allocated them. The
     * host measures it as it measures a CUDA process's memory through NVML,
     * until the task declares another amount, its train fails, its next
     * train starts, or its process exits. Returns FEDFLOW_OK, or FEDFLOW_OUT_OF_MEMORY with
     * *status when the simulated GPU cannot hold that much (what the task
     * held stays). On any other device, and outside train, it does nothing
     * and returns FEDFLOW_INVALID: a task on "cuda:N" allocates for real.
     */
    int32_t (*declare_gpu_memory)(void *host, uint64_t bytes, fedflow_status *status);
} fedflow_host_services;

/*
 * One byte file of the inputs (a Bytes value of an earlier task's result,
 * the file beside its result.json), mapped read-only by the worker. The
 * mapping stays until the process exits, or in a kept worker (keep-loaded)
 * until its next round's context replaces this one.
 */
typedef struct fedflow_input_file {
    const uint8_t *data; /* NULL when size is 0 */
    uint64_t size;
    const char *path; /* absolute path of the file */
} fedflow_input_file;

/*
 * What a stage knows about its task. Owned by the worker; valid during the
 * call that receives it (the strings and buffers stay valid until the
 * process exits, so a plugin may keep views into them).
 */
typedef struct fedflow_context {
    uint32_t size;         /* sizeof(fedflow_context) as the host built it */
    uint32_t round;        /* round number, 0 outside rounds */
    const char *task_id;   /* unique in its group; [A-Za-z0-9._-]+ */
    const char *group;     /* the group's name */
    const char *workdir;   /* absolute; the process's cwd */
    const char *plan_dir;  /* absolute directory of the plan file */
    fedflow_buffer params; /* FFV1 dict: the group's params, overridden
                              by the task's own */
    fedflow_buffer inputs; /* FFV1 dict: group -> task id -> result of
                              the groups named in the plan's `inputs` */
    const fedflow_host_services *host;
    /* Appended after ABI 1's first context; read it only when `size`
     * covers it (an older worker's context ends before it).
     * FFV1 dict: group -> {"tasks": int, "finished": int, "round": int}
     * for each group of `inputs`: how many tasks the instance whose results
     * are in `inputs` had, how many of them finished, and its round (0
     * outside rounds). Lets a plugin say why a task's result is missing. */
    fedflow_buffer inputs_about;
    /* Appended after inputs_about; read them only when `size` covers them.
     * Set only for a plugin whose fedflow_plugin.features has
     * FEDFLOW_FEATURE_INPUT_FILES: then every byte value in `inputs` is a
     * BYTES_REF (FFV1 tag 7) whose id indexes this table, and its bytes are
     * the first n bytes of that file's mapping, not a copy. For any other
     * plugin they are NULL and 0, and `inputs` holds the bytes inline. */
    const fedflow_input_file *input_files;
    uint64_t input_file_count;
} fedflow_context;

/*
 * One kind of task a plugin provides. Returned by the enumerator; it must
 * stay valid while the library is loaded.
 */
typedef struct fedflow_plugin {
    uint32_t magic;       /* FEDFLOW_ABI_MAGIC */
    uint32_t abi_version; /* FEDFLOW_ABI_VERSION the plugin was built with */
    uint32_t size;        /* sizeof(fedflow_plugin) as the plugin built it */
    uint32_t reserved;    /* zero */
    const char *name;     /* registered name, as in the info section */

    /* A new task object, or NULL with *status filled. */
    void *(*create)(fedflow_status *status);
    /* Destroys what create() returned. Never fails. */
    void (*destroy)(void *task);
    /* CPU stage: prepare data. Must not touch a GPU. */
    int32_t (*load)(void *task, const fedflow_context *ctx, fedflow_status *status);
    /* GPU stage on `device` ("cuda:N", "cpu", or "sim:N": a simulated GPU,
     * on which the task must not touch CUDA and declares its GPU memory
     * through ctx->host->declare_gpu_memory); writes the result through
     * ctx->host->result_alloc. */
    int32_t (*train)(void *task, const fedflow_context *ctx, const char *device, fedflow_status *status);
    /* Appended after ABI 1's first table; the worker reads it only when
     * `size` covers it (an older plugin's table ends before it, and has
     * none of these features). FEDFLOW_FEATURE_* bits; other bits zero. */
    uint64_t features;
} fedflow_plugin;

/* fedflow_plugin.features: the plugin resolves byte values of
 * fedflow_context.inputs through fedflow_context.input_files (the C++ SDK
 * does). Without it, the worker copies every input byte file into `inputs`
 * before load. */
#define FEDFLOW_FEATURE_INPUT_FILES 0x1u
/* fedflow_plugin.features: train may be called again for a later round of
 * the same task in the same process (keep-loaded), with a context whose
 * round, workdir and inputs are that round's; the plugin reads them from
 * the context of each call (the C++ SDK does). Without it, the host never
 * keeps the plugin's workers: it loads the task anew every round. */
#define FEDFLOW_FEATURE_NEXT_ROUND 0x2u

/*
 * The well-known symbol every plugin exports:
 *
 *   int32_t fedflow_plugin_enum(const fedflow_plugin **plugin, uint32_t index);
 *
 * Stores the plugin with number `index` in *plugin and returns 1; returns 0
 * when there is no such index, a negative errno value on failure.
 */
#define FEDFLOW_PLUGIN_ENUM_SYMBOL "fedflow_plugin_enum"
typedef int32_t (*fedflow_plugin_enum_fn)(const fedflow_plugin **plugin, uint32_t index);

/* Longest plugin name, including its terminating NUL. */
#define FEDFLOW_NAME_MAX 56

/*
 * Static description of one task kind, placed in the ELF section
 * FEDFLOW_INFO_SECTION so that the host can list and check plugins without
 * loading them. 64 bytes, no pointers.
 */
typedef struct fedflow_plugin_info {
    uint32_t magic;              /* FEDFLOW_ABI_MAGIC */
    uint32_t abi_version;        /* FEDFLOW_ABI_VERSION */
    char name[FEDFLOW_NAME_MAX]; /* NUL-terminated, [A-Za-z0-9._-]+ */
} fedflow_plugin_info;

#define FEDFLOW_INFO_SECTION ".fedflow_info"

/* Places a fedflow_plugin_info for `name_literal` in the info section.
 * FEDFLOW_TASK does this for C++ plugins; C plugins use it directly. */
#define FEDFLOW_PLUGIN_INFO(ident, name_literal)                                                                       \
    __attribute__((section(FEDFLOW_INFO_SECTION), used, aligned(8)))                                                   \
    const fedflow_plugin_info ident = {FEDFLOW_ABI_MAGIC, FEDFLOW_ABI_VERSION, name_literal}

/*
 * Optional: the params a plugin takes, as text in the ELF section
 * FEDFLOW_PARAMS_SECTION, read by the host from the file (like the info
 * record) so that `fedflow-host validate` and the start of a run check a
 * plan's params against it; a plugin without it is not checked. The text is
 * TOML, one key per param:
 *
 *   dim  = { type = "integer", default = 20 }
 *   lr   = { type = "double", default = 0.1 }
 *   data = { type = "string", required = true }
 *
 * type: "bool", "integer", "double" (an integer is accepted too), "string",
 * "list" or "dict"; default: a value of that type, which the host adds to
 * the params of a task that does not set it; required: true when a task
 * must have it (no default then). At most FEDFLOW_PARAMS_MAX bytes. Added
 * after ABI 1's first plugins, which have no such section: it needs no new
 * ABI version, and older hosts ignore it.
 */
#define FEDFLOW_PARAMS_SECTION ".fedflow_params"
#define FEDFLOW_PARAMS_MAX 65536

/* Places the declaration `toml_literal` (a string literal) in the params
 * section. Once per plugin, at file scope. */
#define FEDFLOW_PARAMS(toml_literal)                                                                                   \
    __attribute__((section(FEDFLOW_PARAMS_SECTION), used)) static const char fedflow_params_declaration[] = toml_literal

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FEDFLOW_ABI_H */
