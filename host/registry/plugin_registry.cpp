#include "registry/plugin_registry.hpp"

#include "common/log.hpp"
#include "common/names.hpp"
#include "common/python_version.hpp"
#include "common/text.hpp"
#include "common/units.hpp"
#include "plan/plan.hpp"
#include "registry/elf_info.hpp"

#include <fedflow/abi.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

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

std::vector<fs::path> PluginRegistry::bundled_dirs() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return {};
    fs::path list = exe;
    list += ".plugin-dirs";
    std::ifstream in(list);
    if (!in) {
        fs::path dir = install_dir();
        return dir.empty() ? std::vector<fs::path>{} : std::vector<fs::path>{dir};
    }
    std::vector<fs::path> out;
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line.front() != '#') out.emplace_back(line);
    return out;
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
    for (const auto& dir : bundled_dirs()) add(dir);
    return out;
}

std::optional<PluginFile> PluginRegistry::inspect(const fs::path& file, std::string& reason) {
    // Only a regular file is read: opening a FIFO would block, and a
    // device would be read as if it were a library.
    std::error_code ec;
    fs::file_status st = fs::status(file, ec);
    if (st.type() == fs::file_type::not_found) {
        reason = "does not exist";
        return std::nullopt;
    }
    if (ec) {
        reason = fmt::format("cannot be examined: {}", ec.message());
        return std::nullopt;
    }
    if (!fs::is_regular_file(st)) {
        reason = fmt::format("it is {}, not a plugin file (a shared library)", units::file_kind(st.type()));
        return std::nullopt;
    }
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
        reason = fmt::format("plugin ABI version {}, this host supports version {}", p.abi_version,
                             FEDFLOW_ABI_VERSION);
        return std::nullopt;
    }
    if (!names::valid(p.name)) {
        reason = fmt::format("invalid plugin name '{}'", p.name);
        return std::nullopt;
    }
    if (!info.has_entry) {
        reason = fmt::format("does not export {} (the entry point FEDFLOW_TASK defines)", FEDFLOW_PLUGIN_ENUM_SYMBOL);
        return std::nullopt;
    }
    return PluginFile{p.name, p.abi_version, fs::absolute(file).lexically_normal(), info.python_version, info.params};
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

std::vector<PluginFile> PluginRegistry::resolve(const plan::Plan& plan) const {
    std::vector<PluginFile> out;
    std::vector<std::string> errors;
    auto error = [&](const plan::GroupSpec& g, const std::string& message) {
        errors.push_back(fmt::format("{}:{}:{}: plugin of group '{}': {}", plan.given_file.string(),
                                     g.plugin_where.line, g.plugin_where.column, g.name, message));
    };
    for (const auto& g : plan.groups) {
        bool is_path = g.plugin.find('/') != std::string::npos || fs::path(g.plugin).extension() == ".so";
        if (is_path) {
            fs::path file = (plan.dir / g.plugin).lexically_normal();
            std::string reason;
            std::error_code ec;
            if (!fs::exists(file, ec) && !ec) {
                error(g, fmt::format("{} does not exist", file.string()));
                out.emplace_back();
            } else if (auto p = inspect(file, reason)) {
                out.push_back(*p);
            } else {
                error(g, fmt::format("{} cannot be used: {}", file.string(), reason));
                out.emplace_back();
            }
            continue;
        }
        if (const PluginFile* p = find(g.plugin)) {
            out.push_back(*p);
            continue;
        }
        std::vector<std::string_view> names;
        for (const auto& p : plugins_) names.push_back(p.name);
        const std::string hint = text::did_you_mean(g.plugin, names);
        std::string rejected;
        for (const auto& r : rejected_)
            if (r.path.stem().string().find(g.plugin) != std::string::npos)
                rejected += fmt::format("; {} was rejected: {}", r.path.string(), r.reason);
        std::string dirs;
        for (const auto& d : dirs_) dirs += (dirs.empty() ? "" : ", ") + d.string();
        error(g, fmt::format("no plugin named '{}'{} on the plugin path ({}){}", g.plugin, hint,
                             dirs.empty() ? "no plugin directory exists" : dirs, rejected));
        out.emplace_back();
    }
    // A plugin that embeds Python runs a plan's `python` interpreter or venv
    // only when both are the same major.minor.
    for (std::size_t i = 0; i < plan.groups.size(); ++i) {
        if (out[i].python_version.empty()) continue;
        std::set<std::string> seen;
        for (const plan::TaskSpec* t : plan.groups[i].specs()) {
            const Value* v = t->params.find("python");
            if (v == nullptr || !v->is<std::string>() || !seen.insert(v->as<std::string>()).second) continue;
            const std::string& path = v->as<std::string>();
            std::string resolved = fs::path(path).is_absolute() ? path : (plan.dir / path).string();
            python::Interpreter in = python::inspect_interpreter(resolved);
            std::string problem = in.version.empty()
                                      ? in.error
                                      : python::version_mismatch(path, in.version, out[i].python_version);
            if (!problem.empty()) error(plan.groups[i], problem);
        }
        // Its `module`, where it names a file (as fedflow/_runtime.py
        // reads it: a .py, or a path with a '/'), is looked for now: a
        // typo found by validate, not by every task hours into a run.
        std::set<std::string> modules;
        for (const plan::TaskSpec* t : plan.groups[i].specs()) {
            const Value* v = t->params.find("module");
            if (v == nullptr || !v->is<std::string>() || !modules.insert(v->as<std::string>()).second) continue;
            const std::string& module = v->as<std::string>();
            if (!module.ends_with(".py") && module.find('/') == std::string::npos) continue;
            const fs::path path = fs::path(module).is_absolute() ? fs::path(module) : plan.dir / module;
            std::error_code ec;
            if (!fs::is_regular_file(path, ec))
                error(plan.groups[i], fmt::format("param 'module': {} is not a file (a .py file is relative to the "
                                                  "plan's folder {})",
                                                  path.string(), plan.dir.string()));
        }
    }
    if (!errors.empty()) throw plan::PlanError(std::move(errors));
    return out;
}

void PluginRegistry::check_params(plan::Plan& plan, const std::vector<PluginFile>& plugins) {
    std::vector<std::string> errors;
    std::map<fs::path, std::vector<plan::ParamDecl>> parsed;  // a plugin of many groups is parsed once
    for (std::size_t i = 0; i < plan.groups.size() && i < plugins.size(); ++i) {
        const PluginFile& p = plugins[i];
        if (p.params.empty()) continue;
        auto it = parsed.find(p.path);
        if (it == parsed.end()) {
            try {
                it = parsed
                         .emplace(p.path,
                                  plan::parse_param_declaration(p.params,
                                                                p.path.string() + " (its " FEDFLOW_PARAMS_SECTION ")"))
                         .first;
            } catch (const plan::PlanError& e) {
                for (const auto& m : e.messages())
                    errors.push_back(fmt::format("plugin '{}' declares its params wrongly: {}", p.name, m));
                parsed.emplace(p.path, std::vector<plan::ParamDecl>());
                continue;
            }
        }
        plan::apply_param_declaration(plan, i, it->second, p.name, errors);
    }
    if (!errors.empty()) throw plan::PlanError(std::move(errors));
}

}  // namespace fedflow
