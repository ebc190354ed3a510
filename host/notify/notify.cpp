#include "notify/notify.hpp"

#include "common/file_io.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "common/text.hpp"

#include <fmt/core.h>

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>

#ifdef FEDFLOW_WITH_CURL
#include <curl/curl.h>
#endif

extern char** environ;

namespace fs = std::filesystem;

namespace fedflow::notify {

bool have_smtp() noexcept {
#ifdef FEDFLOW_WITH_CURL
    return true;
#else
    return false;
#endif
}

Notifier::Notifier(Config config, fs::path workdir) : config_(std::move(config)), workdir_(std::move(workdir)) {}

bool Notifier::wants(const std::string& kind) const noexcept {
    return kind == "group" ? config_.on_group : kind == "run" ? config_.on_run : false;
}

void Notifier::send(const Event& e) {
    if (!wants(e.kind)) return;
    if (!config_.command.empty()) run_command(e);
    if (config_.smtp) mail(e);
}

void Notifier::run_command(const Event& e) {
    std::vector<std::string> args = config_.command;
    args.push_back(e.report.string());
    args.push_back(e.status);
    std::vector<std::string> env_storage;
    for (char** v = environ; *v != nullptr; ++v) env_storage.emplace_back(*v);
    env_storage.push_back("FEDFLOW_NOTIFY=" + e.kind);
    env_storage.push_back("FEDFLOW_NAME=" + e.name);
    env_storage.push_back("FEDFLOW_STATUS=" + e.status);
    env_storage.push_back("FEDFLOW_REPORT=" + e.report.string());
    env_storage.push_back("FEDFLOW_WORKDIR=" + workdir_.string());
    env_storage.push_back("FEDFLOW_SUMMARY=" + e.summary);
    std::vector<char*> envp;
    for (auto& v : env_storage) envp.push_back(v.data());
    envp.push_back(nullptr);

    // Its output goes to notify.log in the workdir, stdin is /dev/null.
    const fs::path log_path = workdir_ / "notify.log";
    file_io::Fd out(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
    process::Spec spec;
    spec.argv = args;
    spec.search_path = true;
    spec.envp = envp.data();
    spec.files = {process::Spec::open(0, "/dev/null", O_RDONLY)};
    if (out.valid())
        spec.files.insert(spec.files.end(), {process::Spec::dup(out.get(), 1), process::Spec::dup(out.get(), 2)});
    spec.close_from = 3;
    process::Child child;
    try {
        child = process::spawn(spec);
    } catch (const std::system_error& e) {
        log::warning("notify: {}", e.what());
        return;
    }
    out.reset();
    if (!child.wait_for(timeout)) {
        child.kill(SIGKILL);
        child.wait_for(std::chrono::seconds(5));
        log::warning("notify: {} did not end within {}: killed (its output: {})", args[0],
                     text::format_duration(timeout), log_path.string());
        return;
    }
    const int status = *child.wait_status();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        log::warning("notify: {} failed ({}; its output: {})", args[0], describe_wait_status(status),
                     log_path.string());
}

std::string subject(const Config::Smtp& smtp, const Event& e) {
    return fmt::format("{} {} {}: {}", smtp.subject, e.kind, e.name, e.status);
}

#ifdef FEDFLOW_WITH_CURL
namespace {

std::string rfc5322_date() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return buf;
}

// Header values come from the plan and group names: no line breaks in them.
std::string header_safe(std::string s) {
    for (char& c : s)
        if (c == '\r' || c == '\n') c = ' ';
    return s;
}

}  // namespace

void Notifier::mail(const Event& e) {
    static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    const Config::Smtp& m = *config_.smtp;
    CURL* curl = initialized ? curl_easy_init() : nullptr;
    if (curl == nullptr) {
        log::warning("notify: cannot start libcurl: no mail sent");
        return;
    }
    std::uint32_t port = m.port != 0 ? m.port : m.security == "ssl" ? 465 : m.security == "starttls" ? 587 : 25;
    std::string url = fmt::format("{}://{}:{}", m.security == "ssl" ? "smtps" : "smtp", m.server, port);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    if (m.security == "starttls") curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    std::string from = "<" + m.from + ">";
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
    curl_slist* rcpt = nullptr;
    for (const auto& to : m.to) rcpt = curl_slist_append(rcpt, ("<" + to + ">").c_str());
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    std::string password;
    if (!m.user.empty()) {
        curl_easy_setopt(curl, CURLOPT_USERNAME, m.user.c_str());
        if (!m.password_env.empty()) {
            const char* p = std::getenv(m.password_env.c_str());
            if (p == nullptr) log::warning("notify: {} is not set: sending mail without a password", m.password_env);
            else password = p;
            curl_easy_setopt(curl, CURLOPT_PASSWORD, password.c_str());
        }
    }
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);

    std::string to_line;
    for (const auto& to : m.to) to_line += (to_line.empty() ? "" : ", ") + to;
    curl_slist* headers = nullptr;
    for (const std::string& h :
         {"Date: " + rfc5322_date(), "From: " + header_safe(m.from), "To: " + header_safe(to_line),
          "Subject: " + header_safe(subject(m, e)), std::string("X-Mailer: fedflow")})
        headers = curl_slist_append(headers, h.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

    curl_mime* mime = curl_mime_init(curl);
    curl_mimepart* text = curl_mime_addpart(mime);
    std::string body = e.summary + "\r\n\r\nThe report is attached: " + e.report.string() + "\r\n";
    curl_mime_data(text, body.c_str(), CURL_ZERO_TERMINATED);
    curl_mime_type(text, "text/plain; charset=utf-8");
    std::error_code ec;
    if (fs::is_regular_file(e.report, ec)) {
        curl_mimepart* file = curl_mime_addpart(mime);
        curl_mime_filedata(file, e.report.c_str());
        curl_mime_type(file, e.report.extension() == ".html" ? "text/html" : "application/json");
        curl_mime_encoder(file, "base64");
    }
    curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        log::warning("notify: mail to {} through {} failed: {}", to_line, url,
                     error[0] ? error : curl_easy_strerror(rc));
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
}
#else
void Notifier::mail(const Event&) { log::warning("notify: this fedflow-host was built without libcurl: no mail sent"); }
#endif

}  // namespace fedflow::notify
