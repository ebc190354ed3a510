// html.hpp: the writer every part of report.html writes through. Markup is a
// literal format string; every string argument is escaped on the way in, so
// a task's name, message or result can never become markup.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace fedflow::report {

// Text safe inside HTML elements and quoted attributes: & < > " ' escaped,
// invalid UTF-8 and control characters (but tab and newline) replaced by U+FFFD.
std::string escape(std::string_view text);

// s cut to at most max bytes (not inside a UTF-8 character), with an
// ellipsis when something was cut.
std::string truncated(const std::string& s, std::size_t max);

// Markup that is already safe (built by an Html, or a literal): an argument
// of Html::add that is appended as it is.
struct Raw {
    std::string_view markup;
};

namespace detail {

template <class T>
auto html_arg(T&& v) {
    using D = std::remove_cvref_t<T>;
    if constexpr (std::is_same_v<D, Raw>) return v.markup;
    else if constexpr (std::is_convertible_v<const D&, std::string_view> && !std::is_same_v<D, char>)
        return escape(std::string_view(v));
    else return std::forward<T>(v);
}

template <class T>
using html_arg_t = decltype(html_arg(std::declval<T>()));

}  // namespace detail

class Html {
public:
    // Appends the format string's markup with its arguments: strings
    // escaped, Raw as it is, numbers formatted by fmt.
    template <class... Args>
    Html& add(fmt::format_string<detail::html_arg_t<Args>...> markup, Args&&... args) {
        fmt::format_to(std::back_inserter(out_), markup, detail::html_arg(std::forward<Args>(args))...);
        return *this;
    }
    // Appends text, escaped.
    Html& text(std::string_view s) {
        out_ += escape(s);
        return *this;
    }
    // Appends markup that is already safe (a literal, or another Html's).
    Html& raw(std::string_view markup) {
        out_ += markup;
        return *this;
    }
    // <tag>text</tag>, the text escaped.
    Html& element(std::string_view tag, std::string_view text) { return add("<{}>{}</{}>", Raw{tag}, text, Raw{tag}); }

    const std::string& str() const noexcept { return out_; }
    std::string take() noexcept { return std::move(out_); }

private:
    std::string out_;
};

}  // namespace fedflow::report
