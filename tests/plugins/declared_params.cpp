// Declares its params (FEDFLOW_PARAMS) and returns the params it was given,
// so that tests see the host's checks and the defaults it adds. Built a
// second time with -DBAD_DECLARATION as 'declared_params_bad', whose
// declaration is malformed.
#include <fedflow/task.hpp>

#ifndef BAD_DECLARATION
FEDFLOW_PARAMS(R"(
dim = { type = "integer", default = 20 }
lr = { type = "double", default = 0.1, doc = "the learning rate" }
data = { type = "string", required = true }
flags = { type = "list", default = [] }
)");
#define NAME "declared_params"
#else
FEDFLOW_PARAMS(R"(
dim = { type = "integr", default = 20 }
lr = { type = "double", default = "fast" }
)");
#define NAME "declared_params_bad"
#endif

class DeclaredParams final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        fedflow::Dict out;
        out["params"] = ctx.params();
        out["dim_squared"] = ctx.param<std::int64_t>("dim") * ctx.param<std::int64_t>("dim");
        return out;
    }
};
FEDFLOW_TASK(DeclaredParams, NAME)
