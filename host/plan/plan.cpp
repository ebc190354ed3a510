#include "plan/plan.hpp"

#include "common/device.hpp"

#include "common/names.hpp"
#include "common/text.hpp"
#include "common/units.hpp"
#include "plan/sha256.hpp"

#include <fmt/core.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <set>
#include <thread>
#include <tuple>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace fedflow::plan {

namespace {
// What is wrong with a name that names::valid refuses, for "name 'x' in
// [[group]] number 1 ...".
std::string name_problem(std::string_view name) {
    if (name.empty()) return "must have at least 1 character";
    if (name.size() > names::max_length)
        return fmt::format("has {} characters, more than the {} a name may have", name.size(), names::max_length);
    return "may use only letters, digits, '.', '_' and '-', and may not be '.' or '..'";
}

// A plan's names and values reach the messages as they were written: made
// printable here, once for every message, so that none can forget it.
std::vector<std::string> printable(std::vector<std::string> messages) {
    for (std::string& m : messages) m = text::printable(m);
    return messages;
}
}  // namespace

PlanError::PlanError(std::vector<std::string> messages)
    : std::runtime_error(messages.empty() ? "invalid plan" : text::printable(messages.front())),
      messages_(printable(std::move(messages))) {}

std::string GroupSpec::task_id(std::size_t i) const { return i < count ? std::to_string(i) : tasks[i - count].id; }

namespace {
// GroupSpec::specs, for a const group and a mutable one alike.
template <class Group>
auto specs_of(Group& g) {
    std::vector<decltype(&g.alike)> out;
    out.reserve(g.tasks.size() + 1);
    if (g.count > 0) out.push_back(&g.alike);
    for (auto& t : g.tasks) out.push_back(&t);
    return out;
}
}  // namespace

std::vector<TaskSpec*> GroupSpec::specs() { return specs_of(*this); }
std::vector<const TaskSpec*> GroupSpec::specs() const { return specs_of(*this); }

const GroupSpec* Plan::find_group(std::string_view name) const {
    for (const auto& g : groups)
        if (g.name == name) return &g;
    return nullptr;
}

std::string digest(std::string_view data) { return "sha256:" + sha256_hex(data); }

void parse_gpus(std::string_view text, sched::Limits& into) {
    if (text == "all") {
        into.use_gpus = true;
        into.gpus.clear();
        return;
    }
    if (text == "none") {
        into.use_gpus = false;
        into.gpus.clear();
        return;
    }
    std::vector<int> list;
    for (std::string_view item : units::split_commas(text)) {
        if (!units::all_digits(item) || item.size() > 4)
            throw std::invalid_argument(
                fmt::format("'{}' is not a GPU selection: write all, none, or GPU indices separated by commas (0,2)",
                            text));
        int i = std::stoi(std::string(item));
        if (std::find(list.begin(), list.end(), i) != list.end())
            throw std::invalid_argument(fmt::format("GPU {} appears twice in '{}'", i, text));
        list.push_back(i);
    }
    into.use_gpus = true;
    into.gpus = std::move(list);
}

std::string round_dir(std::uint32_t round, std::uint32_t count) {
    int width = std::max<int>(3, static_cast<int>(std::to_string(count).size()));
    return fmt::format("round-{:0{}}", round, width);
}

std::filesystem::path group_dir(const Plan& plan, const std::filesystem::path& workdir, const GroupSpec& spec,
                                std::uint32_t round) {
    if (round == 0) return workdir / spec.name;
    return workdir / round_dir(round, plan.rounds[spec.block - 1].count) / spec.name;
}

namespace {

const char* type_name(toml::node_type t) {
    switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
    }
}

Location where(const toml::source_region& r) { return Location{r.begin.line, r.begin.column}; }

// The keys a table may hold.
using Known = std::initializer_list<std::string_view>;

// Params as a level of the plan leaves them to the next one down.
struct Params {
    Dict values;
    ParamWhere where;
};

class Reader {
public:
    explicit Reader(fs::path file) : file_(std::move(file)) {}

    void error(Location at, std::string message) {
        errors_.push_back({at, fmt::format("{}:{}:{}: {}", file_.string(), at.line, at.column, message)});
    }
    void error(const toml::node& n, std::string message) { error(where(n.source()), std::move(message)); }
    bool failed() const { return !errors_.empty(); }
    // In file order, as a compiler reports them.
    std::vector<std::string> take_errors() {
        std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
            return std::tie(a.first.line, a.first.column) < std::tie(b.first.line, b.first.column);
        });
        std::vector<std::string> out;
        for (auto& e : errors_) out.push_back(std::move(e.second));
        return out;
    }

    // Reports the keys of table t (called `context`) that are not known.
    void check_keys(const toml::table& t, Known known, std::string_view context) {
        for (const auto& [key, node] : t) {
            if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
            Location at = where(key.source());
            if (at.line == 0) at = where(node.source());
            error(at,
                  fmt::format("unknown key '{}' in {}{}", key.str(), context, text::did_you_mean(key.str(), known)));
        }
    }

    const toml::node* typed(const toml::table& t, std::string_view key, toml::node_type type,
                            std::string_view context) {
        const toml::node* n = t.get(key);
        if (n == nullptr) return nullptr;
        if (n->type() != type) {
            error(*n, fmt::format("key '{}' in {} must be {}, not {}", key, context, type_name(type),
                                  type_name(n->type())));
            return nullptr;
        }
        return n;
    }

    std::optional<std::string> string(const toml::table& t, std::string_view key, std::string_view context) {
        const toml::node* n = typed(t, key, toml::node_type::string, context);
        if (n == nullptr) return std::nullopt;
        return n->as_string()->get();
    }

    std::optional<std::int64_t> integer(const toml::table& t, std::string_view key, std::string_view context,
                                        std::int64_t min, std::int64_t max) {
        const toml::node* n = typed(t, key, toml::node_type::integer, context);
        if (n == nullptr) return std::nullopt;
        std::int64_t v = n->as_integer()->get();
        if (v < min || v > max) {
            error(*n, fmt::format("key '{}' in {} must be between {} and {}, not {}", key, context, min, max, v));
            return std::nullopt;
        }
        return v;
    }

    // A duration: a string with a unit, or a number of seconds.
    std::optional<std::chrono::milliseconds> duration(const toml::table& t, std::string_view key,
                                                      std::string_view context) {
        const toml::node* n = t.get(key);
        if (n == nullptr) return std::nullopt;
        try {
            if (auto s = n->as_string()) return units::parse_duration(s->get());
            if (auto i = n->as_integer(); i && i->get() >= 0) {
                if (i->get() > std::chrono::duration_cast<std::chrono::seconds>(units::max_duration).count())
                    throw std::invalid_argument(
                        fmt::format("{} seconds is out of range: {}", i->get(), units::duration_range));
                return std::chrono::seconds(i->get());
            }
            error(*n,
                  fmt::format("key '{}' in {} must be a duration such as \"30s\", \"5m\" or \"1.5h\"", key, context));
        } catch (const std::invalid_argument& e) {
            error(*n, fmt::format("key '{}' in {}: {}", key, context, e.what()));
        }
        return std::nullopt;
    }

    // A size: a string with a unit ("2.5GB", "1200MiB") or a number of bytes.
    std::optional<std::uint64_t> size(const toml::table& t, std::string_view key, std::string_view context) {
        const toml::node* n = t.get(key);
        if (n == nullptr) return std::nullopt;
        try {
            if (auto s = n->as_string()) return units::parse_size(s->get());
            if (auto i = n->as_integer(); i && i->get() >= 0) {
                if (static_cast<std::uint64_t>(i->get()) > units::max_size)
                    throw std::invalid_argument(
                        fmt::format("{} bytes is out of range: {}", i->get(), units::size_range));
                return static_cast<std::uint64_t>(i->get());
            }
            error(*n, fmt::format("key '{}' in {} must be a size such as \"2GB\" or \"1500MiB\"", key, context));
        } catch (const std::invalid_argument& e) {
            error(*n, fmt::format("key '{}' in {}: {}", key, context, e.what()));
        }
        return std::nullopt;
    }

    // A share of a resource: a number above 0 and at most 1.
    std::optional<double> fraction(const toml::table& t, std::string_view key, std::string_view context) {
        const toml::node* n = t.get(key);
        if (n == nullptr) return std::nullopt;
        std::optional<double> v;
        if (auto f = n->as_floating_point()) v = f->get();
        else if (auto i = n->as_integer()) v = static_cast<double>(i->get());
        if (!v || !(*v > 0.0 && *v <= 1.0)) {
            error(*n, fmt::format("key '{}' in {} must be a number above 0 and at most 1 (a share, such as 0.8)", key,
                                  context));
            return std::nullopt;
        }
        return v;
    }

    std::optional<bool> boolean(const toml::table& t, std::string_view key, std::string_view context) {
        const toml::node* n = typed(t, key, toml::node_type::boolean, context);
        if (n == nullptr) return std::nullopt;
        return n->as_boolean()->get();
    }

    std::optional<std::string> name(const toml::table& t, std::string_view key, std::string_view context) {
        auto s = string(t, key, context);
        if (s && !names::valid(*s)) {
            error(*t.get(key), fmt::format("{} '{}' in {} {}", key, *s, context, name_problem(*s)));
            return std::nullopt;
        }
        return s;
    }

    std::optional<std::string> device(const toml::table& t, std::string_view context) {
        auto s = string(t, "device", context);
        if (s && !device::valid(*s)) {
            error(*t.get("device"),
                  fmt::format("device '{}' in {} must be \"cpu\", \"cuda:N\" or \"sim:N\"", *s, context));
            return std::nullopt;
        }
        return s;
    }

    Value value(const toml::node& n, int depth) {
        if (depth > 32) {
            error(n, "params nest deeper than 32 levels");
            return Value();
        }
        switch (n.type()) {
        case toml::node_type::string: return Value(n.as_string()->get());
        case toml::node_type::integer: return Value(n.as_integer()->get());
        case toml::node_type::floating_point: return Value(n.as_floating_point()->get());
        case toml::node_type::boolean: return Value(n.as_boolean()->get());
        case toml::node_type::array: {
            List l;
            for (const auto& item : *n.as_array()) l.push_back(value(item, depth + 1));
            return Value(std::move(l));
        }
        case toml::node_type::table: {
            Dict d;
            for (const auto& [k, item] : *n.as_table()) d.insert_or_assign(k.str(), value(item, depth + 1));
            return Value(std::move(d));
        }
        default:
            error(n, fmt::format("params may hold strings, numbers, booleans, arrays and tables, not {}",
                                 type_name(n.type())));
            return Value();
        }
    }

    // t's params on top of inherited ones (the plan's, a [[round]]'s, a
    // group's), with where each key was written.
    Params params(const toml::table& t, std::string_view context, Params inherited = {}) {
        const toml::node* n = typed(t, "params", toml::node_type::table, context);
        if (n == nullptr) return inherited;
        for (const auto& [k, item] : *n->as_table()) {
            // A copy of the key: clang 14 cannot capture a structured
            // binding in a lambda.
            const std::string key(k.str());
            inherited.values.insert_or_assign(key, value(item, 1));
            Location at = where(k.source());
            if (at.line == 0) at = where(item.source());
            auto w = std::find_if(inherited.where.begin(), inherited.where.end(),
                                  [&](const auto& e) { return e.first == key; });
            if (w != inherited.where.end()) w->second = at;
            else inherited.where.emplace_back(key, at);
        }
        return inherited;
    }

private:
    fs::path file_;
    std::vector<std::pair<Location, std::string>> errors_;
};

void read_scheduler(Reader& r, const toml::table& t, Scheduler& s) {
    constexpr std::string_view ctx = "[scheduler]";
    r.check_keys(t,
                 {"max-processes", "task-timeout", "max-waiting", "load-retries", "train-retries", "gpu-order",
                  "default-memory", "default-gpu-memory", "auto-adjust", "result-limit", "worker-start"},
                 ctx);
    auto count = [&](std::string_view key, std::uint32_t& into, std::int64_t max) {
        if (auto n = r.integer(t, key, ctx, 0, max)) into = static_cast<std::uint32_t>(*n);
    };
    count("max-processes", s.max_processes, 100000);
    count("max-waiting", s.max_waiting, 100000);
    count("load-retries", s.load_retries, 1000);
    count("train-retries", s.train_retries, 1000);
    if (auto d = r.duration(t, "task-timeout", ctx)) s.task_timeout = *d;
    if (auto o = r.string(t, "gpu-order", ctx)) {
        if (*o == "pci") s.gpu_order = sched::GpuOrder::pci;
        else if (*o == "total-memory") s.gpu_order = sched::GpuOrder::total_memory;
        else if (*o == "free-memory") s.gpu_order = sched::GpuOrder::free_memory;
        else
            r.error(*t.get("gpu-order"),
                    fmt::format("gpu-order '{}' in {} must be \"pci\", \"total-memory\" or \"free-memory\"", *o, ctx));
    }
    if (auto b = r.size(t, "default-memory", ctx)) s.default_memory = *b;
    if (auto b = r.size(t, "default-gpu-memory", ctx)) s.default_gpu_memory = *b;
    if (auto b = r.boolean(t, "auto-adjust", ctx)) s.auto_adjust = *b;
    if (auto b = r.size(t, "result-limit", ctx)) s.result_limit = *b;
    if (auto w = r.string(t, "worker-start", ctx)) {
        if (*w == "fork-server") s.worker_start = WorkerStart::fork_server;
        else if (*w == "exec") s.worker_start = WorkerStart::exec;
        else
            r.error(*t.get("worker-start"),
                    fmt::format("worker-start '{}' in {} must be \"fork-server\" or \"exec\"", *w, ctx));
    }
}

void read_slurm(Reader& r, const toml::table& t, Slurm& s) {
    constexpr std::string_view ctx = "[slurm]";
    r.check_keys(t, {"enabled", "requeue"}, ctx);
    if (auto b = r.boolean(t, "enabled", ctx)) s.enabled = *b;
    if (auto n = r.integer(t, "requeue", ctx, 0, 100)) s.requeue = static_cast<std::uint32_t>(*n);
}

void read_resources(Reader& r, const toml::table& t, sched::Limits& res) {
    constexpr std::string_view ctx = "[resources]";
    r.check_keys(t,
                 {"cpu-utilization", "memory-utilization", "gpu-memory-utilization", "memory-reserve",
                  "gpu-memory-reserve", "gpus"},
                 ctx);
    if (auto f = r.fraction(t, "cpu-utilization", ctx)) res.cpu_utilization = *f;
    if (auto f = r.fraction(t, "memory-utilization", ctx)) res.memory_utilization = *f;
    if (auto f = r.fraction(t, "gpu-memory-utilization", ctx)) res.gpu_memory_utilization = *f;
    if (auto b = r.size(t, "memory-reserve", ctx)) res.memory_reserve = *b;
    if (auto b = r.size(t, "gpu-memory-reserve", ctx)) res.gpu_memory_reserve = *b;
    if (const toml::node* n = t.get("gpus")) {
        const char* expected = "gpus in [resources] must be \"all\", \"none\" or a list of GPU indices such as [0, 2]";
        if (auto s = n->as_string()) {
            if (s->get() == "none") res.use_gpus = false;
            else if (s->get() != "all") r.error(*n, expected);
        } else if (auto arr = n->as_array()) {
            std::set<std::int64_t> seen;
            for (const auto& item : *arr) {
                auto i = item.as_integer();
                if (i == nullptr || i->get() < 0 || i->get() > 4095) {
                    r.error(item, expected);
                } else if (!seen.insert(i->get()).second) {
                    r.error(item, fmt::format("GPU {} appears twice in gpus of [resources]", i->get()));
                } else {
                    res.gpus.push_back(static_cast<int>(i->get()));
                }
            }
            if (arr->empty()) r.error(*n, "gpus in [resources] is an empty list: write \"none\" to train on the CPU");
        } else {
            r.error(*n, expected);
        }
    }
}

// True when id is one of "0" to "count-1", the ids of a group's alike tasks
// (written as std::to_string writes them: "07" is not "7").
bool is_alike_id(std::string_view id, std::size_t count) {
    if (id.empty() || id.size() > 7 || (id.size() > 1 && id[0] == '0')) return false;  // count <= 1,000,000
    std::size_t n = 0;
    for (char c : id) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    return n < count;
}

void read_task(Reader& r, const toml::table& t, const Params& group_params, GroupSpec& g) {
    std::string ctx = fmt::format("[[group.task]] of group '{}'", g.name);
    r.check_keys(t, {"id", "params", "device", "memory", "gpu-memory"}, ctx);
    TaskSpec task;
    task.where = where(t.source());
    task.memory = r.size(t, "memory", ctx);
    task.gpu_memory = r.size(t, "gpu-memory", ctx);
    Params mine = r.params(t, ctx, Params{group_params.values, {}});
    task.params = std::move(mine.values);
    task.param_where = std::move(mine.where);
    if (auto d = r.device(t, ctx)) task.device = *d;

    const toml::node* id = t.get("id");
    if (id == nullptr) {
        r.error(task.where, fmt::format("{} needs an id", ctx));
        return;
    }
    if (auto i = id->as_integer()) {
        task.id = std::to_string(i->get());
    } else if (auto s = id->as_string()) {
        task.id = s->get();
    } else {
        r.error(*id, fmt::format("key 'id' in {} must be a string, not {}", ctx, type_name(id->type())));
        return;
    }
    if (!names::valid(task.id)) {
        r.error(*id, fmt::format("task id '{}' in group '{}' {}", task.id, g.name, name_problem(task.id)));
        return;
    }
    if (task.id == "report.json") {
        r.error(*id, fmt::format("task id '{}' in group '{}' is reserved for the group's report", task.id, g.name));
        return;
    }
    task.where = where(id->source());
    g.tasks.push_back(std::move(task));
}

// The inputs of a group as written, checked once every group is known.
struct InputRef {
    std::size_t group;  // index into Plan::groups
    std::string name;
    Location at;
};

void read_group(Reader& r, const toml::table& t, Plan& plan, std::size_t block, const Params& inherited,
                std::vector<InputRef>& inputs) {
    GroupSpec g;
    g.index = plan.groups.size() + 1;
    g.block = block;
    g.where = where(t.source());
    std::string ctx = fmt::format("{} number {}", block == 0 ? "[[group]]" : "[[round.group]]", g.index);
    r.check_keys(t,
                 {"name", "plugin", "device", "params", "tasks", "inputs", "verify-inputs", "task", "memory",
                  "gpu-memory", "preload", "keep-loaded"},
                 ctx);

    g.name = fmt::format("group-{}", g.index);
    if (auto n = r.name(t, "name", ctx)) {
        // A group's folder sits beside the run's own files.
        for (const char* reserved : {"run.json", "events.jsonl", "report.html", "rounds.csv", "notify.log"})
            if (*n == reserved)
                r.error(*t.get("name"), fmt::format("group name '{}' is reserved for the run's own files", *n));
        if (n->rfind(".fedflow", 0) == 0)  // .fedflow.lock, .fedflow.reserve
            r.error(*t.get("name"), fmt::format("group name '{}' is reserved: names that begin with '.fedflow' are "
                                                "the workdir's own files",
                                                *n));
        if (n->rfind("round-", 0) == 0 && n->size() > 6 &&
            std::all_of(n->begin() + 6, n->end(), [](char c) { return c >= '0' && c <= '9'; }))
            r.error(*t.get("name"), fmt::format("group name '{}' is reserved for the folders of rounds", *n));
        g.name = *n;
    }
    ctx = fmt::format("group '{}'", g.name);
    // Once, against its first use: a third 'a' is one error, not two.
    auto first = std::find_if(plan.groups.begin(), plan.groups.end(),
                              [&](const GroupSpec& other) { return other.name == g.name; });
    if (first != plan.groups.end())
        r.error(g.where, fmt::format("group name '{}' is used twice (first at line {})", g.name, first->where.line));

    if (auto p = r.string(t, "plugin", ctx)) {
        g.plugin = *p;
        g.plugin_where = where(t.get("plugin")->source());
        if (p->empty()) r.error(g.plugin_where, fmt::format("plugin of {} is empty", ctx));
    } else if (t.get("plugin") == nullptr) {
        r.error(g.where, fmt::format("{} needs a plugin (a registered name, or a path to a .so)", ctx));
    }
    if (auto d = r.device(t, ctx)) g.device = *d;
    g.memory = r.size(t, "memory", ctx);
    g.gpu_memory = r.size(t, "gpu-memory", ctx);
    const Params group_params = r.params(t, ctx, inherited);
    const Dict& params = group_params.values;
    g.param_where = group_params.where;

    if (const toml::node* in = r.typed(t, "inputs", toml::node_type::array, ctx)) {
        for (const auto& item : *in->as_array()) {
            if (auto str = item.as_string()) inputs.push_back({plan.groups.size(), str->get(), where(item.source())});
            else r.error(item, fmt::format("inputs of {} must be group names (strings)", ctx));
        }
    }

    if (const toml::node* pre = r.typed(t, "preload", toml::node_type::array, ctx)) {
        for (const auto& item : *pre->as_array()) {
            auto str = item.as_string();
            if (str && !str->get().empty()) g.preload.push_back(str->get());
            else r.error(item, fmt::format("preload of {} must be module names (strings)", ctx));
        }
    }
    if (auto b = r.boolean(t, "verify-inputs", ctx)) g.verify_inputs = *b;
    if (auto b = r.boolean(t, "keep-loaded", ctx)) {
        g.keep_loaded = *b;
        // Outside rounds a group runs once: there is no next round to keep
        // its workers for.
        if (block == 0)
            r.error(*t.get("keep-loaded"), fmt::format("keep-loaded of {} applies only to a group of a [[round]] "
                                                       "([[round.group]]): a [[group]] runs once",
                                                       ctx));
    }

    auto count = r.integer(t, "tasks", ctx, 0, 1000000);
    if (count) {
        g.count = static_cast<std::size_t>(*count);
        g.alike.params = params;
        g.alike.where = where(t.get("tasks")->source());
    }
    if (const toml::node* list = t.get("task")) {
        if (auto arr = list->as_array(); arr && arr->is_array_of_tables()) {
            for (const auto& item : *arr) read_task(r, *item.as_table(), group_params, g);
        } else {
            r.error(*list, fmt::format("'task' in {} must be written [[group.task]] (an array of tables)", ctx));
        }
    }
    if (!count && t.get("task") == nullptr) {
        g.count = 1;  // neither `tasks` nor [[group.task]]: one task, "0"
        g.alike.params = params;
        g.alike.where = g.where;
    }
    if (g.task_count() == 0 && count && *count == 0 && t.get("task") == nullptr)
        r.error(*t.get("tasks"), fmt::format("{} has no tasks (tasks = 0)", ctx));

    // The ids of the alike tasks are "0" to "count-1", unique by making.
    std::set<std::string_view> seen;
    for (const auto& task : g.tasks)
        if (is_alike_id(task.id, g.count) || !seen.insert(task.id).second)
            r.error(task.where, fmt::format("task id '{}' appears twice in {}", task.id, ctx));
    plan.groups.push_back(std::move(g));
}

std::optional<std::vector<std::string>> strings(Reader& r, const toml::table& t, std::string_view key,
                                                std::string_view context, bool one_is_a_list) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    std::vector<std::string> out;
    if (auto s = n->as_string(); s && one_is_a_list) {
        out.push_back(s->get());
        return out;
    }
    auto arr = n->as_array();
    bool ok = arr != nullptr;
    if (ok)
        for (const auto& item : *arr) {
            if (auto s = item.as_string()) out.push_back(s->get());
            else ok = false;
        }
    if (!ok) {
        r.error(*n, fmt::format("key '{}' in {} must be {}", key, context,
                                one_is_a_list ? "a string or a list of strings" : "a list of strings"));
        return std::nullopt;
    }
    return out;
}

void read_notify(Reader& r, const toml::table& t, Plan& plan) {
    constexpr std::string_view ctx = "[notify]";
    notify::Config n;
    const Location at_notify = where(t.source());
    r.check_keys(t, {"command", "smtp", "on"}, ctx);
    if (auto argv = strings(r, t, "command", ctx, false)) {
        if (argv->empty())
            r.error(*t.get("command"), "command in [notify] is empty: give the program and its arguments");
        n.command = *argv;
    }
    if (auto on = strings(r, t, "on", ctx, true)) {
        n.on_group = n.on_run = false;
        for (const auto& w : *on) {
            if (w == "group") n.on_group = true;
            else if (w == "run") n.on_run = true;
            else r.error(*t.get("on"), fmt::format("on in [notify] takes \"group\" and \"run\", not \"{}\"", w));
        }
    }
    if (const toml::node* node = r.typed(t, "smtp", toml::node_type::table, ctx)) {
        const toml::table& m = *node->as_table();
        constexpr std::string_view sctx = "smtp of [notify]";
        r.check_keys(m, {"server", "port", "security", "from", "to", "user", "password-env", "subject"}, sctx);
        notify::Config::Smtp smtp;
        Location at = where(m.source());
        if (auto v = r.string(m, "server", sctx)) smtp.server = *v;
        else if (m.get("server") == nullptr) r.error(at, "smtp of [notify] needs a server");
        if (auto v = r.integer(m, "port", sctx, 1, 65535)) smtp.port = static_cast<std::uint32_t>(*v);
        if (auto v = r.string(m, "security", sctx)) {
            if (*v != "starttls" && *v != "ssl" && *v != "none")
                r.error(*m.get("security"),
                        fmt::format("security '{}' in {} must be \"starttls\", \"ssl\" or \"none\"", *v, sctx));
            smtp.security = *v;
        }
        if (auto v = r.string(m, "from", sctx)) smtp.from = *v;
        else if (m.get("from") == nullptr) r.error(at, "smtp of [notify] needs a from address");
        if (auto v = strings(r, m, "to", sctx, true)) {
            smtp.to = *v;
            if (v->empty()) r.error(*m.get("to"), "to in smtp of [notify] is empty");
        } else if (m.get("to") == nullptr) {
            r.error(at, "smtp of [notify] needs to: one address or a list");
        }
        if (auto v = r.string(m, "user", sctx)) smtp.user = *v;
        if (auto v = r.string(m, "password-env", sctx)) smtp.password_env = *v;
        if (auto v = r.string(m, "subject", sctx)) smtp.subject = *v;
        if (!smtp.from.empty() && smtp.from.find('@') == std::string::npos)
            r.error(*m.get("from"), fmt::format("from in {} is not an e-mail address: '{}'", sctx, smtp.from));
        n.smtp = std::move(smtp);
    }
    if (n.command.empty() && !n.smtp && !r.failed())
        r.error(at_notify, "[notify] needs a command or an smtp table: nothing would be told");
    plan.notify = std::move(n);
}

// An input names a group that can have run before: one earlier in the
// file, or (inside a round) any group of the same round, itself included:
// its previous round's instance.
void check_inputs(Reader& r, Plan& plan, const std::vector<InputRef>& inputs) {
    for (const InputRef& in : inputs) {
        GroupSpec& g = plan.groups[in.group];
        std::string ctx = fmt::format("group '{}'", g.name);
        const GroupSpec* target = plan.find_group(in.name);
        if (target == nullptr) {
            std::vector<std::string_view> names;
            for (const auto& other : plan.groups) names.push_back(other.name);
            r.error(in.at, fmt::format("inputs of {}: there is no group '{}'{}", ctx, in.name,
                                       text::did_you_mean(in.name, names)));
            continue;
        }
        bool same_round = g.block != 0 && target->block == g.block;
        if (target == &g && g.block == 0) {
            r.error(in.at, fmt::format("{} lists itself in inputs", ctx));
        } else if (target->index > g.index && !same_round) {
            r.error(in.at, fmt::format("inputs of {}: group '{}' (line {}) never runs before it", ctx, in.name,
                                       target->where.line));
        } else if (std::find(g.inputs.begin(), g.inputs.end(), in.name) == g.inputs.end()) {
            g.inputs.push_back(in.name);
        }
    }
}

std::vector<fs::path> path_list(Reader& r, const toml::table& t, const fs::path& dir) {
    std::vector<fs::path> out;
    const toml::node* n = t.get("plugin-path");
    if (n == nullptr) return out;
    auto add = [&](const toml::node& item) {
        if (auto s = item.as_string()) out.push_back((dir / s->get()).lexically_normal());
        else r.error(item, fmt::format("plugin-path entries must be strings, not {}", type_name(item.type())));
    };
    if (auto arr = n->as_array()) {
        for (const auto& item : *arr) add(item);
    } else {
        add(*n);
    }
    return out;
}

}  // namespace

Plan parse(std::string_view text, const fs::path& file) {
    Plan plan;
    plan.file = fs::absolute(file).lexically_normal();
    plan.given_file = file;
    plan.dir = plan.file.parent_path();
    plan.digest = digest(text);
    plan.text = std::string(text);
    plan.scheduler.max_processes = std::max(1u, std::thread::hardware_concurrency());
    plan.workdir = plan.dir / "fedflow-runs" / plan.file.stem();

    Reader r(file);
    toml::table root;
    try {
        root = toml::parse(text, file.string());
    } catch (const toml::parse_error& e) {
        const auto& b = e.source().begin;
        throw PlanError({fmt::format("{}:{}:{}: {}", file.string(), b.line, b.column, e.description())});
    }

    r.check_keys(root,
                 {"workdir", "plugin-path", "resources", "scheduler", "slurm", "group", "round", "notify", "params"},
                 "the plan");
    // Inherited by every group (a [[round]]'s and a group's own override them).
    const Params plan_params = r.params(root, "the plan");
    if (auto w = r.string(root, "workdir", "the plan")) plan.workdir = (plan.dir / *w).lexically_normal();
    plan.plugin_path = path_list(r, root, plan.dir);
    if (auto n = r.typed(root, "resources", toml::node_type::table, "the plan"))
        read_resources(r, *n->as_table(), plan.resources);
    if (auto n = r.typed(root, "scheduler", toml::node_type::table, "the plan"))
        read_scheduler(r, *n->as_table(), plan.scheduler);
    if (auto n = r.typed(root, "notify", toml::node_type::table, "the plan")) read_notify(r, *n->as_table(), plan);
    if (auto n = r.typed(root, "slurm", toml::node_type::table, "the plan")) read_slurm(r, *n->as_table(), plan.slurm);

    // [[group]] and [[round]] tables run in file order, whichever array
    // they belong to.
    struct Entry {
        Location at;
        const toml::table* group = nullptr;  // a [[group]], or else
        const toml::table* round = nullptr;  // a [[round]]
    };
    std::vector<Entry> entries;
    auto collect = [&](const char* key, bool is_round) {
        const toml::node* n = root.get(key);
        if (n == nullptr) return;
        auto arr = n->as_array();
        if (arr == nullptr || !arr->is_array_of_tables()) {
            r.error(*n, fmt::format("'{0}' must be written [[{0}]] (an array of tables)", key));
            return;
        }
        for (const auto& item : *arr)
            entries.push_back(
                {where(item.source()), is_round ? nullptr : item.as_table(), is_round ? item.as_table() : nullptr});
    };
    collect("group", false);
    collect("round", true);
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return std::tie(a.at.line, a.at.column) < std::tie(b.at.line, b.at.column);
    });
    std::vector<InputRef> inputs;
    for (const Entry& e : entries) {
        if (e.group != nullptr) {
            read_group(r, *e.group, plan, 0, plan_params, inputs);
            continue;
        }
        const toml::table& t = *e.round;
        RoundSpec round;
        round.where = e.at;
        std::string ctx = fmt::format("[[round]] number {}", plan.rounds.size() + 1);
        r.check_keys(t, {"count", "stop-when", "keep-rounds", "stop-on-failure", "params", "group"}, ctx);
        if (auto b = r.boolean(t, "stop-on-failure", ctx)) round.stop_on_failure = *b;
        const Params round_params = r.params(t, ctx, plan_params);
        if (auto n = r.integer(t, "count", ctx, 1, 1000000)) round.count = static_cast<std::uint32_t>(*n);
        else if (t.get("count") == nullptr)
            r.error(round.where, fmt::format("{} needs a count (how many rounds)", ctx));
        if (auto k = r.integer(t, "keep-rounds", ctx, 0, 1000000)) round.keep_rounds = static_cast<std::uint32_t>(*k);
        if (auto w = r.string(t, "stop-when", ctx)) {
            round.stop_when = *w;
            if (w->empty())
                r.error(*t.get("stop-when"), fmt::format("stop-when of {} is empty: name a result key", ctx));
        }
        round.first = plan.groups.size();
        const toml::node* groups = t.get("group");
        auto arr = groups != nullptr ? groups->as_array() : nullptr;
        if (groups != nullptr && (arr == nullptr || !arr->is_array_of_tables()))
            r.error(*groups, fmt::format("'group' in {} must be written [[round.group]] (an array of tables)", ctx));
        else if (arr == nullptr || arr->empty())
            r.error(round.where, fmt::format("{} has no [[round.group]]: nothing to repeat", ctx));
        else
            for (const auto& item : *arr)
                read_group(r, *item.as_table(), plan, plan.rounds.size() + 1, round_params, inputs);
        round.last = plan.groups.size();
        plan.rounds.push_back(round);
    }
    check_inputs(r, plan, inputs);
    if (plan.groups.empty() && !r.failed()) r.error(Location{1, 1}, "the plan has no [[group]]: nothing to run");
    if (r.failed()) throw PlanError(r.take_errors());
    return plan;
}

namespace {

// A value as a message shows it: 20.0, "text", a list, a table.
std::string shown(const Value& v) {
    switch (v.type()) {
    case Value::Type::boolean: return v.as<bool>() ? "true" : "false";
    case Value::Type::integer: return std::to_string(v.as<std::int64_t>());
    case Value::Type::real: {
        std::string d = fmt::format("{}", v.as<double>());
        return d.find_first_of(".en") == std::string::npos ? d + ".0" : d;
    }
    case Value::Type::string: return fmt::format("\"{}\"", v.as<std::string>());
    case Value::Type::list: return "a list";
    case Value::Type::dict: return "a table";
    default: return v.type_name();
    }
}

// The plan's word for a type (TOML's: a table, not a dict).
const char* param_type_name(Value::Type t) { return t == Value::Type::dict ? "table" : Value::type_name(t); }

bool fits(const Value& v, Value::Type t) {
    return t == Value::Type::null || v.type() == t || (t == Value::Type::real && v.is<std::int64_t>());
}

}  // namespace

std::vector<ParamDecl> parse_param_declaration(std::string_view text, const std::string& origin) {
    Reader r(origin);
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        const auto& b = e.source().begin;
        throw PlanError({fmt::format("{}:{}:{}: {}", origin, b.line, b.column, e.description())});
    }
    static const std::pair<const char*, Value::Type> types[] = {
        {"bool", Value::Type::boolean},  {"integer", Value::Type::integer}, {"double", Value::Type::real},
        {"string", Value::Type::string}, {"list", Value::Type::list},       {"dict", Value::Type::dict},
        {"table", Value::Type::dict},    {"any", Value::Type::null}};
    std::vector<ParamDecl> out;
    for (const auto& [key, node] : root) {
        std::string ctx = fmt::format("the declaration of param '{}'", key.str());
        const toml::table* t = node.as_table();
        if (t == nullptr) {
            r.error(node, fmt::format("{} must be a table such as {{ type = \"integer\", default = 1 }}", ctx));
            continue;
        }
        r.check_keys(*t, {"type", "default", "required", "doc"}, ctx);
        ParamDecl d;
        d.name = std::string(key.str());
        if (auto type = r.string(*t, "type", ctx)) {
            auto it = std::find_if(std::begin(types), std::end(types), [&](const auto& e) { return *type == e.first; });
            if (it == std::end(types))
                r.error(*t->get("type"), fmt::format("type '{}' in {} is none of bool, integer, double, string, list, "
                                                     "dict, any",
                                                     *type, ctx));
            else d.type = it->second;
        }
        d.required = r.boolean(*t, "required", ctx).value_or(false);
        (void)r.string(*t, "doc", ctx);
        if (const toml::node* def = t->get("default")) {
            d.default_value = r.value(*def, 1);
            if (!fits(*d.default_value, d.type))
                r.error(*def, fmt::format("the default of param '{}' is {}, not {}", d.name,
                                          d.default_value->type_name(), param_type_name(d.type)));
            if (d.required) r.error(*def, fmt::format("param '{}' is required and has a default: choose one", d.name));
        }
        out.push_back(std::move(d));
    }
    if (r.failed()) throw PlanError(r.take_errors());
    return out;
}

void apply_param_declaration(Plan& plan, std::size_t group, const std::vector<ParamDecl>& decls,
                             const std::string& plugin, std::vector<std::string>& errors) {
    GroupSpec& g = plan.groups[group];
    auto at = [&](const TaskSpec& t, const std::string& key) {
        for (const ParamWhere* list : std::initializer_list<const ParamWhere*>{&t.param_where, &g.param_where})
            for (const auto& [k, loc] : *list)
                if (k == key) return loc;
        return g.where;
    };
    std::set<std::string> seen;  // tasks whose params are alike: one message
    for (TaskSpec* spec : g.specs()) {
        TaskSpec& t = *spec;
        for (const auto& d : decls) {
            const Value* v = t.params.find(d.name);
            std::string message;
            if (v == nullptr && d.required) {
                message = fmt::format("group '{}' needs param '{}' ({}), which plugin '{}' requires", g.name, d.name,
                                      param_type_name(d.type), plugin);
            } else if (v == nullptr) {
                if (d.default_value) t.params.insert_or_assign(d.name, *d.default_value);
                continue;
            } else if (!fits(*v, d.type)) {
                message = fmt::format("param '{}' of group '{}' is {} ({}), but plugin '{}' takes {} {}", d.name,
                                      g.name, shown(*v), v->type_name(), plugin,
                                      d.type == Value::Type::integer ? "an" : "a", param_type_name(d.type));
                if (d.type == Value::Type::integer && v->is<double>() &&
                    v->as<double>() == std::trunc(v->as<double>()) && std::abs(v->as<double>()) < 1e15)
                    message += fmt::format(" (write {})", static_cast<std::int64_t>(v->as<double>()));
            } else {
                continue;
            }
            Location loc = at(t, d.name);
            std::string full = fmt::format("{}:{}:{}: {}", plan.given_file.string(), loc.line, loc.column, message);
            if (seen.insert(full).second) errors.push_back(std::move(full));
        }
    }
}

Plan load(const fs::path& file) {
    auto refuse = [&](const std::string& why) {
        throw PlanError({fmt::format("{}: cannot read the plan file: {}", file.string(), why)});
    };
    // O_NONBLOCK: a FIFO given as the plan is refused below instead of
    // blocking the open until someone writes to it.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) refuse(std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) refuse(std::strerror(errno));
    // A directory read as a file is empty ("no [[group]]"), /dev/zero
    // never ends: only a regular file is a plan.
    if (!S_ISREG(st.st_mode)) {
        using T = fs::file_type;
        const T type = S_ISDIR(st.st_mode)    ? T::directory
                       : S_ISCHR(st.st_mode)  ? T::character
                       : S_ISBLK(st.st_mode)  ? T::block
                       : S_ISFIFO(st.st_mode) ? T::fifo
                       : S_ISSOCK(st.st_mode) ? T::socket
                                              : T::unknown;
        refuse(fmt::format("it is {}, not a regular file", units::file_kind(type)));
    }
    if (static_cast<std::uint64_t>(st.st_size) > max_plan_size)
        refuse(
            fmt::format("it is {} bytes, more than the {} bytes (64 MiB) a plan may have", st.st_size, max_plan_size));
    // Read up to one byte past the limit: a file that grows meanwhile is
    // refused as well, never read without end.
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) refuse(std::strerror(errno));
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > max_plan_size)
            refuse(fmt::format("it is more than the {} bytes (64 MiB) a plan may have", max_plan_size));
    }
    return parse(text, file);
}

}  // namespace fedflow::plan
