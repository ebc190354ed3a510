// Shared-memory segments: exclusive, 0600, readable by name, removable by
// prefix, and a full /dev/shm is an error, never a SIGBUS later; a run's
// lock, and the sweep that removes only runs whose lock nobody holds.
#include "common/shm.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace fedflow;

namespace {

std::string unique(const char* what) { return "fedflow-test-" + std::to_string(::getpid()) + "-" + what; }

}  // namespace

TEST_CASE("create, open read-only, remove") {
    std::string name = unique("a");
    {
        shm::Segment w = shm::Segment::create(name, 4096);
        REQUIRE(w.data() != nullptr);
        CHECK(w.size() == 4096);
        std::memset(w.data(), 7, 4096);
        struct stat st {};
        REQUIRE(::stat(("/dev/shm/" + name).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);

        shm::Segment r = shm::Segment::open_read_only(name);
        CHECK(r.size() == 4096);
        CHECK(r.data()[4095] == 7);
        CHECK_THROWS_WITH_AS(shm::Segment::create(name, 16), doctest::Contains(name.c_str()), std::runtime_error);
    }
    CHECK(shm::Segment::remove(name));
    CHECK_FALSE(shm::Segment::remove(name));
    CHECK_THROWS_AS(shm::Segment::open_read_only(name), std::runtime_error);
}

TEST_CASE("an empty segment has a name and no mapping") {
    std::string name = unique("empty");
    shm::Segment s = shm::Segment::create(name, 0);
    CHECK(s.size() == 0);
    CHECK(s.data() == nullptr);
    CHECK(shm::Segment::open_read_only(name).size() == 0);
    CHECK(shm::Segment::remove(name));
}

TEST_CASE("more than /dev/shm holds fails at once and leaves nothing") {
    std::string name = unique("huge");
    CHECK_THROWS_WITH_AS(shm::Segment::create(name, std::size_t{1} << 50), doctest::Contains("/dev/shm full"),
                         std::runtime_error);
    CHECK(shm::list_prefix(name).empty());
}

TEST_CASE("remove_prefix removes exactly the names with the prefix") {
    std::string p = unique("run");
    shm::Segment::create(p + "-t1-r", 8);
    shm::Segment::create(p + "-t1-b0", 8);
    shm::Segment::create(p + "-t10-r", 8);
    CHECK(shm::list_prefix(p).size() == 3);
    CHECK(shm::remove_prefix(p + "-t1-") == 2);
    CHECK(shm::list_prefix(p).size() == 1);
    CHECK(shm::remove_prefix(p + "-") == 1);
    CHECK(shm::list_prefix(p).empty());
    CHECK(shm::result_name("x") == "x-r");
    CHECK(shm::bytes_name("x", 3) == "x-b3");
}

namespace {

// A run as another host (in another PID namespace, say) leaves it: a lock
// file, locked (held is the fd that holds it) or not, and two segments.
std::string fake_run(const char* hex, int* held) {
    std::string run = "fedflow-999999999-" + std::string(hex);
    int fd = ::open(("/dev/shm/" + shm::RunLock::lock_name(run)).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    if (held != nullptr) {
        REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
        *held = fd;
    } else {
        ::close(fd);
    }
    shm::Segment::create(run + "-t1-r", 8);
    shm::Segment::create(run + "-in1", 8);
    return run;
}

}  // namespace

TEST_CASE("RunLock: a prefix of its own, locked while it lives") {
    std::string prefix;
    {
        shm::RunLock lock;
        prefix = lock.prefix();
        CHECK(prefix.rfind("fedflow-" + std::to_string(::getpid()) + "-", 0) == 0);
        CHECK(prefix.size() == std::string("fedflow-").size() + std::to_string(::getpid()).size() + 9);
        int fd = ::open(("/dev/shm/" + shm::RunLock::lock_name(prefix)).c_str(), O_RDWR | O_CLOEXEC);
        REQUIRE(fd >= 0);
        CHECK(::flock(fd, LOCK_EX | LOCK_NB) != 0);  // another open file: refused while the run lives
        ::close(fd);
        shm::RunLock other;
        CHECK(other.prefix() != prefix);
    }
    CHECK(shm::list_prefix(prefix).empty());  // the lock file goes with it
}

TEST_CASE("remove_abandoned removes only what a free lock proves gone") {
    int held = -1;
    std::string gone = fake_run("0a0a0a0a", nullptr);
    std::string alive = fake_run("0b0b0b0b", &held);      // its pid is dead here; its lock is not
    std::string unlocked = "fedflow-999999999-0c0c0c0c";  // no lock file at all
    shm::Segment::create(unlocked + "-t1-r", 8);
    shm::RunLock own;
    shm::Segment::create(own.prefix() + "-in1", 8);

    shm::Sweep s = shm::remove_abandoned(own.prefix());
    CHECK(s.removed >= 2);  // (and whatever else a killed test left)
    CHECK(shm::list_prefix(gone).empty());
    CHECK(shm::list_prefix(alive).size() == 3);
    CHECK(shm::list_prefix(unlocked).size() == 1);
    CHECK(s.unproven >= 1);
    CHECK(shm::list_prefix(own.prefix()).size() == 2);  // its segment and its lock

    ::close(held);  // that host dies now
    shm::remove_abandoned(own.prefix());
    CHECK(shm::list_prefix(alive).empty());
    CHECK(shm::remove_prefix(unlocked) == 1);
    CHECK(shm::remove_prefix(own.prefix() + "-") == 1);
}
