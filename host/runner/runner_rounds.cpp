// runner_rounds.cpp: [[round]]: a round block's groups, count times, with
// stop-when, keep-rounds and rounds.csv.
#include "runner/runner.hpp"

#include "common/log.hpp"
#include "runner/results.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace fedflow {

fs::path Runner::group_dir(const plan::GroupSpec& spec, std::uint32_t round) const {
    return plan::group_dir(plan_, workdir_, spec, round);
}

void Runner::check_failed_entirely(const TaskGroup& group, std::uint32_t round) {
    const std::size_t n = group.tasks().size();
    if (n == 0 || group.failed_count() != n || !stop_reason_.empty()) return;
    // The first failure says why; the others are most often the same.
    std::string first;
    for (std::size_t i = 0; i < n; ++i)
        if (const TaskGroup::Failure* f = group.failure_at(i)) {
            // Its first line: a Python traceback follows in report.json.
            first = fmt::format("{}/{} in {}: {}", group.group_name(), group.tasks()[i]->task_id(), f->stage,
                                f->message.substr(0, f->message.find('\n')));
            break;
        }
    failed_stop_ = fmt::format("round {}: every task of group '{}' failed ({} of {}; {}): the run ends here, since "
                               "later rounds would repeat it (stop-on-failure = false in the [[round]] goes on)",
                               round, group.group_name(), n, n, first);
}

const json* Runner::restored_round(std::size_t first_group, const plan::RoundSpec& rounds, std::size_t block,
                                   std::uint32_t round) const {
    if (!options_.resume || groups_.size() - first_group != rounds.last - rounds.first) return nullptr;
    for (std::size_t i = first_group; i < groups_.size(); ++i)
        for (const auto& t : groups_[i]->tasks())
            if (!t->restored()) return nullptr;
    return previous_.round_end(block, round);
}

void Runner::warn_if_kept_cannot_wait(const plan::RoundSpec& rounds, std::size_t block) const {
    // Each kept worker holds a process slot between rounds, and the groups
    // that are not kept need one at least to run: with fewer slots, kept
    // workers are evicted every round and keep-loaded saves nothing. The
    // host does what the limits allow; the user should know before hours of
    // rounds. (On Slurm, max-processes is per node.)
    const std::uint32_t slots = plan_.scheduler.max_processes;
    if (slots == 0 || options_.slurm) return;
    std::size_t kept = 0;
    bool others = false;
    for (std::size_t i = rounds.first; i < rounds.last; ++i) {
        if (plan_.groups[i].keep_loaded) kept += plan_.groups[i].task_count();
        else others = true;
    }
    const std::size_t needed = kept + (others ? 1 : 0);
    if (kept == 0 || needed <= slots) return;
    log::warning("[[round]] {}: its keep-loaded groups have {} task(s), and max-processes is {}: {} of them cannot "
                 "wait between rounds, and are evicted and load again every round (max-processes = {} keeps them "
                 "all, where RAM and GPU memory allow)",
                 block, kept, slots, needed - slots, needed);
}

void Runner::run_rounds(const plan::RoundSpec& rounds) {
    const std::size_t block = static_cast<std::size_t>(&rounds - plan_.rounds.data()) + 1;
    bool keeps = false;  // the block has a keep-loaded group: its rounds count loads and evictions
    for (std::size_t i = rounds.first; i < rounds.last; ++i) keeps = keeps || plan_.groups[i].keep_loaded;
    warn_if_kept_cannot_wait(rounds, block);
    for (std::uint32_t r = 1; r <= rounds.count && stop_reason_.empty() && failed_stop_.empty(); ++r) {
        auto t0 = Clock::now();
        const std::int64_t evictions_before = evictions_;
        journal_.write({{"event", "round_start"}, {"round", r}, {"block", block}, {"of", rounds.count}});
        std::size_t first_group = groups_.size();
        for (std::size_t i = rounds.first; i < rounds.last && stop_reason_.empty() && failed_stop_.empty(); ++i) {
            run_group(i, r);
            if (rounds.stop_on_failure) check_failed_entirely(*groups_.back(), r);
        }
        // In whole milliseconds, as round_end keeps it: a resumed run tells
        // the same from the journal.
        const std::int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
        double wall_s = static_cast<double>(wall_ms) / 1000;

        // stop-when: a task of this round returned that key = true.
        std::string stopped_by;
        for (std::size_t i = first_group; i < groups_.size() && !rounds.stop_when.empty() && stopped_by.empty(); ++i)
            for (const auto& t : groups_[i]->tasks()) {
                const json& res = t->result();
                if (res.is_object() && res.contains(rounds.stop_when) && res[rounds.stop_when] == true) {
                    stopped_by = groups_[i]->group_name() + "/" + t->task_id();
                    break;
                }
            }

        // rounds.csv: the scalars the round's last group returned (the
        // server's accuracy, say), averaged over its finished tasks.
        RoundRow row{block, r, wall_s, json::object()};
        if (groups_.size() > first_group) {
            const TaskGroup& last = *groups_.back();
            std::map<std::string, std::pair<double, int>> sums;
            std::vector<std::string> order;
            for (const auto& t : last.tasks()) {
                if (!t->result().is_object()) continue;
                for (const auto& [k, v] : t->result().items()) {
                    // Scalars only; "round" and "wall_s" are rounds.csv's own columns.
                    if ((!v.is_number() && !v.is_boolean()) || k == "round" || k == "wall_s" || k == "block") continue;
                    if (!sums.count(k)) order.push_back(k);
                    auto& [sum, n] = sums[k];
                    sum += v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : v.get<double>();
                    ++n;
                }
            }
            for (const auto& k : order) row.values[k] = sums[k].first / sums[k].second;
        }
        // keep-loaded: how many tasks loaded this round, how many trained in
        // a kept worker, and how many kept workers were evicted (the
        // result's own keys of those names win).
        json keep;
        if (keeps) {
            std::int64_t loads = 0, kept = 0;
            for (std::size_t i = first_group; i < groups_.size(); ++i)
                for (const auto& t : groups_[i]->tasks()) {
                    const TaskStats& st = t->stats();
                    if (st.loads < 0) continue;
                    kept += st.kept;
                    loads += !st.kept && t->stats().load_ms >= 0;
                }
            keep = {{"loads", loads}, {"kept", kept}, {"evictions", evictions_ - evictions_before}};
            for (const auto& [k, v] : keep.items())
                if (!row.values.contains(k)) row.values[k] = v;
        }
        // --resume: a round whose every task the run before finished is told
        // as that run measured it, not as its replay (milliseconds, and no
        // values where keep-rounds removed its results).
        if (const json* before = restored_round(first_group, rounds, block, r)) {
            row.wall_s = wall_s = before->value("wall_ms", 0.0) / 1000;
            auto values = before->find("values");
            row.values = values != before->end() && values->is_object() ? *values : json::object();
            auto by = before->find("stopped_by");
            stopped_by = by != before->end() && by->is_string() ? by->get<std::string>() : std::string();
            if (auto k = before->find("keep_loaded"); keeps && k != before->end() && k->is_object()) keep = *k;
        }
        json end{{"event", "round_end"}, {"round", r},
                 {"block", block},       {"wall_ms", static_cast<std::int64_t>(std::llround(wall_s * 1000))},
                 {"values", row.values}, {"stopped_by", stopped_by.empty() ? json(nullptr) : json(stopped_by)}};
        if (keeps) end["keep_loaded"] = keep;
        journal_.write(std::move(end));

        // keep-rounds: only the folders of the last N rounds stay. The
        // round_removed line is on disk before the folder goes, so a host
        // killed at any point leaves a journal that --resume reads right:
        // before the line, the folder is whole and the round is restored;
        // after it, the round counts as removed, however much of its folder
        // is left (the resumed run removes the rest). A line that cannot be
        // written (a full disk) leaves the folder where it is.
        if (rounds.keep_rounds != 0 && r > rounds.keep_rounds) {
            std::uint32_t old = r - rounds.keep_rounds;
            failpoint("round-ended");
            journal_.write({{"event", "round_removed"}, {"round", old}, {"block", block}});
            if (journal_.sync()) {
                failpoint("round-removing");
                fs::path dir = workdir_ / plan::round_dir(old, rounds.count);
                bool shared = false;  // another [[round]] block's groups live there too
                for (const auto& other : plan_.rounds) shared = shared || (&other != &rounds && other.count >= old);
                if (shared) {
                    for (std::size_t i = rounds.first; i < rounds.last; ++i) fs::remove_all(dir / plan_.groups[i].name);
                } else {
                    fs::remove_all(dir);
                }
            }
        }
        outputs_->round_ended(std::move(row));
        if (!failed_stop_.empty()) break;
        if (!stopped_by.empty()) {
            log::info("round {}: {} returned {} = true: no more rounds", r, stopped_by, rounds.stop_when);
            break;
        }
    }
    release_kept();  // no round of this block comes again
}

}  // namespace fedflow
