// report_html.hpp: report.html, the self-contained page of a run (SPEC "What
// a run leaves behind"; docs/report.md says what it shows): the run's facts,
// a timeline per device drawn as inline SVG, the failures with the tail of
// their stderr.log, and a sortable results table per group. No network, no
// file outside the page; one tiny inline script sorts the tables.
#pragma once

#include "report/run_model.hpp"

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fedflow::report {

// Reads the run's own files in workdir (run.json, events.jsonl, every
// group's report.json, the stderr.log of failed tasks) and writes
// workdir/report.html through a temporary file in the same folder and a
// rename, so a reader never sees half a page. Works on any state of a run:
// running, killed, resumed, or with files from a newer host. Throws
// std::system_error only when report.html cannot be written.
void write_html(const std::filesystem::path& workdir);

// The page write_html writes, for a run already read.
std::string render_html(const Run& run);

namespace detail {

// Text safe inside HTML elements and quoted attributes: & < > " ' escaped,
// invalid UTF-8 and control characters (but tab and newline) replaced by U+FFFD.
std::string escape(std::string_view text);

// Greedy interval packing: the row of each span [first, second], in input
// order. A span goes into the lowest row whose last span ended at least gap
// before it starts, so spans in one row never overlap; the number of rows is
// the most spans that overlap at one time (with gap added).
std::vector<std::size_t> pack_rows(const std::vector<std::pair<double, double>>& spans, double gap);

}  // namespace detail

}  // namespace fedflow::report
