// slurm_executor.hpp: the executor of a Slurm allocation (fedflow-host
// --slurm, docs/slurm.md). It runs inside the allocation (salloc, or an
// sbatch script), finds the job's nodes (SLURM_JOB_NODELIST through
// `scontrol show hostnames`, their CPUs from SLURM_JOB_CPUS_PER_NODE) and
// starts one node agent on each (node_agent.hpp) through one srun step per
// node:
//
//   srun --nodes=1 --ntasks=1 --nodelist=NODE --cpus-per-task=CPUS --mem=0
//        --overlap --no-kill --kill-on-bad-exit=0 --unbuffered --quiet
//        fedflow-host agent
//
// One step per node, so that a node lost ends one step, not all agents;
// --no-kill, so that Slurm does not end the job when a node fails; the
// whole node's CPUs and memory, since a step gets one CPU by default; and
// --unbuffered, since slurmstepd passes a step's stdout on line by line
// otherwise, and the link's frames are binary.
//
// Each agent is a LocalExecutor of its node; this class is its proxy. A
// load goes to the node with the most free memory whose agent admits it
// (a node that said wait is asked again after a sample period, or after
// it had news); a train goes to its worker's node, and its device is named
// after the node ("n1/cuda:0"). A node whose agent ends (its srun step
// failed, the node died, scancel) is lost: each of its workers ends in an
// `exited` event with node_lost, and the runner may run the task again
// elsewhere. With every node lost, wait() throws.
//
// Results and a group's inputs travel as files of `<workdir>/.fedflow-slurm`
// and the tasks' folders: the workdir must be shared by every node, which
// the first start_group checks (a file each agent must see).
#pragma once

#include "common/channel.hpp"
#include "common/process.hpp"
#include "exec/agent_link.hpp"
#include "exec/executor.hpp"

#include <map>
#include <memory>
#include <set>

#include <sys/types.h>

namespace fedflow::exec {

class SlurmExecutor final : public Executor {
public:
    struct Options {
        std::filesystem::path host;     // fedflow-host, which each node runs as `fedflow-host agent`
        std::filesystem::path workdir;  // the run's workdir: shared by every node
        agent::Hello hello;             // how the agents run their workers
        std::string log_level = "info";
        std::chrono::milliseconds start_timeout{60000};  // for every agent to be ready
        std::chrono::milliseconds reply_timeout{30000};  // for an agent to answer a request
    };
    // Throws std::invalid_argument when not inside an allocation, and
    // std::runtime_error when no agent could be started.
    explicit SlurmExecutor(Options options);
    ~SlurmExecutor() override;

    const sched::Snapshot& machine() const override { return machine_; }
    std::string gpu_status() const override;
    void set_gpus(bool use_gpus, std::vector<int> gpus) override;

    void start_group(std::optional<std::uint64_t> memory, std::optional<std::uint64_t> gpu_memory) override;
    void group_inputs(std::uint64_t bytes) override;
    void learn(const Peaks& peaks) override;
    std::uint64_t grow(std::uint64_t estimate, std::int64_t peak, const std::string& device) const override;

    Admission start_load(const LoadRequest& request) override;
    Admission start_train(WorkerId id, const TrainRequest& request) override;
    void end_stage(WorkerId id) override;
    void reserve_memory(WorkerId id, std::uint64_t memory) override;

    void release(WorkerId id) override;
    // keep-loaded: the worker's node keeps it (its agent's LocalExecutor
    // holds its reservation and may evict it for a stage of that node).
    void keep(WorkerId id) override;
    bool next_round(WorkerId id, const messages::Config& config) override;
    void signal(WorkerId id, int signal) override;
    void signal_all(int signal) override;
    void terminate(WorkerId id, std::chrono::milliseconds grace) override;
    std::string containment() const override;

    std::size_t live() const override { return workers_.size(); }
    std::vector<DeviceUse> devices() const override;
    Peaks peaks(WorkerId id) const override;
    // -1: a worker's pid is its node's, and means nothing on this machine.
    int pid(WorkerId) const override { return -1; }

    void wait(std::optional<Clock::time_point> until, int wake_fd, std::vector<Event>& out) override;

    // The nodes, in the allocation's order, and whether each is still used.
    std::vector<std::pair<std::string, bool>> nodes() const;

private:
    struct Node {
        std::string name;
        unsigned cpus = 0;
        process::Child srun;
        int link = -1;  // our end of srun's stdin and stdout: the agent's, through srun
        channel::FrameReader reader;
        agent::Ready ready;
        std::vector<DeviceUse> devices;
        std::size_t live = 0;
        bool lost = false;
        std::string lost_why;
        std::optional<Clock::time_point> refused_at;  // it last said wait then
    };
    struct Worker {
        std::size_t node = 0;
        Peaks peaks;
    };
    class Lost : public std::runtime_error {
    public:
        using std::runtime_error::runtime_error;
    };

    void start_agents();
    void send(Node& n, agent::Frame f, const Dict& body = {});
    // Sends a request and reads until its reply; events on the way are
    // kept for wait(). Throws Lost (after lose()) when the agent is gone.
    Dict request(Node& n, agent::Frame f, const Dict& body);
    // Reads what the agent sent (never blocks); false at EOF.
    bool read_available(Node& n);
    // Handles one frame; a reply is stored in *reply (else a protocol error).
    void take(Node& n, const channel::Message& m, std::optional<Dict>* reply);
    void lose(Node& n, const std::string& why);
    void check_shared();
    std::string export_inputs(const std::string& segment);
    std::size_t live_nodes() const;

    Options options_;
    std::vector<Node> nodes_;
    sched::Snapshot machine_;
    std::map<WorkerId, Worker> workers_;
    std::vector<Event> pending_;
    bool shared_checked_ = false;
    std::map<std::string, std::string> inputs_;  // segment -> its file in .fedflow-slurm
};

// The CPUs per node of SLURM_JOB_CPUS_PER_NODE ("4(x2),8" -> 4, 4, 8), for
// `count` nodes. Throws std::invalid_argument on what it cannot read.
std::vector<unsigned> parse_cpus_per_node(std::string_view text, std::size_t count);

}  // namespace fedflow::exec
