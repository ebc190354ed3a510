// The bundled plugin `python`: a task written in Python, run in the worker's
// own process by an embedded CPython.
//
//   plugin = "python"
//   params = { module = "client.py", class = "Client", init = { lr = 0.1 },
//              python = "/opt/torch/.venv/bin/python" }     # optional
//
// load() starts Python (once per process), imports the module, constructs
// the class with the task id and `init`, and calls its load(); train(device)
// calls train on the same object and converts the dict it returns. The
// Python side of that (import, construct, describe an exception) is the
// package `fedflow` (python/fedflow/_runtime.py); this file starts the
// interpreter and converts values. The user's guide is docs/python.md.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "common/python_version.hpp"

#include <fedflow/detail/wire.hpp>
#include <fedflow/task.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace fs = std::filesystem;
using fedflow::Bytes;
using fedflow::Dict;
using fedflow::List;
using fedflow::Value;

#define FEDFLOW_STR2(x) #x
#define FEDFLOW_STR(x) FEDFLOW_STR2(x)
#define FEDFLOW_PY_VERSION FEDFLOW_STR(PY_MAJOR_VERSION) "." FEDFLOW_STR(PY_MINOR_VERSION)

// The Python version this plugin embeds, where fedflow-host reads it from
// the file (no plugin code runs in the host) to check a plan's `python`.
extern "C" __attribute__((section(".fedflow_python"), used)) const char fedflow_python_version[16] = FEDFLOW_PY_VERSION;

namespace {

// Bytes copied into shared memory rather than into the result document from
// this size on: one copy instead of two, and no large inline FFV1 value.
constexpr Py_ssize_t kShmThreshold = 64 * 1024;

// An owned reference.
class Ref {
public:
    Ref() = default;
    explicit Ref(PyObject* p) noexcept : p_(p) {}
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Ref& operator=(Ref&& o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~Ref() { Py_XDECREF(p_); }
    PyObject* get() const noexcept { return p_; }
    PyObject* release() noexcept { return std::exchange(p_, nullptr); }
    explicit operator bool() const noexcept { return p_ != nullptr; }

private:
    PyObject* p_ = nullptr;
};

// ---- the stage that runs now -------------------------------------------

// The Context of the stage in progress (nullptr between stages), for the
// host module's bytes() and log().
fedflow::Context* g_ctx = nullptr;
bool g_in_train = false;
// Buffers that bytes() made in this train: a result value whose memory is
// exactly one of them is sent by reference, without a copy.
std::vector<Bytes> g_shm;

struct StageScope {
    StageScope(fedflow::Context& ctx, bool train) {
        g_ctx = &ctx;
        g_in_train = train;
    }
    ~StageScope() {
        g_ctx = nullptr;
        g_in_train = false;
    }
};

// ---- errors ----------------------------------------------------------------

PyObject* g_runtime = nullptr;  // fedflow._runtime, for the process's life
// Whether a Python error's whole traceback goes to stderr: not in the fork
// server's preload, whose stderr is the host's; its message (the type, the
// text and the last frames of the module's own code) is in the host's
// warning, and the tasks, which then start by exec, import the module again.
bool g_print_tracebacks = true;

// Turns the pending Python exception into a C++ one: the type, the message
// and the last frames (report.json); the whole traceback goes to stderr.log.
// MemoryError and CUDA out-of-memory become an out-of-memory failure, which
// the host retries.
[[noreturn]] void throw_python_error(const std::string& what) {
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    if (type == nullptr) throw std::runtime_error(what + " failed without a Python exception");
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != nullptr) PyException_SetTraceback(value, tb);
    Ref t(type), v(value), b(tb);
    if (g_runtime != nullptr) {
        Ref described(PyObject_CallMethod(g_runtime, "describe", "O", v.get()));
        const char *message = nullptr, *full = nullptr;
        int oom = 0;
        if (described && PyArg_ParseTuple(described.get(), "pss", &oom, &message, &full)) {
            if (g_print_tracebacks) {
                std::fputs(full, stderr);
                std::fflush(stderr);
            }
            if (oom) throw fedflow::detail::OutOfMemory(message);
            throw std::runtime_error(message);
        }
        PyErr_Clear();
    }
    PyErr_Restore(t.release(), v.release(), b.release());
    PyErr_Print();
    throw std::runtime_error(what + " failed with a Python exception (see stderr.log)");
}

PyObject* check(PyObject* p, const std::string& what) {
    if (p == nullptr) throw_python_error(what);
    return p;
}

// ---- Input byte files ---------------------------------------------------------
//
// The worker unmaps a round's inputs when a kept task's next round begins
// (worker/main.cpp): a view of its mapping that the task kept would then
// read the next round's data (the new file mapped at the same address), or
// crash. So each byte file of the inputs is mapped again here, by a
// MappedFile that every memoryview (and numpy array, torch tensor) made of
// it keeps alive: what the task keeps stays the round's data, and the file
// is unmapped once the task holds nothing of it.

struct MappedFile {
    PyObject_HEAD void* data;
    Py_ssize_t size;
};

int mapped_file_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    auto* m = reinterpret_cast<MappedFile*>(self);
    return PyBuffer_FillInfo(view, self, m->data, m->size, 1, flags);  // read-only
}

void mapped_file_dealloc(PyObject* self) {
    auto* m = reinterpret_cast<MappedFile*>(self);
    if (m->data != nullptr) ::munmap(m->data, static_cast<std::size_t>(m->size));
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);  // a heap type: each instance holds a reference to it
}

PyTypeObject* mapped_file_type() {
    static PyObject* type = nullptr;
    if (type == nullptr) {
        static PyType_Slot slots[] = {
            {Py_tp_dealloc, reinterpret_cast<void*>(mapped_file_dealloc)},
            {Py_bf_getbuffer, reinterpret_cast<void*>(mapped_file_getbuffer)},
            {Py_tp_doc, const_cast<char*>("An input byte file, mapped read-only while a view of it lives.")},
            {0, nullptr}};
        static PyType_Spec spec = {"fedflow.MappedFile", sizeof(MappedFile), 0, Py_TPFLAGS_DEFAULT, slots};
        type = check(PyType_FromSpec(&spec), "fedflow.MappedFile");
    }
    return reinterpret_cast<PyTypeObject*>(type);
}

// A read-only memoryview of b, an input byte file (b.file()), that stays
// valid as long as it (or what is made of it) lives.
Ref map_input_file(const Bytes& b) {
    const auto n = static_cast<std::size_t>(b.size());
    void* p = MAP_FAILED;
    const int fd = ::open(b.file(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        p = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, 0);
        ::close(fd);  // the mapping keeps the file
    }
    if (p == MAP_FAILED) {
        // Gone or unreadable since the worker mapped it (the worker's
        // mapping still holds it): a copy.
        Ref copy(check(PyBytes_FromStringAndSize(reinterpret_cast<const char*>(b.data()), static_cast<Py_ssize_t>(n)),
                       "bytes"));
        return Ref(check(PyMemoryView_FromObject(copy.get()), "memoryview"));
    }
    MappedFile* m = PyObject_New(MappedFile, mapped_file_type());
    if (m == nullptr) {
        ::munmap(p, n);
        throw_python_error("fedflow.MappedFile");
    }
    m->data = p;
    m->size = static_cast<Py_ssize_t>(n);
    Ref owner(reinterpret_cast<PyObject*>(m));
    return Ref(check(PyMemoryView_FromObject(owner.get()), "memoryview"));
}

// ---- Value -> Python ---------------------------------------------------------

Ref to_python(const Value& v) {
    switch (v.type()) {
    case Value::Type::null: Py_INCREF(Py_None); return Ref(Py_None);
    case Value::Type::boolean: return Ref(PyBool_FromLong(v.as<bool>()));
    case Value::Type::integer: return Ref(check(PyLong_FromLongLong(v.as<std::int64_t>()), "int"));
    case Value::Type::real: return Ref(check(PyFloat_FromDouble(v.as<double>()), "float"));
    case Value::Type::string: {
        const std::string& s = v.as<std::string>();
        return Ref(check(PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape"), "str"));
    }
    case Value::Type::bytes: {
        // An input byte file: a read-only view of a mapping of its own, no
        // copy. Any other bytes (none come in params or inputs today) are
        // copied: the worker's memory they are in may not outlive a round.
        const Bytes& b = v.as<Bytes>();
        if (b.file() != nullptr && b.size() != 0) return map_input_file(b);
        Ref copy(
            check(PyBytes_FromStringAndSize(reinterpret_cast<const char*>(b.data()), static_cast<Py_ssize_t>(b.size())),
                  "bytes"));
        return Ref(check(PyMemoryView_FromObject(copy.get()), "memoryview"));
    }
    case Value::Type::list: {
        const List& l = v.as<List>();
        Ref out(check(PyList_New(static_cast<Py_ssize_t>(l.size())), "list"));
        Py_ssize_t i = 0;
        for (const Value& item : l) PyList_SET_ITEM(out.get(), i++, to_python(item).release());
        return out;
    }
    case Value::Type::dict: {
        Ref out(check(PyDict_New(), "dict"));
        for (const auto& [k, item] : v.as<Dict>()) {
            Ref value = to_python(item);
            if (PyDict_SetItemString(out.get(), k.c_str(), value.get()) != 0) throw_python_error("dict");
        }
        return out;
    }
    }
    Py_INCREF(Py_None);
    return Ref(Py_None);
}

// ---- Python -> Value -----------------------------------------------------------

std::string repr_type(PyObject* o) {
    const char* name = Py_TYPE(o)->tp_name;
    return name != nullptr ? name : "object";
}

Bytes bytes_of(PyObject* o, const std::string& path) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_C_CONTIGUOUS) != 0) {
        PyErr_Clear();
        throw std::invalid_argument(path + ": a " + repr_type(o) +
                                    " whose memory is not contiguous cannot be returned (copy it first)");
    }
    struct Release {
        Py_buffer* v;
        ~Release() { PyBuffer_Release(v); }
    } release{&view};
    const auto* data = static_cast<const std::uint8_t*>(view.buf);
    auto n = static_cast<std::size_t>(view.len);
    for (const Bytes& b : g_shm)
        if (b.data() == data && b.size() == n) return b;  // made by bytes(): by reference
    if (view.len >= kShmThreshold && g_ctx != nullptr) {
        Bytes out = g_ctx->bytes(n);
        std::memcpy(out.data(), data, n);
        return out;
    }
    return Bytes(data, n);
}

Value from_python(PyObject* o, const std::string& path) {
    if (o == Py_None) return Value();
    if (PyBool_Check(o)) return Value(o == Py_True);
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long i = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow != 0)
            throw std::invalid_argument(path + ": the integer does not fit in 64 bits (send it as a float or a str)");
        if (i == -1 && PyErr_Occurred()) throw_python_error(path);
        return Value(static_cast<std::int64_t>(i));
    }
    if (PyFloat_Check(o)) return Value(PyFloat_AS_DOUBLE(o));
    if (PyUnicode_Check(o)) {
        Py_ssize_t n = 0;
        const char* s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s == nullptr) {
            PyErr_Clear();
            throw std::invalid_argument(path + ": the string is not valid Unicode (it holds a lone surrogate)");
        }
        return Value(std::string(s, static_cast<std::size_t>(n)));
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Ref seq(check(PySequence_Fast(o, "list"), path));
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
        List out;
        for (Py_ssize_t i = 0; i < n; ++i)
            out.push_back(from_python(PySequence_Fast_GET_ITEM(seq.get(), i), path + "[" + std::to_string(i) + "]"));
        return Value(std::move(out));
    }
    if (PyDict_Check(o)) {
        Dict out;
        PyObject *key = nullptr, *value = nullptr;
        Py_ssize_t pos = 0;
        while (PyDict_Next(o, &pos, &key, &value)) {
            if (!PyUnicode_Check(key))
                throw std::invalid_argument(path + ": a key is a " + repr_type(key) + "; keys must be strings");
            Py_ssize_t n = 0;
            const char* k = PyUnicode_AsUTF8AndSize(key, &n);
            if (k == nullptr) throw_python_error(path);
            std::string name(k, static_cast<std::size_t>(n));
            out.insert_or_assign(name, from_python(value, path + "['" + name + "']"));
        }
        return Value(std::move(out));
    }
    if (PyObject_CheckBuffer(o)) return Value(bytes_of(o, path));
    throw std::invalid_argument(path + ": a " + repr_type(o) +
                                " cannot be returned (use None, bool, int, float, str, bytes, list, tuple, dict, "
                                "numpy arrays or torch tensors)");
}

// ---- the host module: what fedflow.Task asks the worker for --------------------

PyObject* host_bytes(PyObject*, PyObject* arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return nullptr;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "bytes(n): n must not be negative");
        return nullptr;
    }
    if (g_ctx == nullptr || !g_in_train) {
        // The worker removes the buffers of an earlier stage before each
        // train, so a buffer made in load would vanish under the task.
        PyErr_SetString(PyExc_RuntimeError,
                        "bytes() and array() may be called only in train (shared memory made earlier would be "
                        "gone by the time the result is sent)");
        return nullptr;
    }
    try {
        Bytes b = g_ctx->bytes(static_cast<std::size_t>(n));
        g_shm.push_back(b);
        static char empty[1];
        char* data = n == 0 ? empty : reinterpret_cast<char*>(b.data());
        return PyMemoryView_FromMemory(data, n, PyBUF_WRITE);
    } catch (const std::bad_alloc& e) {
        PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
    }
    return nullptr;
}

PyObject* host_log(PyObject*, PyObject* args) {
    const char *level = nullptr, *message = nullptr;
    if (!PyArg_ParseTuple(args, "ss", &level, &message)) return nullptr;
    std::string l = level;
    fedflow::LogLevel lv = l == "debug"     ? fedflow::LogLevel::debug
                           : l == "warning" ? fedflow::LogLevel::warning
                           : l == "error"   ? fedflow::LogLevel::error
                           : l == "info"    ? fedflow::LogLevel::info
                                            : static_cast<fedflow::LogLevel>(-1);
    if (static_cast<int>(lv) < 0) {
        PyErr_Format(PyExc_ValueError, "log level '%s' is not one of debug, info, warning, error", level);
        return nullptr;
    }
    if (g_ctx != nullptr) {
        g_ctx->log(message, lv);
    } else {
        std::fprintf(stderr, "[%s] %s\n", level, message);
    }
    Py_RETURN_NONE;
}

// Context::declare_gpu_memory: True on a simulated GPU, False elsewhere;
// MemoryError (out of memory, retried) when the simulated GPU is full.
PyObject* host_declare_gpu_memory(PyObject*, PyObject* arg) {
    unsigned long long n = PyLong_AsUnsignedLongLong(arg);
    if (n == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return nullptr;
    if (g_ctx == nullptr || !g_in_train) {
        PyErr_SetString(PyExc_RuntimeError, "declare_gpu_memory() may be called only in train (on its device)");
        return nullptr;
    }
    try {
        if (g_ctx->declare_gpu_memory(n)) Py_RETURN_TRUE;
        Py_RETURN_FALSE;
    } catch (const std::bad_alloc& e) {
        PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
    }
    return nullptr;
}

PyMethodDef host_methods[] = {
    {"bytes", host_bytes, METH_O, "bytes(n): n zero bytes in shared memory (train only)"},
    {"declare_gpu_memory", host_declare_gpu_memory, METH_O,
     "declare_gpu_memory(n): the task holds n bytes on its simulated GPU (train only)"},
    {"log", host_log, METH_VARARGS, "log(level, message): a line in stderr.log"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef host_module = {PyModuleDef_HEAD_INIT,
                           "_fedflow_host",
                           "The worker's services to fedflow.Task",
                           -1,
                           host_methods,
                           nullptr,
                           nullptr,
                           nullptr,
                           nullptr};

PyObject* init_host_module() { return PyModule_Create(&host_module); }

// ---- starting Python -----------------------------------------------------------

// This plugin's own file, to find the fedflow package beside it.
fs::path plugin_file() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&init_host_module), &info) == 0 || info.dli_fname == nullptr) return {};
    return fs::path(info.dli_fname);
}

// The folder that holds the package `fedflow`: <libdir>/fedflow/python
// after install (the plugin is in <libdir>/fedflow/plugins), else the
// source tree's python/ (a build tree).
fs::path package_dir() {
    std::error_code ec;
    fs::path installed = plugin_file().parent_path().parent_path() / "python";
    if (fs::is_regular_file(installed / "fedflow" / "__init__.py", ec)) return installed;
    fs::path source = FEDFLOW_PYTHON_SOURCE_DIR;
    if (fs::is_regular_file(source / "fedflow" / "__init__.py", ec)) return source;
    throw std::runtime_error("the Python package fedflow is neither in " + installed.string() + " nor in " +
                             source.string() + ": reinstall Fedflow");
}

void set_string(PyConfig& config, wchar_t** field, const std::string& value, const char* what) {
    PyStatus st = PyConfig_SetBytesString(&config, field, value.c_str());
    if (PyStatus_Exception(st)) {
        PyConfig_Clear(&config);
        throw std::runtime_error(std::string("Python config ") + what + ": " + (st.err_msg ? st.err_msg : "failed"));
    }
}

// Starts the interpreter once per process. `python`: the plan's interpreter
// or venv (empty: the one this plugin was built with).
void start_python(const std::string& python) {
    if (Py_IsInitialized()) return;

    // The worker loads plugins with RTLD_LOCAL, so libpython's symbols are
    // not visible to what Python itself dlopens later: extension modules
    // (numpy, torch) do not link libpython and would fail with undefined
    // symbols. Promote the already loaded library to global.
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&Py_InitializeFromConfig), &info) == 0 || info.dli_fname == nullptr ||
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL) == nullptr) {
        const char* why = dlerror();
        throw std::runtime_error(std::string("cannot make libpython's symbols global: ") + (why ? why : "not found"));
    }

    std::string executable = FEDFLOW_PYTHON_EXECUTABLE;
    if (!python.empty()) {
        fedflow::python::Interpreter in = fedflow::python::inspect_interpreter(python);
        if (in.version.empty()) throw std::invalid_argument(in.error);
        std::string mismatch = fedflow::python::version_mismatch(python, in.version, FEDFLOW_PY_VERSION);
        if (!mismatch.empty()) throw std::invalid_argument(mismatch);
        executable = in.executable;
    }

    if (PyImport_AppendInittab("_fedflow_host", &init_host_module) != 0)
        throw std::runtime_error("cannot register the module _fedflow_host");
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    // SIGINT and SIGTERM keep their default actions: the host's SIGTERM
    // (a timeout, an interrupt) ends the task even while Python runs C code.
    config.install_signal_handlers = 0;
    // What the task prints reaches stdout.log and stderr.log at once.
    config.buffered_stdio = 0;
    // Ten tasks importing one module must not race to write its .pyc into
    // the user's folder.
    config.write_bytecode = 0;
    config.parse_argv = 0;
    // Python finds its prefix, and a venv's site-packages (pyvenv.cfg), from
    // the executable; without one it would search PATH, where a pyenv shim
    // may stand.
    if (fs::exists(executable)) set_string(config, &config.executable, executable, "executable");
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st))
        throw std::runtime_error(std::string("starting Python ") + FEDFLOW_PY_VERSION + ": " +
                                 (st.err_msg ? st.err_msg : "failed") + (st.func ? std::string(" in ") + st.func : ""));

    PyObject* path = PySys_GetObject("path");  // borrowed
    Ref dir(check(PyUnicode_DecodeFSDefault(package_dir().c_str()), "sys.path"));
    // First: a `fedflow` installed in the environment (the original's
    // PyPI package) must not shadow this one.
    if (path == nullptr || PyList_Insert(path, 0, dir.get()) != 0) throw_python_error("sys.path");
    g_runtime = check(PyImport_ImportModule("fedflow._runtime"), "import fedflow._runtime");
}

std::string python_param(const fedflow::Context& ctx) {
    const Value* v = ctx.params().find("python");
    if (v == nullptr) return {};
    if (!v->is<std::string>())
        throw std::invalid_argument(std::string("param 'python' must be the path of an interpreter or a venv, not a ") +
                                    v->type_name());
    fs::path p = v->as<std::string>();
    return p.is_absolute() ? p.string() : (fs::path(ctx.plan_dir()) / p).string();
}

class PythonTask final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        StageScope scope(ctx, false);
        start_python(python_param(ctx));
        Ref info(check(PyDict_New(), "dict"));
        auto set = [&](const char* key, Ref value) {
            if (PyDict_SetItemString(info.get(), key, value.get()) != 0) throw_python_error("dict");
        };
        set("task_id", to_python(Value(ctx.task_id())));
        set("group", to_python(Value(ctx.group())));
        set("round", to_python(Value(std::int64_t{ctx.round()})));
        set("workdir", to_python(Value(ctx.workdir())));
        set("plan_dir", to_python(Value(ctx.plan_dir())));
        set("params", to_python(Value(ctx.params())));
        set("inputs", to_python(Value(ctx.inputs())));
        set("inputs_about", to_python(Value(ctx.inputs_about())));
        Ref host(check(PyImport_ImportModule("_fedflow_host"), "import _fedflow_host"));
        task_ = Ref(check(PyObject_CallMethod(g_runtime, "create", "OO", info.get(), host.get()), "creating the task"));
        Ref r(check(PyObject_CallMethod(g_runtime, "load", "O", task_.get()), "load"));
        report_estimates(ctx);
        round_ = ctx.round();
    }

    Dict train(fedflow::Context& ctx, std::string_view device) override {
        StageScope scope(ctx, true);
        if (ctx.round() != round_) {
            // A kept worker (keep-loaded) in its next round: self.round,
            // self.workdir and self.inputs are this round's.
            Ref info(check(PyDict_New(), "dict"));
            auto set = [&](const char* key, Ref value) {
                if (PyDict_SetItemString(info.get(), key, value.get()) != 0) throw_python_error("dict");
            };
            set("round", to_python(Value(std::int64_t{ctx.round()})));
            set("workdir", to_python(Value(ctx.workdir())));
            set("inputs", to_python(Value(ctx.inputs())));
            set("inputs_about", to_python(Value(ctx.inputs_about())));
            Ref r(check(PyObject_CallMethod(g_runtime, "next_round", "OO", task_.get(), info.get()), "next round"));
            round_ = ctx.round();
        }
        g_shm.clear();  // an earlier attempt's buffers are gone (a retried train)
        std::string dev(device);
        Ref result(check(PyObject_CallMethod(g_runtime, "train", "Os", task_.get(), dev.c_str()), "train"));
        Value v = from_python(result.get(), "result");
        return std::move(v.as<Dict>());
    }

    // The object is not released: the worker ends with _exit right after,
    // and running the task's __del__ methods at teardown gains nothing.
    ~PythonTask() override { (void)task_.release(); }

private:
    // The estimates the constructor (or load) set on the object reach the
    // host with load's end: the train and its retries are admitted on them.
    void report_estimates(fedflow::Context& ctx) {
        std::int64_t bytes[2] = {-1, -1};
        const char* names[2] = {"estimate_memory", "estimate_cuda_memory"};
        for (int i = 0; i < 2; ++i) {
            Ref v(PyObject_GetAttrString(task_.get(), names[i]));
            if (!v || !PyLong_Check(v.get()) || PyBool_Check(v.get())) {
                PyErr_Clear();
                continue;
            }
            long long n = PyLong_AsLongLong(v.get());
            if (n == -1 && PyErr_Occurred()) PyErr_Clear();
            else bytes[i] = n;
        }
        if (bytes[0] >= 0 || bytes[1] >= 0) ctx.set_estimates(bytes[0], bytes[1]);
    }

    Ref task_;
    std::uint32_t round_ = 0;  // the round load (or the last train) ran in
};

}  // namespace

FEDFLOW_TASK(PythonTask, "python")

// ---- the fork server (host/worker/fork_server.hpp) ------------------------------

// In fedflow-worker --fork-server, before any fork: starts the interpreter
// (the task's `python`) and imports the group's `preload` modules, so that
// each forked task has them at once. doc: FFV1 of {modules, params,
// plan_dir}. 0, or 1 with why in error.
extern "C" __attribute__((visibility("default"))) int
fedflow_fork_server_preload(const std::uint8_t* doc, std::size_t size, char* error, std::size_t error_size) {
    g_print_tracebacks = false;
    try {
        Value v = fedflow::wire::decode(doc, size);
        const Dict& d = v.as<Dict>();
        std::string python;
        if (const Value* params = d.find("params"); params != nullptr && params->is<Dict>())
            if (const Value* p = params->as<Dict>().find("python"); p != nullptr && p->is<std::string>()) {
                fs::path path = p->as<std::string>();
                const Value* dir = d.find("plan_dir");
                python = path.is_absolute() || dir == nullptr ? path.string()
                                                              : (fs::path(dir->as<std::string>()) / path).string();
            }
        start_python(python);
        // after_fork (fedflow/_runtime.py) sets torch's threads through
        // ctypes: imported here once, not in every child (25 ms there).
        Ref ctypes(check(PyImport_ImportModule("ctypes"), "import ctypes"));
        if (const Value* modules = d.find("modules"); modules != nullptr && modules->is<List>())
            for (const Value& m : modules->as<List>()) {
                const std::string& name = m.as<std::string>();
                Ref module(check(PyImport_ImportModule(name.c_str()), "import " + name));
            }
        Ref prepared(check(PyObject_CallMethod(g_runtime, "prepare_fork", nullptr), "preparing to fork"));
        g_print_tracebacks = true;  // the children's errors go to their stderr.log
        return 0;
    } catch (const std::exception& e) {
        std::snprintf(error, error_size, "%s", e.what());
        return 1;
    }
}

// Around each fork of the fork server: 0 before, 1 in the server after, 2
// in the child, which also gets the task's thread settings back.
extern "C" __attribute__((visibility("default"))) void fedflow_fork_server_fork(int phase) {
    if (!Py_IsInitialized() || g_runtime == nullptr) return;
    if (phase == 0) {
        PyOS_BeforeFork();
        return;
    }
    if (phase == 1) {
        PyOS_AfterFork_Parent();
        return;
    }
    PyOS_AfterFork_Child();
    Ref env(PyDict_New());
    for (const char* name : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}) {
        const char* value = std::getenv(name);
        Ref v(value != nullptr ? PyUnicode_DecodeFSDefault(value) : (Py_INCREF(Py_None), Py_None));
        if (v) PyDict_SetItemString(env.get(), name, v.get());
    }
    Ref r(PyObject_CallMethod(g_runtime, "after_fork", "O", env.get()));
    if (!r) PyErr_Print();  // in stderr.log; the task runs on with what it has
}
