#include "runner/task_group.hpp"

#include "common/json.hpp"
#include "runner/results.hpp"

#include <fmt/core.h>

#include <map>
#include <stdexcept>
#include <tuple>

namespace fedflow {

TaskGroup::TaskGroup(std::size_t index, std::string group_name, std::string device, std::uint64_t seed)
    : index_(index),
      group_name_(std::move(group_name)),
      device_(std::move(device)),
      rng_(seed ^ (0x9e3779b97f4a7c15ull * index)) {}

Task& TaskGroup::add_task(Task task) {
    if (get_task(task.task_id()) != nullptr)
        throw std::invalid_argument(fmt::format("group {} already has a task '{}'", group_name_, task.task_id()));
    tasks_.push_back(std::make_unique<Task>(std::move(task)));
    try {
        failure_of_.push_back(nullptr);
        by_id_.added(tasks_.size(), [this](std::size_t i) { return id_at(i); });
    } catch (...) {
        failure_of_.resize(tasks_.size() - 1);
        tasks_.pop_back();
        throw;
    }
    return *tasks_.back();
}

void TaskGroup::reserve(std::size_t n) {
    tasks_.reserve(n);
    failure_of_.reserve(n);
}

std::size_t TaskGroup::position(std::string_view task_id) const noexcept {
    return by_id_.find(task_id, tasks_.size(), [this](std::size_t i) { return id_at(i); });
}

Task* TaskGroup::get_task(std::string_view task_id) noexcept {
    std::size_t i = position(task_id);
    return i == detail::KeyIndex::none ? nullptr : tasks_[i].get();
}

void TaskGroup::report_finish(std::string_view task_id, nlohmann::ordered_json data) {
    Task* t = get_task(task_id);
    if (t == nullptr) throw std::invalid_argument(fmt::format("group {} has no task '{}'", group_name_, task_id));
    t->set_result(std::move(data));
    t->set_status(TaskStatus::FINISHED);
}

void TaskGroup::report_exception(std::string_view task_id, std::string stage, std::string message) {
    std::size_t i = position(task_id);
    if (i == detail::KeyIndex::none)
        throw std::invalid_argument(fmt::format("group {} has no task '{}'", group_name_, task_id));
    report_exception_at(i, std::move(stage), std::move(message));
}

void TaskGroup::report_exception_at(std::size_t i, std::string stage, std::string message) {
    tasks_.at(i)->set_status(TaskStatus::EXCEPTION);
    const Failure* f = &*failure_pool_.insert(Failure{std::move(stage), std::move(message)}).first;
    if (failure_of_[i] == nullptr) ++failed_;
    failure_of_[i] = f;
}

const TaskGroup::Failure* TaskGroup::failure(std::string_view task_id) const {
    std::size_t i = position(task_id);
    return i == detail::KeyIndex::none ? nullptr : failure_of_[i];
}

bool TaskGroup::finished() const noexcept {
    for (const auto& t : tasks_)
        if (!is_final(t->status())) return false;
    return true;
}

std::size_t TaskGroup::count(TaskStatus s) const noexcept {
    std::size_t n = 0;
    for (const auto& t : tasks_) n += t->status() == s;
    return n;
}

Task* TaskGroup::retrieve_task(TaskStatus s) {
    if (s == TaskStatus::INIT) {
        // The scheduler asks for the next task to start once per start: a
        // seeded shuffle of the tasks, drawn from the back, keeps that O(1)
        // and gives the same random order as a pick among the INIT ones.
        while (!init_order_.empty() && init_order_.back()->status() != TaskStatus::INIT) init_order_.pop_back();
        if (init_order_.empty()) {
            // (Re)built when drawn dry: also finds a task that went back to INIT.
            for (auto& t : tasks_)
                if (t->status() == TaskStatus::INIT) init_order_.push_back(t.get());
            for (std::size_t i = init_order_.size(); i > 1; --i) {
                std::uniform_int_distribution<std::size_t> pick(0, i - 1);
                std::swap(init_order_[i - 1], init_order_[pick(rng_)]);
            }
        }
        return init_order_.empty() ? nullptr : init_order_.back();
    }
    std::vector<Task*> candidates;
    for (auto& t : tasks_)
        if (t->status() == s) candidates.push_back(t.get());
    if (candidates.empty()) return nullptr;
    std::uniform_int_distribution<std::size_t> pick(0, candidates.size() - 1);
    return candidates[pick(rng_)];
}

std::string TaskGroup::entry_status(std::size_t position) const {
    const Task& t = *tasks_[position];
    if (t.restored()) return "FINISHED";  // in an earlier run (--resume)
    // A task whose process has exited after finishing is reported by its
    // outcome: FINISHED.
    TaskStatus s = t.status();
    return to_string(s == TaskStatus::EXITED ? TaskStatus::FINISHED : s);
}

nlohmann::ordered_json TaskGroup::entry(std::size_t position) const {
    const Task& t = *tasks_[position];
    if (t.restored()) {
        // Finished in an earlier run (--resume): reported as it was then.
        nlohmann::ordered_json e = t.restored_report();
        e["status"] = "FINISHED";
        e["result"] = t.result();
        return e;
    }
    nlohmann::ordered_json e;
    TaskStatus s = t.status();
    e["status"] = entry_status(position);
    if (!t.device().empty()) e["device"] = t.device();
    const TaskStats& st = t.stats();
    if (st.load_ms >= 0) e["load_ms"] = st.load_ms;
    if (st.train_ms >= 0) e["train_ms"] = st.train_ms;
    if (st.peak_memory >= 0) e["peak_memory"] = st.peak_memory;
    if (st.peak_gpu_memory >= 0) e["peak_gpu_memory"] = st.peak_gpu_memory;
    e["retries"] = {{"load", t.estimates().load_retries}, {"train", t.estimates().train_retries}};
    if (st.loads >= 0) e["keep_loaded"] = {{"kept", st.kept}, {"loads", st.loads}, {"evictions", st.evictions}};
    if (const Failure* f = failure_of_[position]) {
        e["stage"] = f->stage;
        e["message"] = f->message;
    }
    if (s == TaskStatus::FINISHED || s == TaskStatus::EXITED) e["result"] = t.result();
    return e;
}

nlohmann::ordered_json TaskGroup::head() const {
    nlohmann::ordered_json out;
    out["group"] = group_name_;
    out["index"] = index_;
    if (round_ != 0) out["round"] = round_;
    out["plugin"] = plugin_;
    if (!device_.empty()) out["device"] = device_;
    out["tasks"] = nlohmann::ordered_json::object();
    return out;
}

nlohmann::ordered_json TaskGroup::result() const {
    nlohmann::ordered_json out = head();
    nlohmann::ordered_json& tasks = out["tasks"];
    for (std::size_t i = 0; i < tasks_.size(); ++i) jsonio::append(tasks, tasks_[i]->task_id(), entry(i));
    return out;
}

void TaskGroup::write_result(const std::filesystem::path& path) const {
    using json = nlohmann::ordered_json;
    // head() as write_json_file writes it ends in `"tasks": {}` and the
    // object's end; the entries go in between, each indented as dump()
    // would indent it two levels down.
    std::string text = head().dump(2, ' ', false, json::error_handler_t::replace);
    const std::string tail = "{}\n}";
    text.resize(text.size() - tail.size());
    results::TextFile out(path);
    out.write(text + "{");
    auto text_of = [](const json& entry) {
        std::string e = entry.dump(2, ' ', false, json::error_handler_t::replace);
        std::string indented;
        indented.reserve(e.size() + e.size() / 8);
        for (char c : e) {
            indented += c;
            if (c == '\n') indented += "    ";
        }
        return indented;
    };
    // A task that never ran (after a SIGTERM, 100,000 of them did not start)
    // has an entry of its status, retries and failure only: each alike
    // entry is made into text once.
    std::map<std::tuple<const Failure*, std::uint32_t, std::uint32_t>, std::string> never_ran;
    bool first = true;
    for (std::size_t i = 0; i < tasks_.size(); ++i) {
        const Task* t = tasks_[i].get();
        const TaskStats& st = t->stats();
        std::string fresh;
        const std::string* text = &fresh;
        if (!t->restored() && t->status() == TaskStatus::EXCEPTION && t->device().empty() && st.load_ms < 0 &&
            st.train_ms < 0 && st.peak_memory < 0 && st.peak_gpu_memory < 0) {
            auto key = std::make_tuple(failure_of_[i], t->estimates().load_retries, t->estimates().train_retries);
            auto it = never_ran.find(key);
            if (it == never_ran.end()) it = never_ran.emplace(key, text_of(entry(i))).first;
            text = &it->second;
        } else {
            fresh = text_of(entry(i));
        }
        out.write((first ? "\n    " : ",\n    ") +
                  json(t->task_id()).dump(-1, ' ', false, json::error_handler_t::replace) + ": " + *text);
        first = false;
    }
    out.write(first ? "}\n}\n" : "\n  }\n}\n");
    out.commit();
}

}  // namespace fedflow
