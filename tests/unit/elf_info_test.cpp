// Plugin metadata read from the ELF file, without loading it.
#include "registry/elf_info.hpp"
#include "registry/plugin_registry.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/stat.h>

using namespace fedflow;
namespace fs = std::filesystem;

namespace {

// The bundled plugins' dir: the first entry of FEDFLOW_PLUGIN_PATH.
fs::path plugin_dir() {
    const char* d = std::getenv("FEDFLOW_PLUGIN_PATH");
    REQUIRE(d != nullptr);
    std::string s = d;
    return s.substr(0, s.find(':'));
}

}  // namespace

TEST_CASE("the echo plugin's info is read from its file") {
    auto info = elf::read(plugin_dir() / "echo.so");
    REQUIRE(info.plugins.size() == 1);
    CHECK(std::string(info.plugins[0].name) == "echo");
    CHECK(info.plugins[0].magic == FEDFLOW_ABI_MAGIC);
    CHECK(info.plugins[0].abi_version == FEDFLOW_ABI_VERSION);
    CHECK(info.has_entry);
}

TEST_CASE("files that are not plugins are rejected with the reason") {
    fs::path tmp = fs::temp_directory_path() / "fedflow-elf-test.so";
    std::string reason;
    SUBCASE("text, short or long, is not an ELF file") {
        std::ofstream(tmp) << "hello\n";
        CHECK_FALSE(PluginRegistry::inspect(tmp, reason));
        CHECK(reason == "not an ELF file: it does not start with the ELF magic \\x7fELF (a 6-byte file)");
        std::ofstream(tmp, std::ios::trunc) << "not an elf file at all, but long enough to hold a header........";
        CHECK_FALSE(PluginRegistry::inspect(tmp, reason));
        CHECK(reason == "not an ELF file: it does not start with the ELF magic \\x7fELF (a 64-byte file)");
    }
    SUBCASE("an empty file") {
        std::ofstream{tmp};
        CHECK_FALSE(PluginRegistry::inspect(tmp, reason));
        CHECK(reason == "not an ELF file: the file is empty");
    }
    SUBCASE("the ELF magic and nothing more is a truncated ELF file") {
        std::ofstream(tmp) << "\x7f"
                              "ELF";
        CHECK_FALSE(PluginRegistry::inspect(tmp, reason));
        CHECK(reason == "truncated ELF file");
    }
    SUBCASE("what is not a regular file is never opened, and is named") {
        fs::create_directory(tmp);
        CHECK_FALSE(PluginRegistry::inspect(tmp, reason));
        CHECK(reason == "it is a directory, not a plugin file (a shared library)");
        fs::remove(tmp);
        REQUIRE(::mkfifo(tmp.c_str(), 0600) == 0);  // opening it for reading would block
        CHECK_FALSE(PluginRegistry::inspect(tmp, reason));
        CHECK(reason == "it is a FIFO (named pipe), not a plugin file (a shared library)");
        CHECK_FALSE(PluginRegistry::inspect("/dev/zero", reason));
        CHECK(reason == "it is a character device, not a plugin file (a shared library)");
    }
    fs::remove(tmp);
    CHECK_FALSE(PluginRegistry::inspect("/nonexistent.so", reason));
    CHECK(reason == "does not exist");
}

TEST_CASE("a library without Fedflow info is not a plugin") {
    std::string reason;
    // libc is a shared library, but was not built with the SDK.
    for (const char* libc : {"/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"}) {
        if (!fs::exists(libc)) continue;
        CHECK_FALSE(PluginRegistry::inspect(libc, reason));
        CHECK(reason.find("not built with the Fedflow SDK") != std::string::npos);
    }
}

TEST_CASE("scanning the bundled plugin dir: sorted, first name wins") {
    PluginRegistry r;
    r.scan({plugin_dir(), plugin_dir() / "nonexistent", plugin_dir()});
    REQUIRE(r.find("echo") != nullptr);
    REQUIRE(r.find("noop") != nullptr);
    CHECK(r.find("echo")->path == fs::absolute(plugin_dir() / "echo.so").lexically_normal());
    // The second scan of the same dir finds each name taken already.
    bool shadowed = false;
    for (const auto& rej : r.rejected())
        shadowed = shadowed || rej.reason.find("already provided by") != std::string::npos;
    CHECK(shadowed);
    for (std::size_t i = 1; i < 2 && i < r.plugins().size(); ++i)
        CHECK(r.plugins()[i - 1].path.filename() < r.plugins()[i].path.filename());
}
