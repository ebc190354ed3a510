// Which Python an interpreter or a venv is, without running it
// (common/python_version.hpp): what validate checks a plan's `python` with.
#include "common/python_version.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

using namespace fedflow::python;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "fedflow-python-XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

}  // namespace

TEST_CASE("a venv: the version of its pyvenv.cfg, by its folder or its bin/python") {
    TempDir d;
    write(d.path / "venv" / "pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.4\n");
    write(d.path / "venv" / "bin" / "python3.12", "");
    fs::create_symlink("python3.12", d.path / "venv" / "bin" / "python");
    Interpreter a = inspect_interpreter((d.path / "venv" / "bin" / "python").string());
    CHECK(a.version == "3.12");
    CHECK(a.executable == (d.path / "venv" / "bin" / "python").string());
    Interpreter b = inspect_interpreter((d.path / "venv").string());
    CHECK(b.version == "3.12");
    CHECK(b.executable == (d.path / "venv" / "bin" / "python").string());
    SUBCASE("uv writes version_info") {
        write(d.path / "venv" / "pyvenv.cfg", "home = /opt/py\nversion_info = 3.13.0\n");
        CHECK(inspect_interpreter((d.path / "venv").string()).version == "3.13");
    }
    SUBCASE("a pyvenv.cfg without a version says so") {
        write(d.path / "venv" / "pyvenv.cfg", "home = /usr/bin\n");
        Interpreter c = inspect_interpreter((d.path / "venv").string());
        CHECK(c.version.empty());
        CHECK(c.error.find("pyvenv.cfg has no version line") != std::string::npos);
    }
}

TEST_CASE("an interpreter outside a venv: the name it resolves to") {
    TempDir d;
    write(d.path / "bin" / "python3.11", "");
    fs::create_symlink("python3.11", d.path / "bin" / "python3");
    CHECK(inspect_interpreter((d.path / "bin" / "python3").string()).version == "3.11");
    write(d.path / "bin" / "mypython", "");
    Interpreter i = inspect_interpreter((d.path / "bin" / "mypython").string());
    CHECK(i.version.empty());
    CHECK(i.error.find("cannot tell its Python version") != std::string::npos);
    Interpreter m = inspect_interpreter((d.path / "nothing").string());
    CHECK(m.error.find("does not exist") != std::string::npos);
}

TEST_CASE("a version mismatch names both versions and what to build against") {
    CHECK(version_mismatch("/v/bin/python", "3.11", "3.11").empty());
    std::string m = version_mismatch("/v/bin/python", "3.12", "3.11");
    CHECK(m.find("python = \"/v/bin/python\" is Python 3.12, but the python plugin embeds Python 3.11") == 0);
    CHECK(m.find("rebuild Fedflow against Python 3.12") != std::string::npos);
}
