// Injects nothing: returns what the host handed over (inputs, params, round,
// task_id, group, workdir, the real cwd, plan_dir, device) so tests can check
// it, and writes one line each through ctx.log, stderr and stdout.
#include <fedflow/task.hpp>

#include <unistd.h>

#include <cstdio>

#include <string>
#include <vector>

class InputsProbe final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        cwd_in_load_ = cwd();
        ctx.log("probe: ctx.log in load of " + ctx.task_id());
        std::fprintf(stderr, "probe: stderr in load of %s\n", ctx.task_id().c_str());
        std::printf("probe: stdout in load of %s\n", ctx.task_id().c_str());
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view device) override {
        fedflow::Dict out;
        out["inputs"] = ctx.inputs();
        out["params"] = ctx.params();
        out["round"] = ctx.round();
        out["task_id"] = ctx.task_id();
        out["group"] = ctx.group();
        out["workdir"] = ctx.workdir();
        out["plan_dir"] = ctx.plan_dir();
        out["device"] = std::string(device);
        out["cwd"] = cwd();
        out["cwd_in_load"] = cwd_in_load_;
        // look_up = ["group", "task"]: what Dict::at says of that input.
        if (const fedflow::Value* l = ctx.params().find("look_up")) {
            const fedflow::List& path = l->as<fedflow::List>();
            try {
                ctx.inputs().at(path.at(0).as<std::string>()).as<fedflow::Dict>().at(path.at(1).as<std::string>());
                out["look_up"] = "found";
            } catch (const fedflow::TypeError& e) {
                out["look_up"] = e.what();
            }
        }
        return out;
    }

private:
    static std::string cwd() {
        std::vector<char> buf(4096);
        if (getcwd(buf.data(), buf.size()) == nullptr) return std::string();
        return std::string(buf.data());
    }
    std::string cwd_in_load_;
};
FEDFLOW_TASK(InputsProbe, "inputs_probe")
