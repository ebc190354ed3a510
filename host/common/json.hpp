// json.hpp: JSON objects of any size built in linear time.
//
// nlohmann::ordered_json looks every key of an object up as it adds one
// (operator[], emplace), so an object of n keys costs n^2/2 string
// compares: report.json's "tasks" of a group of 100,000 tasks took the host
// most of a minute to build.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace fedflow::jsonio {

// Adds key to a JSON object without looking it up first: the caller knows
// it is not there yet (a Dict's keys, a group's task ids). Returns the new
// member's value. object must be an object.
inline nlohmann::ordered_json& append(nlohmann::ordered_json& object, std::string key, nlohmann::ordered_json value) {
    auto& members = static_cast<nlohmann::ordered_json::object_t::Container&>(
        object.get_ref<nlohmann::ordered_json::object_t&>());
    return members.emplace_back(std::move(key), std::move(value)).second;
}

}  // namespace fedflow::jsonio
