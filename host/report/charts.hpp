// charts.hpp: the Rounds section of report.html: for each [[round]] table a
// small line chart per value that changes from round to round (what the last
// group of each round returned, from run.json's "rounds"), the values that
// never change as one line of facts, and the table of every round.
#pragma once

#include "report/html.hpp"
#include "report/run_model.hpp"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fedflow::report {

// The rounds of each [[round]] table, in order (run.rounds is sorted so).
std::vector<std::vector<const Round*>> round_blocks(const Run& run);

// The value of key in round r; null when it returned none.
const double* value_of(const Round& r, const std::string& key);

// The series worth a chart among the rounds of one table: every value but
// those that only repeat the round number (proved by two rounds or more, or
// named "round") and those that were booleans in a task's result (a stop
// flag), in the order they first appear.
std::vector<std::string> chart_keys(const Run& run, const std::vector<const Round*>& rounds);

// Of chart_keys, those that change from round to round (all of them when
// there is one round): the charts.
std::vector<std::string> curves(const Run& run, const std::vector<const Round*>& rounds);

// [[round]] table (1-based) -> its curves, for every table of the run.
using Curves = std::map<int, std::vector<std::string>>;
Curves curves_by_block(const Run& run);

// Axis ticks at 1, 2, 2.5 or 5 times a power of ten that cover [lo, hi] in
// about `want` steps, and the decimals that show them all (2.5 needs one
// more). Requires lo < hi.
struct Ticks {
    std::vector<double> values;
    int decimals = 0;
};
Ticks nice_ticks(double lo, double hi, int want);

// Appends the Rounds section (nothing for a run without rounds).
void rounds_section(Html& out, const Run& run, const Curves& curves);

}  // namespace fedflow::report
