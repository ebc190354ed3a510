/* Injects: a plugin built for ABI version 99, in its info section and in its
 * fedflow_plugin. The host must refuse it, naming both versions, and never
 * run it; should it run anyway, every entry point fails loudly. */
#include <fedflow/abi.h>

#include <string.h>

#define WRONG_ABI_VERSION 99u

__attribute__((section(FEDFLOW_INFO_SECTION), used, aligned(8)))
static const fedflow_plugin_info info = {FEDFLOW_ABI_MAGIC, WRONG_ABI_VERSION, "fault_wrong_abi"};

static int32_t refuse(fedflow_status *status) {
    status->code = FEDFLOW_ERROR;
    strcpy(status->message, "fault_wrong_abi ran: the host should have refused ABI version 99");
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
    FEDFLOW_ABI_MAGIC, WRONG_ABI_VERSION, sizeof(fedflow_plugin), 0, "fault_wrong_abi",
    create, destroy, load, train,
};

__attribute__((visibility("default"))) int32_t fedflow_plugin_enum(const fedflow_plugin **out, uint32_t index) {
    (void)info;
    if (index != 0) return 0;
    *out = &plugin;
    return 1;
}
