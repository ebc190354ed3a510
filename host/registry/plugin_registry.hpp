// plugin_registry.hpp: finds plugins on the plugin path.
//
// The search path is, in order: --plugin-path options, the plan's
// plugin-path, FEDFLOW_PLUGIN_PATH (colon-separated), and the bundled
// plugins' dirs: the install dir, or in a build tree the folders that
// <exe>.plugin-dirs lists (written by meson beside the host).
// Each dir is scanned for *.so in name order, so discovery is stable; the
// first plugin of a name wins. A file that cannot serve is rejected with the
// reason (not ELF, wrong ABI version, no entry symbol, shadowed, ...), and
// every rejection is logged. Only ELF metadata is read: no plugin code runs.
#pragma once

#include "plan/plan.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fedflow {

struct PluginFile {
    std::string name;
    std::uint32_t abi_version = 0;
    std::filesystem::path path;  // absolute
    std::string python_version;  // the Python it embeds ("3.11"), for the python plugin
    std::string params;          // its declaration of params (FEDFLOW_PARAMS), or empty
};

struct RejectedFile {
    std::filesystem::path path;
    std::string reason;
};

class PluginRegistry {
public:
    // The install dir: relative to the running executable, so an installed
    // tree can be moved. Empty when it does not exist.
    static std::filesystem::path install_dir();
    // Where the bundled plugins are: in a build tree, the folders listed in
    // the file `<this executable>.plugin-dirs` (one absolute path a line;
    // empty lines and lines starting with '#' are skipped), which meson
    // writes there and never installs; else the install dir.
    static std::vector<std::filesystem::path> bundled_dirs();
    // The full search path for these leading dirs (options, then the plan's).
    static std::vector<std::filesystem::path> search_path(const std::vector<std::filesystem::path>& first);

    // Scans dirs (missing dirs are skipped, and logged at debug level).
    void scan(const std::vector<std::filesystem::path>& dirs);

    // The plugin registered under name, or nullptr.
    const PluginFile* find(const std::string& name) const;
    // The plugin file of every group of the plan, in plan order: a
    // registered name, or a path to a .so relative to the plan. Throws
    // plan::PlanError (file:line:column of each group's plugin key) for a
    // plugin that is not on the search path or cannot serve.
    std::vector<PluginFile> resolve(const plan::Plan& plan) const;
    // Checks every task's params against the declaration of its group's
    // plugin (plugins: resolve's answer) and adds the declared defaults a
    // task does not set. Throws plan::PlanError: a param of the wrong type
    // or a required one missing, where the plan writes it; a malformed
    // declaration, named by the plugin's file.
    static void check_params(plan::Plan& plan, const std::vector<PluginFile>& plugins);
    // Checks one file named by path; its first plugin, or nullopt and reason.
    static std::optional<PluginFile> inspect(const std::filesystem::path& file, std::string& reason);

    const std::vector<PluginFile>& plugins() const noexcept { return plugins_; }
    const std::vector<RejectedFile>& rejected() const noexcept { return rejected_; }
    const std::vector<std::filesystem::path>& dirs() const noexcept { return dirs_; }

private:
    std::vector<std::filesystem::path> dirs_;
    std::vector<PluginFile> plugins_;
    std::vector<RejectedFile> rejected_;
};

}  // namespace fedflow
