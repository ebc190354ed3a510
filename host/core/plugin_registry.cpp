#include "plugin_registry.hpp"

#include "elf_info.hpp"
#include "log.hpp"
#include "plan.hpp"

#include <fedflow/abi.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>

#include <unistd.h>

#ifndef FEDFLOW_PLUGIN_DIR_FROM_BINDIR
#define FEDFLOW_PLUGIN_DIR_FROM_BINDIR "../lib/fedflow/plugins"
#endif

namespace fs = std::filesystem;

namespace fedflow {

fs::path PluginRegistry::install_dir() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return {};
    fs::path dir = (exe.parent_path() / FEDFLOW_PLUGIN_DIR_FROM_BINDIR).lexically_normal();
    return fs::is_directory(dir, ec) ? dir : fs::path();
}

std::vector<fs::path> PluginRegistry::search_path(const std::vector<fs::path>& first) {
    std::vector<fs::path> out;
    auto add = [&](const fs::path& p) {
        if (p.empty()) return;
        fs::path abs = fs::absolute(p).lexically_normal();
        if (std::find(out.begin(), out.end(), abs) == out.end()) out.push_back(abs);
    };
    for (const auto& p : first) add(p);
    if (const char* env = std::getenv("FEDFLOW_PLUGIN_PATH")) {
        std::string s = env;
        std::size_t start = 0;
        while (start <= s.size()) {
            std::size_t end = s.find(':', start);
            if (end == std::string::npos) end = s.size();
            add(s.substr(start, end - start));
            start = end + 1;
        }
    }
    add(install_dir());
    return out;
}

std::optional<PluginFile> PluginRegistry::inspect(const fs::path& file, std::string& reason) {
    elf::Info info;
    try {
        info = elf::read(file);
    } catch (const std::exception& e) {
        reason = e.what();
        return std::nullopt;
    }
    if (info.plugins.empty()) {
        reason = fmt::format("no {} section: not built with the Fedflow SDK (FEDFLOW_TASK)", FEDFLOW_INFO_SECTION);
        return std::nullopt;
    }
    const fedflow_plugin_info& p = info.plugins.front();
    if (p.magic != FEDFLOW_ABI_MAGIC) {
        reason = "bad magic number in its plugin info";
        return std::nullopt;
    }
    if (p.abi_version != FEDFLOW_ABI_VERSION) {
        reason = fmt::format("plugin ABI version {}, this host supports version {}", p.abi_version, FEDFLOW_ABI_VERSION);
        return std::nullopt;
    }
    if (!plan::valid_name(p.name)) {
        reason = fmt::format("invalid plugin name '{}'", p.name);
        return std::nullopt;
    }
    if (!info.has_entry) {
        reason = fmt::format("does not export {} (the entry point FEDFLOW_TASK defines)", FEDFLOW_PLUGIN_ENUM_SYMBOL);
        return std::nullopt;
    }
    return PluginFile{p.name, p.abi_version, fs::absolute(file).lexically_normal(), info.python_version};
}

void PluginRegistry::scan(const std::vector<fs::path>& dirs) {
    for (const auto& dir : dirs) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
            log::debug("plugin path: {} is not a directory, skipped", dir.string());
            continue;
        }
        dirs_.push_back(dir);
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(dir, ec))
            if (e.path().extension() == ".so" && e.is_regular_file(ec)) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const auto& file : files) {
            std::string reason;
            auto p = inspect(file, reason);
            if (!p) {
                rejected_.push_back({file, reason});
                log::info("plugin path: {} rejected: {}", file.string(), reason);
                continue;
            }
            if (const PluginFile* first = find(p->name)) {
                reason = fmt::format("plugin '{}' is already provided by {}", p->name, first->path.string());
                rejected_.push_back({file, reason});
                log::info("plugin path: {} rejected: {}", file.string(), reason);
                continue;
            }
            plugins_.push_back(std::move(*p));
        }
    }
}

const PluginFile* PluginRegistry::find(const std::string& name) const {
    for (const auto& p : plugins_)
        if (p.name == name) return &p;
    return nullptr;
}

}  // namespace fedflow
