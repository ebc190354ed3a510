// device.hpp: the names of the devices a stage runs on, as the plan, the
// scheduler, the worker and the SDK spell them: "cpu" and "cuda:N".
#pragma once

#include <string_view>

namespace fedflow::device {

// "cpu" or "cuda:N" (N of at most three digits).
bool valid(std::string_view device);
// The N of "cuda:N"; -1 for "cpu" or anything else.
int cuda_index(std::string_view device);

}  // namespace fedflow::device
