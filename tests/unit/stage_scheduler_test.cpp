// StageScheduler's memory estimates with mapped inputs (docs/scheduling.md,
// "Memory of mapped inputs"): added to what the plan gave or defaulted,
// never to what was measured, and cut to what Fedflow may use.
#include "sched/stage_scheduler.hpp"

#include "sched/admission.hpp"
#include "sched/probe.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>

using namespace fedflow;

namespace {

constexpr std::uint64_t MB = 1'000'000;

sched::StageScheduler make() {
    sched::StageScheduler::Config c;
    c.default_memory = 1000 * MB;
    return sched::StageScheduler(c, std::make_unique<sched::Probe>(false));
}

}  // namespace

TEST_CASE("mapped inputs are added to the plan's and the default estimates") {
    sched::StageScheduler s = make();
    s.start_group(std::nullopt, std::nullopt);
    s.set_inputs_memory(300 * MB);
    CHECK(s.memory_estimate(std::nullopt, std::nullopt).bytes == 1300 * MB);
    CHECK(std::string(s.memory_estimate(std::nullopt, std::nullopt).source) == "default");
    CHECK(s.memory_estimate(std::nullopt, 200 * MB).bytes == 500 * MB);  // the task's own

    s.start_group(400 * MB, std::nullopt);  // a new group: its inputs are its own
    CHECK(s.memory_estimate(std::nullopt, std::nullopt).bytes == 400 * MB);
    s.set_inputs_memory(100 * MB);
    CHECK(s.memory_estimate(std::nullopt, std::nullopt).bytes == 500 * MB);  // the group's
}

TEST_CASE("measured estimates hold the mapped pages already") {
    sched::StageScheduler s = make();
    s.start_group(std::nullopt, std::nullopt);
    s.set_inputs_memory(300 * MB);
    s.learn(static_cast<std::int64_t>(500 * MB), -1);
    CHECK(std::string(s.memory_estimate(std::nullopt, std::nullopt).source) == "learned");
    CHECK(s.memory_estimate(std::nullopt, std::nullopt).bytes == 600 * MB);  // the peak and a fifth, no more
    CHECK(s.memory_estimate(700 * MB, std::nullopt).bytes == 700 * MB);      // grown
}

TEST_CASE("inputs larger than the machine make a task run alone, not never") {
    sched::StageScheduler s = make();
    const std::uint64_t cap = sched::memory_capacity(s.limits(), s.snapshot().ram_total);
    REQUIRE(cap > 1000 * MB);
    s.start_group(std::nullopt, std::nullopt);
    s.set_inputs_memory(cap * 4);
    CHECK(s.memory_estimate(std::nullopt, std::nullopt).bytes == cap);
    // An estimate the plan wrote larger than that stays as written.
    CHECK(s.memory_estimate(std::nullopt, cap * 2).bytes == cap * 2);
}
