// fedflow/task.hpp: write a Fedflow task as a C++ class.
//
//   class Echo final : public fedflow::Task {
//   public:
//       void load(fedflow::Context& ctx) override { ... }          // CPU only
//       fedflow::Dict train(fedflow::Context& ctx, std::string_view device) override { ... }
//   };
//   FEDFLOW_TASK(Echo, "echo")
//
// One FEDFLOW_TASK per plugin (.so). The plugin runs in its own process
// (fedflow-worker), so a crash in it never takes down the host or another
// task. Standard C++17, header-only; the boundary to the worker is the C ABI
// of <fedflow/abi.h>.
//
// Errors: an exception thrown from load or train fails that stage with the
// exception's what(). std::bad_alloc, and an exception whose message contains
// "CUDA out of memory" (libtorch) or "cudaErrorMemoryAllocation", count as
// out-of-memory, which the host may retry.
#ifndef FEDFLOW_TASK_HPP
#define FEDFLOW_TASK_HPP

#include <fedflow/abi.h>
#include <fedflow/detail/name.hpp>
#include <fedflow/detail/wire.hpp>
#include <fedflow/value.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace fedflow {

namespace detail {
// A std::bad_alloc (so it counts as out-of-memory) that says what failed.
// Shares its text, so that copying the exception cannot throw.
class OutOfMemory : public std::bad_alloc {
public:
    explicit OutOfMemory(std::string what) : what_(std::make_shared<const std::string>(std::move(what))) {}
    const char* what() const noexcept override { return what_->c_str(); }

private:
    std::shared_ptr<const std::string> what_;
};
}  // namespace detail

enum class LogLevel : std::int32_t {
    debug = FEDFLOW_LOG_DEBUG,
    info = FEDFLOW_LOG_INFO,
    warning = FEDFLOW_LOG_WARNING,
    error = FEDFLOW_LOG_ERROR,
};

// What a stage knows about its task, and the host services it may use.
// The same Context is passed to load and to train.
class Context {
public:
    explicit Context(const fedflow_context* c)
        : c_(c),
          task_id_(c->task_id),
          group_(c->group),
          workdir_(c->workdir),
          plan_dir_(c->plan_dir),
          params_(decode_dict(c->params, "params")),
          inputs_(decode_inputs(c)),
          round_(c->round) {
        describe_inputs(c);
    }

    // Unique in its group; also the name of the task's workdir.
    const std::string& task_id() const noexcept { return task_id_; }
    const std::string& group() const noexcept { return group_; }
    // The round number; 0 outside rounds.
    std::uint32_t round() const noexcept { return c_->round; }
    // Absolute path of the task's own directory, which is the process's cwd.
    const std::string& workdir() const noexcept { return workdir_; }
    // Absolute directory of the plan file: resolve relative data paths here.
    const std::string& plan_dir() const noexcept { return plan_dir_; }
    // The device train runs on ("cuda:N", "cpu" or "sim:N"); empty during load.
    const std::string& device() const noexcept { return device_; }

    // The group's params, overridden by the task's own.
    const Dict& params() const noexcept { return params_; }
    // Results of the groups this group lists in `inputs`: group -> task id
    // -> result. A missing key's TypeError says where it was looked for and
    // what there is ("inputs.server has no task '0' (0 of 1 finished), round 3").
    const Dict& inputs() const noexcept { return inputs_; }
    // Per group of inputs(): {"tasks", "finished", "round"} of the instance
    // whose results are there; empty from a worker that predates it.
    const Dict& inputs_about() const noexcept { return inputs_about_; }

    // The param key as T; throws TypeError naming the key when it is missing
    // or of another type. T may be bool, any integer type (range-checked),
    // float or double, std::string, Bytes, List or Dict.
    template <class T>
    T param(std::string_view key) const {
        const Value* v = params_.find(key);
        if (v == nullptr) throw TypeError("param '" + std::string(key) + "' is missing");
        return convert<T>(key, *v);
    }

    // The param key as T, or fallback when it is missing. A param that is
    // present with another type still throws.
    template <class T>
    T param(std::string_view key, const T& fallback) const {
        const Value* v = params_.find(key);
        if (v == nullptr) return fallback;
        return convert<T>(key, *v);
    }

    // n zero bytes in shared memory: put them in the result and they reach
    // the host without a copy. Valid until the process exits.
    Bytes bytes(std::size_t n) {
        fedflow_status st{};
        std::uint64_t id = 0;
        std::uint8_t* p = c_->host->bytes_alloc(c_->host->host, n, &id, &st);
        if (p == nullptr) {
            std::string why = std::string("bytes(") + std::to_string(n) + "): " + st.message;
            if (st.code == FEDFLOW_OUT_OF_MEMORY) throw detail::OutOfMemory(std::move(why));
            throw std::runtime_error(why);
        }
        return Bytes::view(p, n, static_cast<std::int64_t>(id));
    }

    // The task's own estimates of RAM and GPU memory in bytes (-1: none),
    // for a task that knows better than the plan (its model's size): given
    // in load, they reach the host with load's end and replace the plan's
    // for train, its retries and a reload. False when the worker predates
    // them (FEDFLOW_HOST_SERVICES_VERSION 1): the plan's estimates stay.
    bool set_estimates(std::int64_t memory, std::int64_t gpu_memory) const {
        const fedflow_host_services* h = c_->host;
        if (h->size < offsetof(fedflow_host_services, set_estimates) + sizeof h->set_estimates ||
            h->set_estimates == nullptr)
            return false;
        h->set_estimates(h->host, memory, gpu_memory);
        return true;
    }

    // The GPU memory the task holds now, in bytes, on a simulated GPU
    // (train's device is "sim:N", fedflow-host --simulate-gpus), where no
    // CUDA may be used: the host measures it as it measures a CUDA
    // process's, until the task declares another amount, its train fails
    // (as the exception frees what it allocated), its next train starts, or
    // its process exits. Throws an OutOfMemory (a std::bad_alloc,
    // so the host retries train with a grown GPU estimate) when the
    // simulated GPU cannot hold it. Returns false, doing nothing, on any
    // other device (a task on "cuda:N" allocates for real) and with a
    // worker that predates it (FEDFLOW_HOST_SERVICES_VERSION < 3).
    bool declare_gpu_memory(std::uint64_t bytes) const {
        const fedflow_host_services* h = c_->host;
        if (device_.rfind("sim:", 0) != 0 ||
            h->size < offsetof(fedflow_host_services, declare_gpu_memory) + sizeof h->declare_gpu_memory ||
            h->declare_gpu_memory == nullptr)
            return false;
        fedflow_status st{};
        if (h->declare_gpu_memory(h->host, bytes, &st) == FEDFLOW_OK) return true;
        if (st.code == FEDFLOW_OUT_OF_MEMORY) throw detail::OutOfMemory(st.message);
        throw std::runtime_error(st.message);
    }

    // One line in the task's stderr.log, with the level.
    void log(std::string_view message, LogLevel level = LogLevel::info) const {
        std::string s(message);
        c_->host->log(c_->host->host, static_cast<std::int32_t>(level), s.c_str());
    }

    // Used by the SDK: train's device, and the context of the current call
    // (the worker's struct is valid only during the call that receives it).
    void set_device(std::string_view device) { device_ = device; }
    void rebind(const fedflow_context* c) noexcept { c_ = c; }
    // A kept task's next round (keep-loaded): c is of another round than
    // this context was made for, and everything is read again from it; the
    // object stays where it is.
    bool other_round(const fedflow_context* c) const noexcept { return c->round != round_; }
    void next_round(const fedflow_context* c) { *this = Context(c); }
    const fedflow_context* raw() const noexcept { return c_; }

private:
    static Dict decode_dict(const fedflow_buffer& b, const char* what) {
        if (b.size == 0) return Dict();
        Value v = wire::decode(b.data, b.size);
        if (!v.is<Dict>()) throw TypeError(std::string(what) + " is not a dict");
        return std::move(v.as<Dict>());
    }

    // The inputs, whose byte values refer to the files the worker mapped
    // (fedflow_context.input_files, which this SDK asks for through
    // FEDFLOW_FEATURE_INPUT_FILES): views of the mappings, no copy.
    static Dict decode_inputs(const fedflow_context* c) {
        if (c->inputs.size == 0) return Dict();
        wire::RefResolver resolve;
        if (c->size >= offsetof(fedflow_context, input_file_count) + sizeof c->input_file_count) {
            const fedflow_input_file* files = c->input_files;
            const std::uint64_t count = c->input_file_count;
            resolve = [files, count](std::uint64_t id, std::uint64_t n) -> Bytes {
                if (id >= count)
                    throw wire::Error("inputs refer to byte file " + std::to_string(id) + " of " +
                                      std::to_string(count));
                const fedflow_input_file& f = files[id];
                if (n > f.size)
                    throw wire::Error("inputs refer to " + std::to_string(n) + " bytes of " + f.path + ", which has " +
                                      std::to_string(f.size));
                return Bytes::mapped_file(f.data, static_cast<std::size_t>(n), f.path);
            };
        }
        Value v = wire::decode(c->inputs.data, c->inputs.size, resolve);
        if (!v.is<Dict>()) throw TypeError("inputs is not a dict");
        return std::move(v.as<Dict>());
    }

    void describe_inputs(const fedflow_context* c) {
        if (c->size >= offsetof(fedflow_context, inputs_about) + sizeof c->inputs_about)
            inputs_about_ = decode_dict(c->inputs_about, "inputs_about");
        const std::string in_round = c->round != 0 ? ", round " + std::to_string(c->round) : "";
        std::string have;
        for (auto& [name, tasks] : inputs_) {
            have += (have.empty() ? "" : ", ") + name;
            if (!tasks.is<Dict>()) continue;
            std::string detail = " (" + std::to_string(tasks.as<Dict>().size());
            if (const Value* a = inputs_about_.find(name); a != nullptr && a->is<Dict>()) {
                const Dict& about = a->as<Dict>();
                const Value* n = about.find("tasks");
                const Value* r = about.find("round");
                if (n != nullptr && n->is<std::int64_t>()) detail += " of " + std::to_string(n->as<std::int64_t>());
                detail += " finished";
                if (r != nullptr && r->is<std::int64_t>() && r->as<std::int64_t>() != 0 &&
                    r->as<std::int64_t>() != static_cast<std::int64_t>(c->round))
                    detail += " in round " + std::to_string(r->as<std::int64_t>());
            } else {
                detail += " finished";
            }
            tasks.as<Dict>().describe_missing("inputs." + name, "task", detail + ")" + in_round);
        }
        inputs_.describe_missing("inputs", "group", " (it has: " + (have.empty() ? "none" : have) + ")" + in_round);
    }

    template <class T>
    static T convert(std::string_view key, const Value& v) {
        try {
            if constexpr (std::is_same_v<T, bool>) {
                return v.as<bool>();
            } else if constexpr (std::is_integral_v<T>) {
                std::int64_t i = v.as<std::int64_t>();
                if constexpr (!std::is_same_v<T, std::int64_t>) {
                    if (i < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                        (i > 0 &&
                         static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())))
                        throw TypeError(std::to_string(i) + " is out of range");
                }
                return static_cast<T>(i);
            } else if constexpr (std::is_floating_point_v<T>) {
                return static_cast<T>(v.as<double>());
            } else {
                return v.as<T>();
            }
        } catch (const TypeError& e) {
            throw TypeError("param '" + std::string(key) + "': " + e.what());
        }
    }

    const fedflow_context* c_;
    std::string task_id_, group_, workdir_, plan_dir_, device_;
    Dict params_, inputs_, inputs_about_;
    std::uint32_t round_ = 0;  // the round it was made for
};

// Base class of a task. The worker creates one object per task process,
// calls load once, and then train (again, in the same process, if the host
// retries a train that ran out of memory).
class Task {
public:
    virtual ~Task() = default;
    // CPU stage: read and prepare data. No GPU may be touched here.
    virtual void load(Context& ctx) = 0;
    // GPU stage on the device the scheduler assigned ("cuda:N", "cpu", or
    // "sim:N": a simulated GPU, where the task declares its GPU memory with
    // ctx.declare_gpu_memory instead of touching CUDA).
    virtual Dict train(Context& ctx, std::string_view device) = 0;
};

namespace detail {

// Fills *st with code and prefix + message, cut to fit. Never allocates:
// it runs in the handler of std::bad_alloc, when memory may be exhausted.
inline std::int32_t fail(fedflow_status* st, std::int32_t code, const char* message, const char* prefix = "") noexcept {
    st->code = code;
    std::size_t i = 0;
    for (const char* part : {prefix, message})
        for (std::size_t j = 0; part[j] != '\0' && i + 1 < FEDFLOW_MESSAGE_MAX; ++j) st->message[i++] = part[j];
    st->message[i] = '\0';
    return code;
}

inline bool is_cuda_oom(std::string_view what) noexcept {
    return what.find("CUDA out of memory") != std::string_view::npos ||
           what.find("cudaErrorMemoryAllocation") != std::string_view::npos;
}

// Runs f, turning every exception into a status: no exception may cross the
// C boundary.
template <class F>
std::int32_t guarded(fedflow_status* st, F&& f) noexcept {
    try {
        f();
        return FEDFLOW_OK;
    } catch (const std::bad_alloc& e) {
        return fail(st, FEDFLOW_OUT_OF_MEMORY, e.what(), "out of memory: ");
    } catch (const std::exception& e) {
        return fail(st, is_cuda_oom(e.what()) ? FEDFLOW_OUT_OF_MEMORY : FEDFLOW_ERROR, e.what());
    } catch (...) {
        return fail(st, FEDFLOW_ERROR, "unknown exception (not derived from std::exception)");
    }
}

// What the worker's void* task points to.
template <class T>
struct Instance {
    T task;
    std::optional<Context> ctx;

    Context& context(const fedflow_context* c) {
        if (!ctx) ctx.emplace(c);
        else if (ctx->other_round(c)) ctx->next_round(c);
        else ctx->rebind(c);
        return *ctx;
    }
};

template <class T>
fedflow_plugin make_plugin(const char* name) noexcept {
    fedflow_plugin p{};
    p.magic = FEDFLOW_ABI_MAGIC;
    p.abi_version = FEDFLOW_ABI_VERSION;
    p.size = sizeof(fedflow_plugin);
    p.name = name;
    p.features = FEDFLOW_FEATURE_INPUT_FILES | FEDFLOW_FEATURE_NEXT_ROUND;
    p.create = [](fedflow_status* st) -> void* {
        Instance<T>* inst = nullptr;
        guarded(st, [&] { inst = new Instance<T>(); });
        return inst;
    };
    p.destroy = [](void* task) { delete static_cast<Instance<T>*>(task); };
    p.load = [](void* task, const fedflow_context* c, fedflow_status* st) -> std::int32_t {
        auto* inst = static_cast<Instance<T>*>(task);
        return guarded(st, [&] { inst->task.load(inst->context(c)); });
    };
    p.train = [](void* task, const fedflow_context* c, const char* device, fedflow_status* st) -> std::int32_t {
        auto* inst = static_cast<Instance<T>*>(task);
        return guarded(st, [&] {
            Context& ctx = inst->context(c);
            ctx.set_device(device);
            Value result(inst->task.train(ctx, device));
            std::size_t n = wire::encoded_size(result);
            fedflow_status alloc{};
            std::uint8_t* out = c->host->result_alloc(c->host->host, n, &alloc);
            if (out == nullptr) {
                std::string why = std::string("result of ") + std::to_string(n) + " bytes: " + alloc.message;
                if (alloc.code == FEDFLOW_OUT_OF_MEMORY) throw OutOfMemory(std::move(why));
                throw std::runtime_error(why);
            }
            wire::encode(result, out, n);
        });
    };
    return p;
}

}  // namespace detail
}  // namespace fedflow

// Makes Class, derived from fedflow::Task, the task of this plugin under the
// registered name name_literal ([A-Za-z0-9._-]+, at most 55 characters),
// which plans use as `plugin = "name"`. Use it once per plugin, at namespace
// scope in one source file.
#define FEDFLOW_TASK(Class, name_literal)                                                                              \
    static_assert(std::is_base_of_v<::fedflow::Task, Class>, #Class " must derive from fedflow::Task");                \
    static_assert(::fedflow::detail::valid_name(name_literal),                                                         \
                  "plugin name must be 1-55 characters of [A-Za-z0-9._-], not . or ..");                               \
    extern "C" {                                                                                                       \
    FEDFLOW_PLUGIN_INFO(fedflow_plugin_info_entry, name_literal);                                                      \
    __attribute__((visibility("default"))) std::int32_t fedflow_plugin_enum(const fedflow_plugin** plugin,             \
                                                                            std::uint32_t index) {                     \
        static const fedflow_plugin def = ::fedflow::detail::make_plugin<Class>(name_literal);                         \
        if (index != 0) return 0;                                                                                      \
        *plugin = &def;                                                                                                \
        return 1;                                                                                                      \
    }                                                                                                                  \
    }

#endif  // FEDFLOW_TASK_HPP
