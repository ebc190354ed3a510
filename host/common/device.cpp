#include "common/device.hpp"

#include <algorithm>
#include <string>

namespace fedflow::device {

bool valid(std::string_view device) {
    if (device == "cpu") return true;
    if (device.substr(0, 5) != "cuda:" || device.size() == 5 || device.size() > 8) return false;
    return std::all_of(device.begin() + 5, device.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int cuda_index(std::string_view device) {
    if (!valid(device) || device == "cpu") return -1;
    return std::stoi(std::string(device.substr(5)));
}

}  // namespace fedflow::device
