// json.hpp: JSON objects of any size built and read in linear time.
//
// nlohmann::ordered_json looks every key of an object up as it adds one
// (operator[], emplace, and its parser), so an object of n keys costs n^2/2
// string compares: a result of 100,000 keys took the host most of a minute
// to write and as long to read back, and report.json's "tasks" of a group
// of 100,000 tasks as long to build.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace fedflow::jsonio {

// Adds key to a JSON object without looking it up first: the caller knows
// it is not there yet (a Dict's keys, a group's task ids). Returns the new
// member's value. object must be an object.
inline nlohmann::ordered_json& append(nlohmann::ordered_json& object, std::string key, nlohmann::ordered_json value) {
    auto& members = static_cast<nlohmann::ordered_json::object_t::Container&>(
        object.get_ref<nlohmann::ordered_json::object_t&>());
    return members.emplace_back(std::move(key), std::move(value)).second;
}

// Parses JSON text as nlohmann::ordered_json::parse does, in linear time: a
// key that appears twice keeps its first place and its last value, as with
// parse(). Throws nlohmann::json::parse_error; with !allow_exceptions,
// returns a discarded value (is_discarded()) instead.
nlohmann::ordered_json parse(std::string_view text, bool allow_exceptions = true);

}  // namespace fedflow::jsonio
