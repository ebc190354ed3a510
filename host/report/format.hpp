// format.hpp: numbers, sizes and times as report.html shows them.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace fedflow::report {

// A duration for people, as the host writes one (text::format_duration:
// "350ms", "2.35s", "12.3s", "4m05s", "1h02m03s"); empty for a negative or
// NaN one.
std::string duration(double ms);

// A size in bytes, as the host writes one (text::format_size: "512 B",
// "1.50 KiB", "0.98 GiB"); empty when negative.
std::string bytes(double b);

// A point on the run's time axis, for tooltips: "+1.234s", "+2m05s".
std::string at(double ms);

// A JSON number as a table shows it: integers whole, others with six
// significant digits but no exponent for numbers read whole (1e5 to 1e15),
// NaN and infinities by name.
std::string number(const nlohmann::ordered_json& v);

// Four significant digits: what fits beside a point of a chart.
std::string short_number(double v);

}  // namespace fedflow::report
