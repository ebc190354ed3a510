// Shared-memory segments: exclusive, 0600, readable by name, removable by
// prefix, and a full /dev/shm is an error, never a SIGBUS later.
#include "common/shm.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <stdexcept>
#include <string>

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
