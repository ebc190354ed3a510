// report_html.hpp: report.html, the self-contained page of a run
// (docs/report.md says what it shows): the run's facts (this file), a
// timeline per device (timeline.hpp), the rounds' charts (charts.hpp), the
// failures with the tail of their stderr.log and the results tables
// (tables.hpp), all written through html.hpp. No network, no file outside the
// page: its style and its one script (assets/report.css, report.js) are
// embedded at build time.
#pragma once

#include "report/run_model.hpp"

#include <filesystem>
#include <string>

namespace fedflow::report {

// Reads the run's own files in workdir (run.json, events.jsonl, every
// group's report.json, the stderr.log of failed tasks) and writes
// workdir/report.html through a temporary file in the same folder and a
// rename, so a reader never sees half a page. Works on any state of a run:
// running, killed, resumed, or with files from a newer host. Throws
// std::system_error only when report.html cannot be written.
void write_html(const std::filesystem::path& workdir);

// The same for a run already read (or kept up to date in memory): writes
// run.workdir/report.html.
void write_html(const Run& run);

// The page write_html writes.
std::string render_html(const Run& run);

}  // namespace fedflow::report
