/* Pins the C ABI of <fedflow/abi.h> as a C compiler sees it (LP64: x86_64,
 * aarch64). A change here breaks every plugin already built: bump
 * FEDFLOW_ABI_VERSION, then update these numbers on purpose. */
#include <fedflow/abi.h>

#include <stdio.h>
#include <string.h>

static int failures = 0;

#define EXPECT_EQ(expr, expected)                                                                                      \
    do {                                                                                                               \
        unsigned long long got_ = (unsigned long long)(expr);                                                          \
        if (got_ != (unsigned long long)(expected)) {                                                                  \
            fprintf(stderr, "%s:%d: %s is %llu, expected %llu\n", __FILE__, __LINE__, #expr, got_,                     \
                    (unsigned long long)(expected));                                                                   \
            ++failures;                                                                                                \
        }                                                                                                              \
    } while (0)

#define ALIGNOF(type)                                                                                                  \
    offsetof(                                                                                                          \
        struct {                                                                                                       \
            char c;                                                                                                    \
            type t;                                                                                                    \
        },                                                                                                             \
        t)

/* C99 has no _Static_assert; the info section must hold plain C data. */
FEDFLOW_PLUGIN_INFO(layout_info, "abi_layout_c");

int main(void) {
    if (sizeof(void *) != 8 || sizeof(long) != 8) {
        fprintf(stderr, "not an LP64 target: layout pins do not apply\n");
        return 77;
    }

    EXPECT_EQ(FEDFLOW_ABI_MAGIC, 0x57464446u);
    EXPECT_EQ(FEDFLOW_ABI_VERSION, 1u);
    EXPECT_EQ(FEDFLOW_OK, 0);
    EXPECT_EQ(FEDFLOW_ERROR, 1);
    EXPECT_EQ(FEDFLOW_OUT_OF_MEMORY, 2);
    EXPECT_EQ(FEDFLOW_INVALID, 3);
    EXPECT_EQ(FEDFLOW_MESSAGE_MAX, 1024);
    EXPECT_EQ(FEDFLOW_NAME_MAX, 56);
    EXPECT_EQ(FEDFLOW_LOG_DEBUG, 0);
    EXPECT_EQ(FEDFLOW_LOG_INFO, 1);
    EXPECT_EQ(FEDFLOW_LOG_WARNING, 2);
    EXPECT_EQ(FEDFLOW_LOG_ERROR, 3);
    EXPECT_EQ(FEDFLOW_HOST_SERVICES_VERSION, 3u);
    EXPECT_EQ(strcmp(FEDFLOW_PLUGIN_ENUM_SYMBOL, "fedflow_plugin_enum"), 0);
    EXPECT_EQ(strcmp(FEDFLOW_INFO_SECTION, ".fedflow_info"), 0);
    {
        /* "FDFW" in memory on a little-endian machine. */
        unsigned int magic = FEDFLOW_ABI_MAGIC;
        unsigned char bytes[4];
        memcpy(bytes, &magic, 4);
        if (bytes[0] == 'F') EXPECT_EQ(memcmp(bytes, "FDFW", 4), 0);
    }

    EXPECT_EQ(sizeof(fedflow_status), 1032);
    EXPECT_EQ(ALIGNOF(fedflow_status), 4);
    EXPECT_EQ(offsetof(fedflow_status, code), 0);
    EXPECT_EQ(offsetof(fedflow_status, reserved), 4);
    EXPECT_EQ(offsetof(fedflow_status, message), 8);

    EXPECT_EQ(sizeof(fedflow_buffer), 16);
    EXPECT_EQ(ALIGNOF(fedflow_buffer), 8);
    EXPECT_EQ(offsetof(fedflow_buffer, data), 0);
    EXPECT_EQ(offsetof(fedflow_buffer, size), 8);

    EXPECT_EQ(sizeof(fedflow_host_services), 56);
    EXPECT_EQ(ALIGNOF(fedflow_host_services), 8);
    EXPECT_EQ(offsetof(fedflow_host_services, version), 0);
    EXPECT_EQ(offsetof(fedflow_host_services, size), 4);
    EXPECT_EQ(offsetof(fedflow_host_services, host), 8);
    EXPECT_EQ(offsetof(fedflow_host_services, log), 16);
    EXPECT_EQ(offsetof(fedflow_host_services, bytes_alloc), 24);
    EXPECT_EQ(offsetof(fedflow_host_services, result_alloc), 32);
    EXPECT_EQ(offsetof(fedflow_host_services, set_estimates), 40);
    EXPECT_EQ(offsetof(fedflow_host_services, declare_gpu_memory), 48);

    EXPECT_EQ(sizeof(fedflow_context), 112);
    EXPECT_EQ(ALIGNOF(fedflow_context), 8);
    EXPECT_EQ(offsetof(fedflow_context, size), 0);
    EXPECT_EQ(offsetof(fedflow_context, round), 4);
    EXPECT_EQ(offsetof(fedflow_context, task_id), 8);
    EXPECT_EQ(offsetof(fedflow_context, group), 16);
    EXPECT_EQ(offsetof(fedflow_context, workdir), 24);
    EXPECT_EQ(offsetof(fedflow_context, plan_dir), 32);
    EXPECT_EQ(offsetof(fedflow_context, params), 40);
    EXPECT_EQ(offsetof(fedflow_context, inputs), 56);
    EXPECT_EQ(offsetof(fedflow_context, host), 72);
    EXPECT_EQ(offsetof(fedflow_context, inputs_about), 80);
    EXPECT_EQ(offsetof(fedflow_context, input_files), 96);
    EXPECT_EQ(offsetof(fedflow_context, input_file_count), 104);

    EXPECT_EQ(sizeof(fedflow_input_file), 24);
    EXPECT_EQ(offsetof(fedflow_input_file, data), 0);
    EXPECT_EQ(offsetof(fedflow_input_file, size), 8);
    EXPECT_EQ(offsetof(fedflow_input_file, path), 16);

    EXPECT_EQ(sizeof(fedflow_plugin), 64);
    EXPECT_EQ(ALIGNOF(fedflow_plugin), 8);
    EXPECT_EQ(offsetof(fedflow_plugin, magic), 0);
    EXPECT_EQ(offsetof(fedflow_plugin, abi_version), 4);
    EXPECT_EQ(offsetof(fedflow_plugin, size), 8);
    EXPECT_EQ(offsetof(fedflow_plugin, reserved), 12);
    EXPECT_EQ(offsetof(fedflow_plugin, name), 16);
    EXPECT_EQ(offsetof(fedflow_plugin, create), 24);
    EXPECT_EQ(offsetof(fedflow_plugin, destroy), 32);
    EXPECT_EQ(offsetof(fedflow_plugin, load), 40);
    EXPECT_EQ(offsetof(fedflow_plugin, train), 48);
    EXPECT_EQ(offsetof(fedflow_plugin, features), 56);

    EXPECT_EQ(sizeof(fedflow_plugin_info), 64);
    EXPECT_EQ(ALIGNOF(fedflow_plugin_info), 4);
    EXPECT_EQ(offsetof(fedflow_plugin_info, magic), 0);
    EXPECT_EQ(offsetof(fedflow_plugin_info, abi_version), 4);
    EXPECT_EQ(offsetof(fedflow_plugin_info, name), 8);

    /* FEDFLOW_PLUGIN_INFO compiles as C99 and fills the record. */
    EXPECT_EQ(layout_info.magic, FEDFLOW_ABI_MAGIC);
    EXPECT_EQ(layout_info.abi_version, FEDFLOW_ABI_VERSION);
    EXPECT_EQ(strcmp(layout_info.name, "abi_layout_c"), 0);
    EXPECT_EQ((unsigned long long)(const void *)&layout_info % 8, 0);

    if (failures != 0) {
        fprintf(stderr, "%d ABI layout check(s) failed\n", failures);
        return 1;
    }
    printf("ABI layout (C) as pinned\n");
    return 0;
}
