#include "common/json.hpp"

#include <algorithm>
#include <map>
#include <vector>

using json = nlohmann::ordered_json;

namespace fedflow::jsonio {

namespace {

// nlohmann's DOM parser (json_sax_dom_parser) with one change: an object's
// members are appended, and checked for a repeated key once, when the object
// ends.
class LinearParser {
public:
    explicit LinearParser(bool allow_exceptions) : allow_exceptions_(allow_exceptions) {}
    json root;
    bool failed = false;

    bool null() { return value(nullptr); }
    bool boolean(bool v) { return value(v); }
    bool number_integer(json::number_integer_t v) { return value(v); }
    bool number_unsigned(json::number_unsigned_t v) { return value(v); }
    bool number_float(json::number_float_t v, const json::string_t&) { return value(v); }
    bool string(json::string_t& v) { return value(std::move(v)); }
    bool binary(json::binary_t& v) { return value(std::move(v)); }
    bool start_object(std::size_t) {
        stack_.push_back(place(json::object()));
        return true;
    }
    bool key(json::string_t& k) {
        member_ = &append(*stack_.back(), std::move(k), nullptr);
        return true;
    }
    bool end_object() {
        dedupe(*stack_.back());
        stack_.pop_back();
        return true;
    }
    bool start_array(std::size_t) {
        stack_.push_back(place(json::array()));
        return true;
    }
    bool end_array() {
        stack_.pop_back();
        return true;
    }
    template <class Exception>
    bool parse_error(std::size_t, const std::string&, const Exception& e) {
        failed = true;
        if (allow_exceptions_) throw e;
        return false;
    }

private:
    template <class V>
    bool value(V&& v) {
        place(json(std::forward<V>(v)));
        return true;
    }
    // Where a value goes: the root, the open array's end, or the member
    // whose key came last. (A container does not grow while a child of it
    // is open, so the pointers on the stack stay valid.)
    json* place(json v) {
        if (stack_.empty()) {
            root = std::move(v);
            return &root;
        }
        if (stack_.back()->is_array()) {
            auto& items = stack_.back()->get_ref<json::array_t&>();
            items.push_back(std::move(v));
            return &items.back();
        }
        *member_ = std::move(v);
        return member_;
    }
    // A repeated key (rare: Fedflow never writes one) keeps its first place
    // and takes the last value, as ordered_json's parse() does.
    static void dedupe(json& object) {
        auto& members = static_cast<json::object_t::Container&>(object.get_ref<json::object_t&>());
        if (members.size() <= 8) {
            bool twice = false;
            for (std::size_t i = 1; i < members.size() && !twice; ++i)
                for (std::size_t j = 0; j < i && !twice; ++j) twice = members[i].first == members[j].first;
            if (!twice) return;
        } else {
            std::vector<std::string_view> keys;
            keys.reserve(members.size());
            for (const auto& m : members) keys.emplace_back(m.first);
            std::sort(keys.begin(), keys.end());
            if (std::adjacent_find(keys.begin(), keys.end()) == keys.end()) return;
        }
        json::object_t::Container unique;
        std::map<std::string_view, std::size_t> at;
        for (auto& m : members) {
            auto [it, fresh] = at.emplace(m.first, unique.size());
            if (fresh) unique.emplace_back(m.first, std::move(m.second));
            else unique[it->second].second = std::move(m.second);
        }
        members = std::move(unique);
    }

    bool allow_exceptions_;
    std::vector<json*> stack_;
    json* member_ = nullptr;
};

}  // namespace

json parse(std::string_view text, bool allow_exceptions) {
    LinearParser parser(allow_exceptions);
    json::sax_parse(text, &parser);
    if (parser.failed) return json(json::value_t::discarded);
    return std::move(parser.root);
}

}  // namespace fedflow::jsonio
