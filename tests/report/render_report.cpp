// render_report WORKDIR: writes WORKDIR/report.html, as the runner will at the
// end of every group and of the run. Test-only: the report has no command of
// its own.
#include "report/report_html.hpp"

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: render_report WORKDIR\n");
        return 2;
    }
    try {
        fedflow::report::write_html(argv[1]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "render_report: %s\n", e.what());
        return 1;
    }
    return 0;
}
