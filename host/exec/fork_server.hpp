// fork_server.hpp: the host's side of a fork server (fedflow-worker
// --fork-server, worker/fork_server.hpp): a pre-started worker that has
// loaded one plugin (and, for the python plugin, the interpreter and the
// group's `preload` modules) and forks one worker per task.
//
// The server is the forked workers' parent, so the host cannot wait for
// them: the server reaps them and sends each wait status (and each stop)
// here, where WorkerProcess takes it (take_exit, take_stop). The server dies
// with the host (its parent-death signal), and its children with it.
#pragma once

#include <fedflow/value.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/types.h>

namespace fedflow {

// What a fork server loads: the plugin, and what its preload hook takes.
struct PreloadSpec {
    std::string plugin_path;
    std::string plugin_name;
    std::vector<std::string> modules;  // the group's `preload`
    Dict params;                       // params that choose what is loaded (the python plugin's `python`)
    std::string plan_dir;              // relative paths in params are relative to it
    Dict encode() const;
};

// The server would not fork: what() says why. err is the fork's errno when
// fork() failed (EAGAIN: no process slot), 0 when the server is unfit to
// fork (it holds threads): then it is not asked again.
class ForkRefused : public std::runtime_error {
public:
    ForkRefused(const std::string& why, int err) : std::runtime_error(why), err(err) {}
    int err;
};

class ForkServer {
public:
    // Starts the server and sends it what to load, and returns at once: the
    // host's loop goes on while it loads (import torch: a second or more).
    // It is ready() once pump() has read that it loaded the plugin; it has
    // `patience` to do so, and `answer_patience` to answer each fork or
    // spare it is asked for (check_answers). Throws std::system_error when it cannot be
    // started (EMFILE, EAGAIN), std::runtime_error when it ended at once.
    static std::unique_ptr<ForkServer> start(const std::filesystem::path& worker, char* const* envp,
                                             const PreloadSpec& spec, std::chrono::milliseconds patience,
                                             std::chrono::milliseconds answer_patience = std::chrono::seconds(10));
    ~ForkServer();  // closes its socket (it exits), kills and reaps it
    ForkServer(const ForkServer&) = delete;
    ForkServer& operator=(const ForkServer&) = delete;

    pid_t pid() const noexcept { return started_pid_; }
    int fd() const noexcept { return sock_; }
    bool alive() const noexcept { return sock_ >= 0; }
    // It loaded the plugin, and forks.
    bool ready() const noexcept { return ready_; }
    // Why it ended before it was ready ("" otherwise): the preload failed
    // (its error), it ended, it answered what it should not, or it was not
    // ready by its deadline.
    const std::string& start_error() const noexcept { return start_error_; }
    // When it must have answered what it was asked (its preload, a spare),
    // if it was asked anything: the host's loop wakes then.
    std::optional<std::chrono::steady_clock::time_point> deadline() const noexcept;
    // Gives a server up that has not answered by its deadline: one not
    // ready sets start_error; one whose spare did not come "did not answer".
    void check_answers(std::chrono::steady_clock::time_point now);
    // Waits at most `grace` for it to be ready (or to fail); whether it is.
    bool await_ready(std::chrono::milliseconds grace);

    // Waits at most `grace`, counted from its request, for the spare that
    // the last fork asked for. True when fork() will not wait for the
    // server: the spare is here, none was asked for (a fork on request), or
    // the server is gone. False while it is on its way (a large server's
    // fork, a stopped server): the host's loop goes on, and the server's
    // socket wakes it when the spare comes.
    bool await_spare(std::chrono::milliseconds grace);

    // Forks a worker set up as posix_spawn sets up an exec'd one (cwd
    // workdir; fds 1, 2 and 3 from out, err and channel; nofile and contain
    // as the worker's --nofile and --contain). cgroup_procs (-1: none): the
    // cgroup.procs of a cgroup of its own, opened for writing: the worker
    // moves itself there before it runs anything of the task (or fails in
    // start, saying why). The host counts and kills what it leaves there
    // itself, so the server does not kill its process group first (what it
    // killed would be missing from the count). Returns its pid. Throws
    // ForkRefused, or std::runtime_error when the server is gone.
    //
    // The first fork waits for the server's answer; each fork then asks
    // for a spare (fork_packet.hpp), a child forked ahead, and the next one
    // hands its request to that spare and returns at once: the host's loop
    // no longer waits for a fork (~0.17 ms per task on the 2-CPU test VM,
    // a third of what a no-op task took). A spare that is gone, or that the
    // server would not fork, is a fork on request as before; one still on
    // its way is waited for up to its answer patience (await_spare first
    // keeps that wait out of the host's loop).
    pid_t fork(const std::filesystem::path& workdir, int channel, int out, int err, long nofile,
               const std::string& contain, int cgroup_procs);

    // Reads what the server sent (non-blocking): its answer to the preload,
    // exits and stops. False once it is gone (its workers were killed with
    // it: take_exit says SIGKILL).
    bool pump();
    // How a forked worker ended. `lost` (not empty) when the server did not
    // tell it: the server died or was given up, and the worker was killed
    // with it (SIGKILL, its parent-death signal); it says how the server
    // ended, in words. Nothing the task did: the runner runs it again. Not
    // when a signal asked the server to end (SIGTERM, SIGINT, SIGHUP,
    // SIGQUIT: a scancel, a shutdown): its workers went with what was asked
    // to end, and fail as any worker killed does.
    struct Exit {
        int status = 0;
        std::string lost;
    };
    // The end of a forked worker that has ended, once.
    std::optional<Exit> take_exit(pid_t pid);
    // The signal that stopped a forked worker since the last call, or 0.
    int take_stop(pid_t pid);
    // The worker is no longer watched (its WorkerProcess is gone).
    void forget(pid_t pid);
    // Ends the server (SIGKILL; a server that is gone, sent what is no
    // packet, did not answer, or no longer tells of its workers' ends), and
    // each worker it forked that had not ended is taken as killed by SIGKILL
    // (they die with it: their parent-death signal), lost with it: `why`
    // says why it was given up, unless the server had died on its own (its
    // wait status says how). A server whose socket closed is given `grace`
    // to be seen dead first: a dying process closes its files before its
    // parent can reap it.
    void abandon(const std::string& why, std::chrono::milliseconds grace = std::chrono::milliseconds(0));
    // Once it is gone (alive() false): how it ended, in words ("ended
    // (killed by signal SIGKILL (Killed))", "did not answer").
    const std::string& end() const noexcept { return end_; }

private:
    ForkServer() = default;
    // The next packet that is no event (events are kept on the way: exits,
    // stops, a spare), if one waits (else would_block); a server that is
    // gone, or sent what is no packet, is given up (abandon).
    std::optional<Dict> next(bool& would_block);
    // The next answer to a request (ready, failed, forked, refused); exits
    // and stops that come first are kept. nullopt: the server is gone, or
    // did not answer by the deadline.
    std::optional<Dict> answer(std::chrono::steady_clock::time_point deadline);
    // An exit, a stop or a spare (whose socket it takes out of fds): kept;
    // false for any other packet.
    bool take_event(const Dict& m, std::vector<int>& fds);
    // Asks the server for a spare, unless one is here or asked for.
    void ask_for_spare(bool contained);
    // Closes the spare's socket: it ends.
    void drop_spare();
    // Waits for the spare asked for (its answer: a spare, or none). False
    // when the server is gone, sent what it should not, or did not answer
    // by the deadline.
    bool wait_for_spare(std::chrono::steady_clock::time_point deadline);
    // A spare was asked for and has not come (nor the answer that none will).
    bool spare_coming() const noexcept { return spare_asked_ && !spare_ && alive(); }

    pid_t pid_ = -1;
    pid_t started_pid_ = -1;  // pid_ is -1 once reaped
    int sock_ = -1;
    std::string end_;
    std::map<pid_t, Exit> exits_;
    std::map<pid_t, int> stops_;
    std::map<pid_t, bool> children_;  // forked and not yet ended
    struct Spare {
        pid_t pid;
        int fd;  // its socket: a fork request sent there starts it
    };
    std::optional<Spare> spare_;
    bool spare_asked_ = false;  // and not answered yet
    std::chrono::steady_clock::time_point spare_asked_at_;
    std::chrono::milliseconds answer_patience_{10000};
    bool ready_ = false;
    std::chrono::steady_clock::time_point start_deadline_;
    std::chrono::milliseconds patience_{0};
    std::string start_error_;
};

}  // namespace fedflow
