// resume.hpp: what an earlier run in the workdir finished (--resume).
#pragma once

#include "plan/plan.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

namespace fedflow {

class ResumeState {
public:
    struct Previous {                   // a task the earlier run finished
        nlohmann::ordered_json result;  // its result.json
        nlohmann::ordered_json report;  // its entry in the group's report.json
    };
    using Tasks = std::map<std::string, Previous>;  // task id -> what it left

    // Reads what the run in workdir finished: its journal, result files and
    // reports. Throws std::invalid_argument when there is nothing to resume,
    // the run is still going, or the plan changed (unless force).
    void load(const plan::Plan& plan, const std::filesystem::path& workdir, bool force);

    // What round `round` (0 outside rounds) of group `group` finished;
    // nullptr when nothing.
    Tasks* finished(std::uint32_t round, const std::string& group);
    // How many tasks finished in all.
    std::size_t count() const noexcept;
    // The last round_end line journaled for round `round` of [[round]]
    // table `block` (1-based): its wall_ms, values, stopped_by and
    // keep_loaded, which a resumed run tells again for a round it restores
    // whole. nullptr when none.
    const nlohmann::ordered_json* round_end(std::size_t block, std::uint32_t round) const;

private:
    std::map<std::pair<std::uint32_t, std::string>, Tasks> finished_;
    std::map<std::pair<std::size_t, std::uint32_t>, nlohmann::ordered_json> round_ends_;  // (block, round)
};

// What a run in workdir left that a fresh run there would delete: its
// start, its status and how many tasks finished ("started
// 2026-12-01T09:00:00.000Z, ended 'finished', 1000 task(s) finished"), when
// its journal says that a task finished. nullopt when there is no run (no
// run.json), or nothing of it finished (a run that failed at once): such a
// run is replaced without asking. Reads the journal up to its first
// finished task.
std::optional<std::string> results_left(const std::filesystem::path& workdir);

}  // namespace fedflow
