// digits.hpp: the handwritten digits data set (scikit-learn's digits.csv:
// 1797 rows of 64 pixel values 0..16 and a label 0..9). The splits over
// clients are fedflow/fl.hpp's: the same seed gives the same split in every
// process, so each client task computes the whole split and keeps its
// shard, and the server computes the same split to find the test set.
#ifndef FEDAVG_DIGITS_HPP
#define FEDAVG_DIGITS_HPP

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace fedavg {

inline constexpr std::size_t kDigitsFeatures = 64;
inline constexpr int kDigitsClasses = 10;
inline constexpr std::size_t kDigitsRows = 1797;

// Samples as rows: x holds size() * features floats, y one label per row.
struct Dataset {
    std::size_t features = 0;
    std::vector<float> x;
    std::vector<int> y;

    std::size_t size() const noexcept { return y.size(); }
    const float* row(std::size_t i) const noexcept { return x.data() + i * features; }

    // The rows at indices, in that order.
    Dataset subset(const std::vector<std::size_t>& indices) const {
        Dataset out;
        out.features = features;
        out.x.reserve(indices.size() * features);
        out.y.reserve(indices.size());
        for (std::size_t i : indices) {
            if (i >= size()) throw std::out_of_range("fedavg::Dataset::subset: index out of range");
            out.x.insert(out.x.end(), row(i), row(i) + features);
            out.y.push_back(y[i]);
        }
        return out;
    }
};

// Reads digits.csv: every line 64 integers 0..16 and a label 0..9. Pixels are
// scaled to [0, 1]. Throws std::runtime_error naming the file and line.
inline Dataset load_digits_csv(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error(path + ": cannot open the digits data (run scripts/fetch-digits)");
    }
    Dataset d;
    d.features = kDigitsFeatures;
    d.x.reserve(kDigitsRows * kDigitsFeatures);
    d.y.reserve(kDigitsRows);
    std::string line;
    std::size_t lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        auto fail = [&](const std::string& why) {
            return std::runtime_error(path + ":" + std::to_string(lineno) + ": " + why);
        };
        std::size_t column = 0;
        const char* p = line.data();
        const char* end = line.data() + line.size();
        while (true) {
            int v = 0;
            auto [next, ec] = std::from_chars(p, end, v);
            if (ec != std::errc() || next == p) {
                throw fail("column " + std::to_string(column + 1) + " is not an integer");
            }
            if (column < kDigitsFeatures) {
                if (v < 0 || v > 16) throw fail("pixel " + std::to_string(v) + " is outside 0..16");
                d.x.push_back(static_cast<float>(v) / 16.0f);
            } else if (column == kDigitsFeatures) {
                if (v < 0 || v >= kDigitsClasses) throw fail("label " + std::to_string(v) + " is outside 0..9");
                d.y.push_back(v);
            } else {
                throw fail("more than " + std::to_string(kDigitsFeatures + 1) + " columns");
            }
            ++column;
            p = next;
            if (p == end) break;
            if (*p != ',') throw fail("expected ',' after column " + std::to_string(column));
            ++p;
        }
        if (column != kDigitsFeatures + 1) {
            throw fail(std::to_string(column) + " columns, expected " + std::to_string(kDigitsFeatures + 1));
        }
    }
    if (in.bad()) throw std::runtime_error(path + ": read error");
    if (d.size() == 0) throw std::runtime_error(path + ": no rows");
    return d;
}

}  // namespace fedavg

#endif  // FEDAVG_DIGITS_HPP
