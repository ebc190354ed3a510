#include "common/python_version.hpp"

#include <filesystem>
#include <fstream>
#include <regex>

namespace fs = std::filesystem;

namespace fedflow::python {

namespace {

// "3.12.4" -> "3.12"; "" when it is not a version.
std::string major_minor(const std::string& text) {
    static const std::regex re(R"(^\s*(\d+)\.(\d+)(\.\S*)?\s*$)");
    std::smatch m;
    if (!std::regex_match(text, m, re)) return {};
    return m[1].str() + "." + m[2].str();
}

std::string from_pyvenv_cfg(const fs::path& cfg) {
    std::ifstream in(cfg);
    std::string line;
    static const std::regex kv(R"(^\s*(version|version_info)\s*=\s*(.*?)\s*$)");
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, kv)) {
            std::string v = major_minor(m[2].str());
            if (!v.empty()) return v;
        }
    }
    return {};
}

}  // namespace

Interpreter inspect_interpreter(const std::string& path) {
    Interpreter out;
    std::error_code ec;
    fs::path p(path);
    if (fs::is_directory(p, ec)) p = p / "bin" / "python";
    out.executable = p.string();
    if (!fs::exists(p, ec)) {
        out.error = "python = \"" + path + "\": " + p.string() + " does not exist";
        return out;
    }
    if (fs::is_directory(p, ec)) {
        out.error = "python = \"" + path + "\": " + p.string() + " is a folder, not an interpreter";
        return out;
    }
    for (const fs::path& dir : {p.parent_path(), p.parent_path().parent_path()}) {
        fs::path cfg = dir / "pyvenv.cfg";
        if (fs::is_regular_file(cfg, ec)) {
            out.version = from_pyvenv_cfg(cfg);
            if (out.version.empty()) out.error = "python = \"" + path + "\": " + cfg.string() + " has no version line";
            return out;
        }
    }
    fs::path real = fs::canonical(p, ec);
    static const std::regex name(R"(^python(\d+)\.(\d+)$)");
    std::smatch m;
    std::string file = ec ? p.filename().string() : real.filename().string();
    if (std::regex_match(file, m, name)) {
        out.version = m[1].str() + "." + m[2].str();
        return out;
    }
    out.error = "python = \"" + path + "\": cannot tell its Python version (no pyvenv.cfg beside it, and " +
                (ec ? p.string() : real.string()) + " is not named pythonX.Y)";
    return out;
}

std::string version_mismatch(const std::string& path, const std::string& version, const std::string& embedded) {
    if (version == embedded) return {};
    return "python = \"" + path + "\" is Python " + version + ", but the python plugin embeds Python " + embedded +
           ": rebuild Fedflow against Python " + version + "'s python3-embed (its python" + version +
           "-dev headers and libpython" + version +
           "; meson setup finds it through pkg-config, e.g. "
           "PKG_CONFIG_PATH=<its prefix>/lib/pkgconfig), or name an interpreter of Python " +
           embedded;
}

}  // namespace fedflow::python
