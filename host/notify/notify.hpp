// notify.hpp: [notify] of a plan: when a group or the run ends, run the
// user's command with the report's path and the status, and/or mail the
// report through SMTP (libcurl), as the original Fedflow mailed its group
// reports. A notification that fails is a warning in the log (and in
// notify.log for commands), never a failure of the run.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fedflow::notify {

// Whom to tell and when (the plan's [notify], filled in by the runner).
struct Config {
    // Run at each notification with two more arguments: the report's path
    // and the status ("finished", "failed", "interrupted", "error").
    std::vector<std::string> command;
    struct Smtp {
        std::string server;
        std::uint32_t port = 0;             // 0: 25, 587 or 465 by security
        std::string security = "starttls";  // starttls | ssl | none
        std::string from;
        std::vector<std::string> to;
        std::string user;
        std::string password_env;           // the password is read from this variable
        std::string subject = "[fedflow]";  // the start of every subject
    };
    std::optional<Smtp> smtp;
    bool on_group = true;  // after every group (every round's, in rounds)
    bool on_run = true;    // after the run
};

struct Event {
    std::string kind;              // "group" or "run"
    std::string name;              // the group ("round 3 clients"), or the plan's file name
    std::string status;            // finished, failed, interrupted, error
    std::filesystem::path report;  // report.json of the group; report.html of the run
    std::string summary;           // a few lines of text: what finished, what failed
};

class Notifier {
public:
    Notifier(Config config, std::filesystem::path workdir);
    // Tells whoever the plan says; never throws. Waits for the command (at
    // most `timeout`) and the mail, so that a notification is out before
    // the run goes on or ends.
    void send(const Event& e);
    bool wants(const std::string& kind) const noexcept;

    std::chrono::seconds timeout{30};

private:
    void run_command(const Event& e);
    void mail(const Event& e);

    Config config_;
    std::filesystem::path workdir_;
};

// The mail's subject, headers and text part, for tests.
std::string subject(const Config::Smtp& smtp, const Event& e);

// True when this Fedflow was built with libcurl (SMTP).
bool have_smtp() noexcept;

}  // namespace fedflow::notify
