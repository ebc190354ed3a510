#include "runner/task.hpp"

#include <fmt/core.h>

#include <stdexcept>

namespace fedflow {

const char* to_string(TaskStatus s) noexcept {
    switch (s) {
    case TaskStatus::INIT: return "INIT";
    case TaskStatus::AVAILABLE: return "AVAILABLE";
    case TaskStatus::LOADING: return "LOADING";
    case TaskStatus::WAITING: return "WAITING";
    case TaskStatus::TRAINING: return "TRAINING";
    case TaskStatus::FINISHED: return "FINISHED";
    case TaskStatus::EXITED: return "EXITED";
    case TaskStatus::EXCEPTION: return "EXCEPTION";
    case TaskStatus::INTERRUPT: return "INTERRUPT";
    }
    return "UNKNOWN";
}

bool is_final(TaskStatus s) noexcept {
    return s == TaskStatus::FINISHED || s == TaskStatus::EXITED || s == TaskStatus::EXCEPTION;
}

Task::Task(std::string task_id, std::string device, Dict params)
    : Task(std::move(task_id), std::move(device),
           params.empty() ? std::shared_ptr<const Dict>() : std::make_shared<const Dict>(std::move(params))) {}

Task::Task(std::string task_id, std::string device, std::shared_ptr<const Dict> params)
    : task_id_(std::move(task_id)), device_(std::move(device)), params_(std::move(params)), pinned_(!device_.empty()) {
    // No params: one empty Dict for every task that has none.
    static const auto none = std::make_shared<const Dict>();
    if (params_ == nullptr) params_ = none;
}

void Task::set_status(TaskStatus s) {
    using S = TaskStatus;
    bool ok = false;
    switch (s) {
    case S::INIT: ok = status_ == S::AVAILABLE || status_ == S::INTERRUPT; break;  // restarted
    case S::AVAILABLE: ok = status_ == S::INIT || status_ == S::INTERRUPT; break;
    case S::LOADING: ok = status_ == S::AVAILABLE; break;
    case S::WAITING: ok = status_ == S::LOADING || status_ == S::INTERRUPT || status_ == S::TRAINING; break;
    case S::TRAINING: ok = status_ == S::WAITING; break;
    case S::FINISHED: ok = status_ == S::TRAINING; break;
    case S::EXITED: ok = status_ == S::FINISHED; break;
    case S::EXCEPTION: ok = status_ != S::FINISHED && status_ != S::EXITED && status_ != S::EXCEPTION; break;
    // (From WAITING: its node was lost while it waited for a device.)
    case S::INTERRUPT:
        ok = status_ == S::AVAILABLE || status_ == S::LOADING || status_ == S::WAITING || status_ == S::TRAINING;
        break;
    }
    if (!ok)
        throw std::logic_error(
            fmt::format("task {}: no transition from {} to {}", task_id_, to_string(status_), to_string(s)));
    status_ = s;
    // Stage timeouts count from here, and the live view shows how long a
    // task has loaded, waited or trained.
    if (s == TaskStatus::LOADING || s == TaskStatus::WAITING || s == TaskStatus::TRAINING)
        stage_started_ = std::chrono::steady_clock::now();
}

void Task::start(exec::Executor& executor, exec::WorkerId worker) {
    if (status_ != TaskStatus::INIT && status_ != TaskStatus::INTERRUPT)
        throw std::logic_error(fmt::format("task {}: start() in state {}", task_id_, to_string(status_)));
    executor_ = &executor;
    worker_ = worker;
    set_status(TaskStatus::AVAILABLE);
}

void Task::start_load() { set_status(TaskStatus::LOADING); }

void Task::start_train(const std::string& device) {
    set_status(TaskStatus::TRAINING);
    device_ = device;
}

void Task::restore(nlohmann::ordered_json result, nlohmann::ordered_json report) {
    if (status_ != TaskStatus::INIT)
        throw std::logic_error(fmt::format("task {}: restore() in state {}", task_id_, to_string(status_)));
    result_ = std::move(result);
    restored_report_ = std::move(report);
    restored_ = true;
    status_ = TaskStatus::FINISHED;
}

void Task::exit() {
    if (executor_ != nullptr) executor_->release(worker_);
}

}  // namespace fedflow
