/* Injects: a plugin built for ABI version 99, in its info section and in its
 * fedflow_plugin. The host must refuse it, naming both versions, and never
 * run it; should it run anyway, every entry point fails loudly.
 *
 * Built a second time as fault_table_abi (-DFAULT_TABLE_ABI_ONLY): its info
 * section says ABI 1, so the host's discovery, which reads only the file,
 * accepts it, but its fedflow_plugin table says 99. The worker must check
 * the table itself and fail the task in stage start, naming both versions,
 * before it calls anything. */
#include <fedflow/abi.h>

#include <string.h>

#define WRONG_ABI_VERSION 99u

#ifdef FAULT_TABLE_ABI_ONLY
#define PLUGIN_NAME "fault_table_abi"
#define INFO_ABI_VERSION FEDFLOW_ABI_VERSION
#else
#define PLUGIN_NAME "fault_wrong_abi"
#define INFO_ABI_VERSION WRONG_ABI_VERSION
#endif

__attribute__((section(FEDFLOW_INFO_SECTION), used,
               aligned(8))) static const fedflow_plugin_info info = {FEDFLOW_ABI_MAGIC, INFO_ABI_VERSION, PLUGIN_NAME};

static int32_t refuse(fedflow_status *status) {
    status->code = FEDFLOW_ERROR;
    strcpy(status->message, PLUGIN_NAME " ran: it should have been refused for ABI version 99");
    return FEDFLOW_ERROR;
}

static void *create(fedflow_status *status) {
    refuse(status);
    return NULL;
}

static void destroy(void *task) { (void)task; }

static int32_t load(void *task, const fedflow_context *ctx, fedflow_status *status) {
    (void)task;
    (void)ctx;
    return refuse(status);
}

static int32_t train(void *task, const fedflow_context *ctx, const char *device, fedflow_status *status) {
    (void)task;
    (void)ctx;
    (void)device;
    return refuse(status);
}

static const fedflow_plugin plugin = {
    FEDFLOW_ABI_MAGIC, WRONG_ABI_VERSION, sizeof(fedflow_plugin), 0, PLUGIN_NAME, create, destroy, load, train,
    0 /* features */,
};

__attribute__((visibility("default"))) int32_t fedflow_plugin_enum(const fedflow_plugin **out, uint32_t index) {
    (void)info;
    if (index != 0) return 0;
    *out = &plugin;
    return 1;
}
