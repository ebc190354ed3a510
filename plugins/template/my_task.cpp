// my_task: a Fedflow task to start from. It estimates pi the federated way.
//
// In a group without inputs (the plan's "estimate"), each task samples its
// own random points in the unit square and counts those inside the quarter
// circle: load prepares (CPU only), train samples and returns
//   { pi, samples, hits, seconds, histogram: Bytes (bins x uint64) }.
// In a group that lists such a group in `inputs` (the plan's "combine"), the
// task sums the clients' counts and histograms instead: the result of all
// samples together, as a federated server would aggregate its clients.
//
// Rename the class, the plugin name in FEDFLOW_TASK and the file; keep the
// shape: read params in load, do the work in train, return a Dict.
#include <fedflow/task.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// A seed that differs from task to task but not from run to run.
std::uint64_t seed_of(std::string_view task_id, std::int64_t base) {
    std::uint64_t h = 1469598103934665603ull ^ static_cast<std::uint64_t>(base);
    for (char c : task_id) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return h;
}

}  // namespace

class MyTask final : public fedflow::Task {
public:
    // CPU only: read the params, check them, prepare the data.
    void load(fedflow::Context& ctx) override {
        samples_ = ctx.param<std::int64_t>("samples", 100000);
        bins_ = ctx.param<std::size_t>("bins", 16);
        if (samples_ <= 0) throw std::invalid_argument("param 'samples' must be positive");
        if (bins_ == 0 || bins_ > 4096) throw std::invalid_argument("param 'bins' must be 1 to 4096");
        seed_ = seed_of(ctx.task_id(), ctx.param<std::int64_t>("seed", 0));
        std::printf("%s/%s: %lld samples, %zu bins\n", ctx.group().c_str(), ctx.task_id().c_str(),
                    static_cast<long long>(samples_), bins_);
    }

    // On the device the scheduler chose ("cuda:N" or "cpu"); this task only
    // computes on the CPU.
    fedflow::Dict train(fedflow::Context& ctx, std::string_view device) override {
        auto start = std::chrono::steady_clock::now();
        std::vector<std::uint64_t> histogram(bins_, 0);
        std::int64_t samples = 0, hits = 0;
        if (ctx.inputs().empty()) {
            sample(histogram, samples, hits);
        } else {
            combine(ctx, histogram, samples, hits);
        }

        fedflow::Dict out;
        out["pi"] = 4.0 * static_cast<double>(hits) / static_cast<double>(samples);
        out["samples"] = samples;
        out["hits"] = hits;
        out["device"] = std::string(device);
        out["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        // Large data goes into shared memory: written once, never copied
        // through a pipe. It becomes histogram.bin beside result.json.
        fedflow::Bytes bytes = ctx.bytes(histogram.size() * sizeof(std::uint64_t));
        std::memcpy(bytes.data(), histogram.data(), bytes.size());
        out["histogram"] = bytes;
        ctx.log("pi ~ " + std::to_string(out["pi"].as<double>()) + " from " + std::to_string(samples) + " samples");
        return out;
    }

private:
    // Points (x, y) in [0, 1)^2; a hit is inside the quarter circle. The
    // histogram counts hits by x.
    void sample(std::vector<std::uint64_t>& histogram, std::int64_t& samples, std::int64_t& hits) const {
        std::mt19937_64 rng(seed_);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (std::int64_t i = 0; i < samples_; ++i) {
            double x = u(rng), y = u(rng);
            if (x * x + y * y < 1.0) {
                ++hits;
                ++histogram[static_cast<std::size_t>(x * static_cast<double>(bins_))];
            }
        }
        samples = samples_;
    }

    // Sums what the tasks of the input groups returned.
    void combine(const fedflow::Context& ctx, std::vector<std::uint64_t>& histogram, std::int64_t& samples,
                 std::int64_t& hits) const {
        for (const auto& [group, tasks] : ctx.inputs()) {
            for (const auto& [id, value] : tasks.as<fedflow::Dict>()) {
                const fedflow::Dict& result = value.as<fedflow::Dict>();
                samples += result.at("samples").as<std::int64_t>();
                hits += result.at("hits").as<std::int64_t>();
                const fedflow::Bytes& h = result.at("histogram").as<fedflow::Bytes>();
                if (h.size() != histogram.size() * sizeof(std::uint64_t))
                    throw std::runtime_error(group + "/" + id + ": histogram has " + std::to_string(h.size()) +
                                             " bytes, not " + std::to_string(histogram.size() * sizeof(std::uint64_t)));
                for (std::size_t b = 0; b < histogram.size(); ++b) {
                    std::uint64_t n;
                    std::memcpy(&n, h.data() + b * sizeof n, sizeof n);
                    histogram[b] += n;
                }
            }
        }
        if (samples == 0) throw std::runtime_error("no finished task in the input groups");
    }

    std::int64_t samples_ = 0;
    std::size_t bins_ = 0;
    std::uint64_t seed_ = 0;
};

// The name plans use (plugin = "my_task"); the file name does not matter.
FEDFLOW_TASK(MyTask, "my_task")
