#include "common/device.hpp"

#include <algorithm>
#include <string>

namespace fedflow::device {

std::string_view local(std::string_view device) {
    std::size_t slash = device.rfind('/');
    return slash == std::string_view::npos ? device : device.substr(slash + 1);
}

std::string_view node(std::string_view device) {
    std::size_t slash = device.rfind('/');
    return slash == std::string_view::npos ? std::string_view() : device.substr(0, slash);
}

namespace {

// The digits after "cuda:" or "sim:", or "" when device is neither.
std::string_view index_digits(std::string_view device) {
    device = local(device);
    for (std::string_view prefix : {std::string_view("cuda:"), std::string_view("sim:")}) {
        if (device.substr(0, prefix.size()) != prefix) continue;
        std::string_view n = device.substr(prefix.size());
        if (n.empty() || n.size() > 3 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return {};
        return n;
    }
    return {};
}

}  // namespace

bool valid(std::string_view device) {
    return device == "cpu" || (device.find('/') == std::string_view::npos && !index_digits(device).empty());
}

int gpu_index(std::string_view device) {
    std::string_view n = index_digits(device);
    return n.empty() ? -1 : std::stoi(std::string(n));
}

bool simulated(std::string_view device) {
    return local(device).substr(0, 4) == "sim:" && !index_digits(device).empty();
}

std::string gpu_name(int index, bool simulated) { return (simulated ? "sim:" : "cuda:") + std::to_string(index); }

}  // namespace fedflow::device
