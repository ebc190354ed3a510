// Pins the C ABI of <fedflow/abi.h> as a C++ compiler sees it (LP64). It
// must agree with abi_layout.c: plugins are C or C++, the worker is C++.
#include <doctest/doctest.h>

#include <fedflow/abi.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace {

constexpr bool lp64 = sizeof(void*) == 8 && sizeof(long) == 8;

// What crosses the boundary must be plain data that C can read and write.
template <class T>
constexpr bool plain_c_data =
    std::is_standard_layout_v<T>&& std::is_trivially_copyable_v<T>&& std::is_trivially_default_constructible_v<T>;
static_assert(plain_c_data<fedflow_status>);
static_assert(plain_c_data<fedflow_buffer>);
static_assert(plain_c_data<fedflow_host_services>);
static_assert(plain_c_data<fedflow_context>);
static_assert(plain_c_data<fedflow_plugin>);
static_assert(plain_c_data<fedflow_plugin_info>);

}  // namespace

TEST_CASE("ABI macros keep their values") {
    CHECK(FEDFLOW_ABI_MAGIC == 0x57464446u);
    CHECK(FEDFLOW_ABI_VERSION == 1u);
    CHECK(FEDFLOW_OK == 0);
    CHECK(FEDFLOW_ERROR == 1);
    CHECK(FEDFLOW_OUT_OF_MEMORY == 2);
    CHECK(FEDFLOW_INVALID == 3);
    CHECK(FEDFLOW_MESSAGE_MAX == 1024);
    CHECK(FEDFLOW_NAME_MAX == 56);
    CHECK(FEDFLOW_LOG_DEBUG == 0);
    CHECK(FEDFLOW_LOG_INFO == 1);
    CHECK(FEDFLOW_LOG_WARNING == 2);
    CHECK(FEDFLOW_LOG_ERROR == 3);
    CHECK(FEDFLOW_HOST_SERVICES_VERSION == 3u);
    CHECK(std::string_view(FEDFLOW_PLUGIN_ENUM_SYMBOL) == "fedflow_plugin_enum");
    CHECK(std::string_view(FEDFLOW_INFO_SECTION) == ".fedflow_info");

    std::uint32_t magic = FEDFLOW_ABI_MAGIC;
    unsigned char bytes[4];
    std::memcpy(bytes, &magic, 4);
    if (bytes[0] == 'F') CHECK(std::memcmp(bytes, "FDFW", 4) == 0);  // little-endian
}

TEST_CASE("entry point types match the documented signatures") {
    using Enum = std::int32_t (*)(const fedflow_plugin**, std::uint32_t);
    CHECK(std::is_same_v<fedflow_plugin_enum_fn, Enum>);
    CHECK(std::is_same_v<decltype(fedflow_status::code), std::int32_t>);
    CHECK(std::is_same_v<decltype(fedflow_plugin::load),
                         std::int32_t (*)(void*, const fedflow_context*, fedflow_status*)>);
    CHECK(std::is_same_v<decltype(fedflow_plugin::train),
                         std::int32_t (*)(void*, const fedflow_context*, const char*, fedflow_status*)>);
    CHECK(std::is_same_v<decltype(fedflow_host_services::bytes_alloc),
                         std::uint8_t* (*)(void*, std::uint64_t, std::uint64_t*, fedflow_status*)>);
    CHECK(std::is_same_v<decltype(fedflow_host_services::result_alloc),
                         std::uint8_t* (*)(void*, std::uint64_t, fedflow_status*)>);
}

TEST_CASE("struct layout on LP64") {
    if (!lp64) {
        MESSAGE("not an LP64 target: layout pins do not apply");
        return;
    }
    SUBCASE("fedflow_status") {
        CHECK(sizeof(fedflow_status) == 1032);
        CHECK(alignof(fedflow_status) == 4);
        CHECK(offsetof(fedflow_status, code) == 0);
        CHECK(offsetof(fedflow_status, reserved) == 4);
        CHECK(offsetof(fedflow_status, message) == 8);
        CHECK(sizeof(fedflow_status::message) == FEDFLOW_MESSAGE_MAX);
    }
    SUBCASE("fedflow_buffer") {
        CHECK(sizeof(fedflow_buffer) == 16);
        CHECK(alignof(fedflow_buffer) == 8);
        CHECK(offsetof(fedflow_buffer, data) == 0);
        CHECK(offsetof(fedflow_buffer, size) == 8);
    }
    SUBCASE("fedflow_host_services") {
        CHECK(sizeof(fedflow_host_services) == 56);
        CHECK(alignof(fedflow_host_services) == 8);
        CHECK(offsetof(fedflow_host_services, version) == 0);
        CHECK(offsetof(fedflow_host_services, size) == 4);
        CHECK(offsetof(fedflow_host_services, host) == 8);
        CHECK(offsetof(fedflow_host_services, log) == 16);
        CHECK(offsetof(fedflow_host_services, bytes_alloc) == 24);
        CHECK(offsetof(fedflow_host_services, result_alloc) == 32);
        // Appended in services version 2: the entries above never move.
        CHECK(offsetof(fedflow_host_services, set_estimates) == 40);
        // Appended in services version 3.
        CHECK(offsetof(fedflow_host_services, declare_gpu_memory) == 48);
    }
    SUBCASE("fedflow_context") {
        CHECK(sizeof(fedflow_context) == 112);
        CHECK(alignof(fedflow_context) == 8);
        CHECK(offsetof(fedflow_context, size) == 0);
        CHECK(offsetof(fedflow_context, round) == 4);
        CHECK(offsetof(fedflow_context, task_id) == 8);
        CHECK(offsetof(fedflow_context, group) == 16);
        CHECK(offsetof(fedflow_context, workdir) == 24);
        CHECK(offsetof(fedflow_context, plan_dir) == 32);
        CHECK(offsetof(fedflow_context, params) == 40);
        CHECK(offsetof(fedflow_context, inputs) == 56);
        CHECK(offsetof(fedflow_context, host) == 72);
        CHECK(offsetof(fedflow_context, inputs_about) == 80);  // appended: read only when size covers it
        CHECK(offsetof(fedflow_context, input_files) == 96);   // appended after it
        CHECK(offsetof(fedflow_context, input_file_count) == 104);
    }
    SUBCASE("fedflow_input_file") {
        CHECK(sizeof(fedflow_input_file) == 24);
        CHECK(offsetof(fedflow_input_file, data) == 0);
        CHECK(offsetof(fedflow_input_file, size) == 8);
        CHECK(offsetof(fedflow_input_file, path) == 16);
    }
    SUBCASE("fedflow_plugin") {
        CHECK(sizeof(fedflow_plugin) == 64);
        CHECK(alignof(fedflow_plugin) == 8);
        CHECK(offsetof(fedflow_plugin, magic) == 0);
        CHECK(offsetof(fedflow_plugin, abi_version) == 4);
        CHECK(offsetof(fedflow_plugin, size) == 8);
        CHECK(offsetof(fedflow_plugin, reserved) == 12);
        CHECK(offsetof(fedflow_plugin, name) == 16);
        CHECK(offsetof(fedflow_plugin, create) == 24);
        CHECK(offsetof(fedflow_plugin, destroy) == 32);
        CHECK(offsetof(fedflow_plugin, load) == 40);
        CHECK(offsetof(fedflow_plugin, train) == 48);
        CHECK(offsetof(fedflow_plugin, features) == 56);  // appended: ABI 1's first tables are 56 bytes
    }
    SUBCASE("fedflow_plugin_info: 64 bytes, no pointers") {
        CHECK(sizeof(fedflow_plugin_info) == 64);
        CHECK(alignof(fedflow_plugin_info) == 4);
        CHECK(offsetof(fedflow_plugin_info, magic) == 0);
        CHECK(offsetof(fedflow_plugin_info, abi_version) == 4);
        CHECK(offsetof(fedflow_plugin_info, name) == 8);
        CHECK(sizeof(fedflow_plugin_info::name) == FEDFLOW_NAME_MAX);
    }
}
