// timeline.hpp: the timeline of report.html, an inline SVG with one lane per
// device (every GPU of the run, then "cpu"), a bar per stage of every task
// packed into rows, the groups as bands and the rounds as a strip on top.
#pragma once

#include "report/html.hpp"
#include "report/run_model.hpp"

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace fedflow::report {

// Appends the timeline's <section> for run.
void timeline(Html& out, const Run& run);

// Greedy interval packing: the row of each span [first, second], in input
// order. A span goes into the lowest row whose last span ended at least gap
// before it starts, so spans in one row never overlap; the number of rows is
// the most spans that overlap at one time (with gap added).
std::vector<std::size_t> pack_rows(const std::vector<std::pair<double, double>>& spans, double gap);

// The lanes of the timeline in order: cuda:0, cuda:1, ..., cuda:10 by number,
// then other devices by name, then "cpu". A lane per device a stage ran on,
// and one per GPU in run.json's devices (also an idle one) once any stage ran.
std::vector<std::string> lane_names(const Run& run);

// The time axis: the step between ticks (1, 2, 5 times a power of ten of ms,
// then minutes and hours) that gives at most ten ticks over span_ms, and
// the label of the tick at t ("0.50s", "12s", "3:05", "1:02:03").
double tick_step(double span_ms);
std::string tick_label(double t, double step, double span_ms);

}  // namespace fedflow::report
