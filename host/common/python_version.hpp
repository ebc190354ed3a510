// python_version.hpp: which Python (major.minor) an interpreter or a virtual
// environment is, without running it. Shared by fedflow-host (validate: a
// plan's `python` against the version the python plugin embeds) and the
// python plugin itself (the same check before it starts Python), so both say
// the same thing. Standard C++17 only: the plugin compiles it too.
#pragma once

#include <string>

namespace fedflow::python {

struct Interpreter {
    std::string executable;  // the interpreter; for a venv folder, its bin/python
    std::string version;     // "3.11"; empty when it could not be told
    std::string error;       // why not, when version is empty
};

// path: an interpreter (".../bin/python", "/usr/bin/python3.12") or the
// folder of a virtual environment. The version comes from the venv's
// pyvenv.cfg (`version` or `version_info`, in the interpreter's folder or
// the one above it), else from the name of the file the path resolves to
// (python3.12).
Interpreter inspect_interpreter(const std::string& path);

// "" when `version` ("3.12") may run with the embedded `embedded` ("3.11"),
// else the error to show: it names both and what to build against.
std::string version_mismatch(const std::string& path, const std::string& version, const std::string& embedded);

}  // namespace fedflow::python
