#include "runner/resume.hpp"

#include "common/file_io.hpp"
#include "common/json.hpp"
#include "common/log.hpp"
#include "common/shm.hpp"
#include "common/text.hpp"
#include "runner/journal.hpp"
#include "runner/results.hpp"

#include <nlohmann/json.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include <unistd.h>

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace fedflow {

namespace {

// A JSON file read in linear time (jsonio::parse); a discarded value when it
// cannot be read or parsed.
json read_json(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return json(json::value_t::discarded);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return jsonio::parse(text, false);
}

// What is wrong with the byte files of a result that dir/result.json
// describes (one missing, or not of the size it says), or "". Their sizes
// only: reading every byte of every result at a resume would cost what the
// run wrote; a task that reads them checks their checksums
// (verify-inputs). A finished task whose byte file was cut short would
// otherwise stay finished, and fail every task that takes it as input, at
// every resume.
std::string damaged_byte_file(const json& result, const fs::path& dir) {
    std::vector<inputs_manifest::File> files;
    try {
        results::reference_result(result, dir, files);
    } catch (const std::exception& e) {
        return e.what();
    }
    for (const auto& f : files) {
        std::error_code ec;
        const std::uintmax_t n = fs::file_size(f.path, ec);
        const std::string name = fs::path(f.path).filename().string();
        if (ec) return fmt::format("its byte file {} cannot be read ({})", name, ec.message());
        if (n != f.size) return fmt::format("its byte file {} has {} bytes, its result.json says {}", name, n, f.size);
    }
    return {};
}

// What changed between two versions of a plan, for --resume's refusal:
// the first few lines that differ.
std::string plan_changes(const std::string& before, const std::string& after) {
    auto lines = [](const std::string& text) {
        std::vector<std::string> out;
        std::size_t start = 0;
        while (start <= text.size()) {
            std::size_t nl = text.find('\n', start);
            if (nl == std::string::npos) nl = text.size();
            out.push_back(text.substr(start, nl - start));
            start = nl + 1;
        }
        return out;
    };
    std::vector<std::string> a = lines(before), b = lines(after);
    std::string out;
    int shown = 0;
    for (std::size_t i = 0; i < std::max(a.size(), b.size()) && shown < 3; ++i) {
        const std::string* x = i < a.size() ? &a[i] : nullptr;
        const std::string* y = i < b.size() ? &b[i] : nullptr;
        if (x && y && *x == *y) continue;
        out += fmt::format("; line {}: {} is now {}", i + 1, x ? "'" + *x + "'" : "(none)",
                           y ? "'" + *y + "'" : "(none)");
        ++shown;
    }
    return out;
}

}  // namespace

void ResumeState::load(const plan::Plan& plan, const fs::path& workdir, bool force) {
    const fs::path run_file = workdir / "run.json";
    std::error_code ec;
    // What a host killed while it replaced a file left (file_io.hpp).
    file_io::remove_temporaries(workdir);
    if (!fs::exists(run_file, ec))
        throw std::invalid_argument(
            fmt::format("--resume: {} holds no Fedflow run (no run.json): nothing to resume", workdir.string()));
    // run.json holds the plan it ran (digest and text); a host killed by a
    // power loss may have left it empty or cut short (it is replaced
    // without fsync). Its journal's run_start, synced at once, holds the
    // digest too: --resume goes on from that, with a warning, since the
    // resumed run writes run.json anew.
    json run = read_json(run_file);
    const bool run_readable = run.is_object();

    // The journal says which tasks finished, with the checksum of the
    // result.json they left; a task counts only if that file is still there
    // as it was written (a torn last line is the mark of a killed host).
    using Key = std::tuple<std::uint32_t, std::string, std::string>;  // round, group, task
    std::map<Key, std::optional<std::uint64_t>> finished;
    // (block, round): rounds keep-rounds removed. By block: another
    // [[round]] block's round of that number is still there.
    std::set<std::pair<std::size_t, std::uint32_t>> removed_rounds;
    std::string journal_digest;  // the last run_start's plan_digest
    read_journal(workdir / "events.jsonl", [&](const std::string& line) {
        json e = json::parse(line, nullptr, false);
        if (e.is_discarded() || !e.is_object()) return true;
        auto round = e.value("round", std::uint32_t{0});
        const std::string kind = e.value("event", "");
        if (kind == "run_start" && e.contains("plan_digest") && e["plan_digest"].is_string())
            journal_digest = e["plan_digest"].get<std::string>();
        if (kind == "round_removed") removed_rounds.insert({e.value("block", std::size_t{1}), round});
        if (kind == "round_end") round_ends_[{e.value("block", std::size_t{1}), round}] = e;
        if (kind != "status" || e.value("status", "") != "FINISHED") return true;
        std::optional<std::uint64_t> sum;
        if (e.contains("result_checksum") && e["result_checksum"].is_string())
            sum = std::strtoull(e["result_checksum"].get<std::string>().c_str(), nullptr, 16);
        finished[{round, e.value("group", ""), e.value("task", "")}] = sum;
        return true;
    });

    auto text = [&](const char* key) {
        auto it = run.find(key);
        return run_readable && it != run.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (!run_readable)
        log::warning("--resume: {} cannot be read (empty or cut short: its host lost power?): resuming from what "
                     "events.jsonl says{}",
                     run_file.string(), journal_digest.empty() ? "" : " (the plan digest of its run_start)");
    const std::string before = run_readable ? text("plan_digest") : journal_digest;
    if (before != plan.digest) {
        if (!force)
            throw std::invalid_argument(fmt::format(
                "--resume: the plan changed since the run in {} (plan digest {} is now {}){}. Use --overwrite "
                "instead of --resume to start over, or add --force to resume with the plan as it is now",
                workdir.string(), before.empty() ? "unknown" : before.substr(0, 19), plan.digest.substr(0, 19),
                run_readable ? plan_changes(text("plan_text"), plan.text)
                             : std::string("; run.json, which holds the plan's text, cannot be read")));
        log::warning("--force: resuming the run in {} with a plan that changed since ({} is now {})", workdir.string(),
                     before.empty() ? "unknown" : before.substr(0, 19), plan.digest.substr(0, 19));
    }
    // A host before this one removed a round's folder before it wrote
    // round_removed: killed in between, it left a round whose removal was
    // due (keep-rounds later, a round ended) and whose results are gone.
    // That round was removed, not lost: running it again would find its
    // inputs gone too.
    for (std::size_t b = 1; b <= plan.rounds.size(); ++b) {
        const plan::RoundSpec& spec = plan.rounds[b - 1];
        for (std::uint32_t r = 1; spec.keep_rounds != 0 && r <= spec.count; ++r) {
            if (removed_rounds.count({b, r}) != 0 || round_ends_.count({b, r + spec.keep_rounds}) == 0) continue;
            bool gone = false;
            for (std::size_t i = spec.first; i < spec.last && !gone; ++i) {
                const plan::GroupSpec& g = plan.groups[i];
                const fs::path gdir = plan::group_dir(plan, workdir, g, r);
                for (std::size_t t = 0; t < g.task_count() && !gone; ++t) {
                    const std::string id = g.task_id(t);
                    gone = finished.count({r, g.name, id}) != 0 && !fs::exists(gdir / id / "result.json", ec);
                }
            }
            if (!gone) continue;
            log::warning("{}: keep-rounds was removing it when its host was killed: it counts as removed",
                         plan::round_dir(r, spec.count));
            removed_rounds.insert({b, r});
        }
    }
    for (const auto& g : plan.groups) {
        std::uint32_t rounds = g.block == 0 ? 0 : plan.rounds[g.block - 1].count;
        for (std::uint32_t r = g.block == 0 ? 0 : 1; r <= rounds; ++r) {
            const fs::path gdir = plan::group_dir(plan, workdir, g, r);
            file_io::remove_temporaries(gdir);
            json report = read_json(gdir / "report.json");
            // Each task's entry, by id, found once: a group may have 100,000.
            std::unordered_map<std::string_view, json*> entries;
            if (report.is_object() && report.contains("tasks") && report["tasks"].is_object())
                for (auto& [id, entry] : report["tasks"].items()) entries.emplace(id, &entry);
            for (std::size_t i = 0; i < g.task_count(); ++i) {
                const std::string id = g.task_id(i);
                auto it = finished.find({r, g.name, id});
                if (it == finished.end()) continue;
                Previous p;
                if (removed_rounds.count({g.block, r}) != 0) {
                    // keep-rounds removed its folder: it finished, and a
                    // later round's results have taken the place of its own.
                    p.result = nullptr;
                    p.report = json{{"removed", true}};
                    finished_[{r, g.name}][id] = std::move(p);
                    continue;
                }
                const fs::path dir = gdir / id;
                std::optional<std::uint64_t> sum = results::file_checksum(dir / "result.json");
                if (!sum || !it->second || *sum != *it->second) {
                    log::warning("{}/{}: its result.json is missing or not as it was written: it runs again",
                                 fs::relative(gdir, workdir).string(), id);
                    continue;
                }
                p.result = read_json(dir / "result.json");
                if (p.result.is_discarded()) continue;
                if (std::string bad = damaged_byte_file(p.result, dir); !bad.empty()) {
                    log::warning("{}/{}: {}: it runs again", fs::relative(gdir, workdir).string(), id,
                                 text::printable(bad));
                    continue;
                }
                if (auto e = entries.find(id); e != entries.end()) p.report = std::move(*e->second);
                else p.report = json::object();
                p.report.erase("result");
                finished_[{r, g.name}][id] = std::move(p);
            }
        }
    }
}

ResumeState::Tasks* ResumeState::finished(std::uint32_t round, const std::string& group) {
    auto it = finished_.find({round, group});
    return it == finished_.end() ? nullptr : &it->second;
}

const json* ResumeState::round_end(std::size_t block, std::uint32_t round) const {
    auto it = round_ends_.find({block, round});
    return it == round_ends_.end() ? nullptr : &it->second;
}

std::size_t ResumeState::count() const noexcept {
    std::size_t n = 0;
    for (const auto& [key, tasks] : finished_) n += tasks.size();
    return n;
}

std::optional<std::string> results_left(const fs::path& workdir) {
    // No run.json, no run: a fresh run removes it first, so what a host
    // killed while it replaced a run left was asked to go.
    std::error_code ec;
    if (!fs::exists(workdir / "run.json", ec)) return std::nullopt;
    bool finished = false;
    // The journal's writer puts no space in a line, and a quote inside a
    // string is escaped: this is a task's FINISHED line and nothing else.
    read_journal(workdir / "events.jsonl", [&](const std::string& line) {
        finished = line.find(R"("status":"FINISHED")") != std::string::npos;
        return !finished;
    });
    if (!finished) return std::nullopt;
    // run.json says when, and how it ended (a host killed left "running");
    // its counts may be older than the journal, and are said only when some.
    json run = read_json(workdir / "run.json");
    if (!run.is_object()) return std::string("a task finished");
    // Any field may be missing, of another kind or unprintable (a file
    // edited by hand): it goes to the user's terminal.
    auto text = [&](const char* key) {
        auto it = run.find(key);
        return it != run.end() && it->is_string() ? text::printable(it->get<std::string>()) : std::string();
    };
    const std::string when = text("started"), status = text("status");
    std::string out = "started " + (when.empty() ? std::string("at an unknown time") : when);
    if (status == "running") out += ", whose host was killed";
    else if (!status.empty()) out += ", ended '" + status + "'";
    std::uint64_t count = 0;
    if (run.contains("groups") && run["groups"].is_array())
        for (const auto& g : run["groups"])
            if (g.is_object() && g.contains("finished") && g["finished"].is_number_unsigned())
                count += g["finished"].get<std::uint64_t>();
    if (count != 0) out += fmt::format(", {} task(s) finished", count);
    return out;
}

}  // namespace fedflow
