// elf_info.hpp: reads a plugin's fedflow_plugin_info records straight from
// its ELF file, so that the host can list and check plugins without
// loading them: no plugin code ever runs in the host.
#pragma once

#include <fedflow/abi.h>

#include <filesystem>
#include <string>
#include <vector>

namespace fedflow::elf {

struct Info {
    std::vector<fedflow_plugin_info> plugins;  // the FEDFLOW_INFO_SECTION records
    bool has_entry = false;                    // exports FEDFLOW_PLUGIN_ENUM_SYMBOL
    // The Python version ("3.11") a plugin that embeds Python declares in
    // its section ".fedflow_python" (plugins/python/); empty for others.
    std::string python_version;
    // The text of its FEDFLOW_PARAMS_SECTION (a TOML declaration of its
    // params); empty when it has none.
    std::string params;
};

// Reads path. Throws std::runtime_error with the reason when it is not a
// shared library for this machine, or is malformed.
Info read(const std::filesystem::path& path);

}  // namespace fedflow::elf
