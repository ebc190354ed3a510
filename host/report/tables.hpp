// tables.hpp: the tables of report.html: the failures (the first ones in full,
// with the tail of their stderr.log), the results of every group (folded by
// round), and the values of every round. Every table sorts by a click on a
// header (report.js): a cell that shows a formatted number holds the raw one
// in data-v.
#pragma once

#include "report/charts.hpp"
#include "report/html.hpp"
#include "report/run_model.hpp"

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace fedflow::report {

// The failed tasks, numbered from 1 in page order: (group, task) -> number,
// the anchor #fail-N of its entry.
using FailureIds = std::map<std::pair<std::size_t, std::size_t>, std::size_t>;
FailureIds number_failures(const Run& run);

// Appends the Failures section.
void failures_section(Html& out, const Run& run, const FailureIds& failures);

// Appends the Results section: a table per group, a round's groups together
// under one fold (open for the last round of each table and for a round
// with a failure); the summary of a round names the first three charted
// values (curves).
void results_section(Html& out, const Run& run, const FailureIds& failures, const Curves& curves);

// Appends the sortable table of every round of one [[round]] table: wall
// time and the first 40 values, folded when there are more than 12 rounds.
void rounds_table(Html& out, const std::vector<const Round*>& rounds);

// The rounds the page summarizes (a group of theirs is Group::summarized:
// detail_rounds in run_model.hpp), in run.rounds' order, and how the page
// names them: "11\u2013290", or with several [[round]] tables "[[round]] 1:
// 11\u2013290; [[round]] 2: 11\u201340".
std::vector<const Round*> summarized_rounds(const Run& run);
std::string round_ranges(const Run& run, const std::vector<const Round*>& rounds);

// What a group's table shows beyond the fixed columns: the scalars of its
// tasks' results, in the order they first appear (at most 40; the others
// counted in dropped); which of them were ever not numbers; whether any task
// has a GPU peak or a retry.
struct ResultColumns {
    std::vector<std::string> keys;
    std::set<std::string> text;
    std::size_t dropped = 0;
    bool gpu = false;
    bool retries = false;
};
ResultColumns result_columns(const Group& group);

}  // namespace fedflow::report
