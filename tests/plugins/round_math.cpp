// Injects nothing: arithmetic across rounds, so that a test can check what
// each round received. param role:
//   "client": value = the last server's value (0 when there is none) + ctx.round()
//   "server": value = the sum of this round's clients' values; stop = value >= stop_at
// Both return {value, round}.
#include <fedflow/task.hpp>

#include <cstdint>

class RoundMath final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        const std::string role = ctx.param<std::string>("role");
        std::int64_t value = 0;
        if (role == "client") {
            if (const fedflow::Value* server = ctx.inputs().find("server"))
                value = server->as<fedflow::Dict>().at("0").as<fedflow::Dict>().at("value").as<std::int64_t>();
            value += ctx.round();
        } else {
            for (const auto& [id, result] : ctx.inputs().at("clients").as<fedflow::Dict>())
                value += result.as<fedflow::Dict>().at("value").as<std::int64_t>();
        }
        fedflow::Dict out{{"value", value}, {"round", ctx.round()}};
        if (role == "server") out["stop"] = value >= ctx.param<std::int64_t>("stop_at", INT64_MAX);
        return out;
    }
};
FEDFLOW_TASK(RoundMath, "round_math")
