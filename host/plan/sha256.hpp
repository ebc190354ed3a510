// sha256.hpp: SHA-256 of a byte string, as lowercase hex. The plan digest
// (run.json) uses it to tell whether a plan changed between runs.
#pragma once

#include <string>
#include <string_view>

namespace fedflow {

std::string sha256_hex(std::string_view data);

}  // namespace fedflow
