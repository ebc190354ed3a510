// The tty view's model (runner/progress.hpp): its counts, and that what it
// holds does not grow with the run.
#include "runner/progress.hpp"

#include <doctest/doctest.h>

#include <string>

using fedflow::LiveStatus;
using fedflow::detail::TtyModel;
using json = nlohmann::ordered_json;

namespace {

json status(const std::string& group, int round, int task, const char* s) {
    return {{"event", "status"}, {"group", group}, {"round", round}, {"task", std::to_string(task)}, {"status", s}};
}

// One round of `tasks` clients that all finish but the last, which fails.
void round_of(TtyModel& m, int round, int tasks) {
    m.event({{"event", "round_start"}, {"round", round}, {"of", 500}});
    m.event({{"event", "group_start"}, {"group", "clients"}, {"round", round}, {"tasks", tasks}});
    for (int t = 0; t < tasks; ++t) {
        for (const char* s : {"AVAILABLE", "LOADING", "WAITING", "TRAINING"}) m.event(status("clients", round, t, s));
        m.event(status("clients", round, t, t + 1 == tasks ? "EXCEPTION" : "FINISHED"));
    }
    m.event({{"event", "group_end"}, {"group", "clients"}, {"round", round}});
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

}  // namespace

TEST_CASE("tty model: counts per group, and the last few groups drawn") {
    TtyModel m;
    m.event({{"event", "run_start"}, {"plan", "/p/plan.toml"}, {"planned_tasks", 500 * 10}});
    round_of(m, 1, 10);
    m.event({{"event", "group_start"}, {"group", "clients"}, {"round", 2}, {"tasks", 10}});
    m.event(status("clients", 2, 0, "AVAILABLE"));
    m.event(status("clients", 2, 1, "AVAILABLE"));
    m.event(status("clients", 2, 1, "TRAINING"));
    std::string frame = joined(m.frame(LiveStatus{}, 200, 10.0));
    CHECK(frame.find("10/5000 tasks") != std::string::npos);
    CHECK(frame.find("clients r1") != std::string::npos);
    CHECK(frame.find("  10/10  ") != std::string::npos);
    CHECK(frame.find("1 failed") != std::string::npos);
    CHECK(frame.find("1 training · 1 loading") != std::string::npos);
    CHECK(m.tasks_followed() == 2);  // the two of round 2 that have not ended
}

TEST_CASE("tty model: 500 rounds hold no more than one does") {
    TtyModel m;
    m.event({{"event", "run_start"}, {"plan", "plan.toml"}, {"planned_tasks", 500 * 50}});
    for (int r = 1; r <= 500; ++r) round_of(m, r, 50);
    CHECK(m.tasks_followed() == 0);
    CHECK(m.groups_held() <= 4);
    std::string frame = joined(m.frame(LiveStatus{}, 200, 10.0));
    CHECK(frame.find("clients r500") != std::string::npos);
    CHECK(frame.find("clients r497") != std::string::npos);
    CHECK(frame.find("clients r496") == std::string::npos);
    CHECK(frame.find("25000/25000 tasks") != std::string::npos);
}
