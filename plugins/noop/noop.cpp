// A task that does nothing: what bench/throughput measures is Fedflow's own
// cost per task (spawn, handshake, result, bookkeeping).
#include <fedflow/task.hpp>

class Noop final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context&, std::string_view) override { return {}; }
};
FEDFLOW_TASK(Noop, "noop")
