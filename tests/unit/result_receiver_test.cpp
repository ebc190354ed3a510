// ResultReceiver: a worker's result taken out of shared memory, and every way
// a worker can get it wrong refused with a message.
#include "runner/result_receiver.hpp"

#include "common/integrity.hpp"
#include "common/shm.hpp"
#include "runner/receive_thread.hpp"

#include <fedflow/detail/wire.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/eventfd.h>
#include <unistd.h>

using namespace fedflow;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "fedflow-receiver-XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() { fs::remove_all(path); }
};

// What a worker leaves: one Bytes buffer segment of `n` bytes (filled with
// 7s) and a result segment whose document refers to it as "weights".
struct WorkerResult {
    std::string prefix;
    messages::Result announced;

    explicit WorkerResult(std::size_t n) {
        prefix = "fedflow-test-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand());
        shm::Segment b = shm::Segment::create(shm::bytes_name(prefix, 0), n);
        std::memset(b.data(), 7, n);
        Dict doc{{"loss", 0.5}, {"weights", Bytes::view(b.data(), n, 0)}};
        std::size_t size = wire::encoded_size(Value(doc));
        shm::Segment r = shm::Segment::create(shm::result_name(prefix), integrity::result_header_size + size);
        wire::encode(Value(doc), r.data() + integrity::result_header_size, size);
        integrity::write_result_header(r.data(), size);
        announced.size = size;
        announced.buffers = {{n, integrity::checksum(b.data(), n)}};
    }
    ~WorkerResult() { shm::remove_prefix(prefix + "-"); }
    // Flips a byte, as a worker that writes after it announced would.
    static void scribble(const std::string& name, std::streamoff offset) {
        std::fstream f("/dev/shm/" + name, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(offset);
        char c = 0;
        f.get(c);
        f.seekp(offset);
        f.put(static_cast<char>(c ^ 0x5a));
    }
};

}  // namespace

TEST_CASE("a valid result is written to the task's folder and its segments are removed") {
    TempDir dir;
    WorkerResult w(64);
    ResultReceiver r(w.prefix);
    results::Written out = r.receive(w.announced, dir.path);
    CHECK(out.json["loss"] == 0.5);
    CHECK(out.json["weights"]["$bytes"]["size"] == 64);
    CHECK(out.bytes == 64);
    CHECK(fs::file_size(dir.path / "weights.bin") == 64);
    CHECK(out.json["weights"]["$bytes"]["checksum"] ==
          integrity::checksum_text(integrity::checksum(std::string(64, '\7').data(), 64)));
    CHECK(fs::exists(dir.path / "result.json"));
    CHECK(r.segments_removed());
    CHECK(shm::list_prefix(w.prefix + "-").empty());
}

TEST_CASE("a reference to the first n bytes of a buffer: n bytes in the file, the buffer checked whole") {
    TempDir dir;
    const std::string prefix = "fedflow-test-" + std::to_string(::getpid()) + "-part";
    shm::Segment b = shm::Segment::create(shm::bytes_name(prefix, 0), 300000);
    for (std::size_t i = 0; i < b.size(); ++i) b.data()[i] = static_cast<std::uint8_t>(i);
    Dict doc{{"head", Bytes::view(b.data(), 1000, 0)}};
    std::size_t size = wire::encoded_size(Value(doc));
    shm::Segment r = shm::Segment::create(shm::result_name(prefix), integrity::result_header_size + size);
    wire::encode(Value(doc), r.data() + integrity::result_header_size, size);
    integrity::write_result_header(r.data(), size);
    messages::Result a;
    a.size = size;
    a.buffers = {{300000, integrity::checksum(b.data(), b.size())}};
    ResultReceiver rr(prefix);
    results::Written out = rr.receive(a, dir.path);
    CHECK(fs::file_size(dir.path / "head.bin") == 1000);
    CHECK(out.json["head"]["$bytes"]["checksum"] == integrity::checksum_text(integrity::checksum(b.data(), 1000)));
    shm::remove_prefix(prefix + "-");
}

TEST_CASE("a Bytes buffer is checked against the worker's checksum as the host copies it") {
    TempDir dir;
    WorkerResult w(64);
    messages::Result a = w.announced;
    const std::string intact = integrity::checksum_text(a.buffers[0].checksum);
    SUBCASE("intact") {
        results::Written out = ResultReceiver(w.prefix).receive(a, dir.path);
        CHECK(out.json["weights"]["$bytes"]["checksum"] == intact);
        CHECK(results::read_result(out.json, dir.path, true).find("weights")->as<Bytes>().size() == 64);
    }
    SUBCASE("changed after the worker took its checksum: refused on the way in") {
        WorkerResult::scribble(shm::bytes_name(w.prefix, 0), 3);
        ResultReceiver r(w.prefix);
        CHECK_THROWS_WITH(r.receive(a, dir.path), doctest::Contains("bytes buffer 0 corrupt"));
        CHECK_FALSE(fs::exists(dir.path / "weights.bin"));
        r.discard();
    }
    SUBCASE("a checksum that lies: refused on the way in") {
        a.buffers[0].checksum ^= 1;
        ResultReceiver r(w.prefix);
        CHECK_THROWS_WITH(r.receive(a, dir.path), doctest::Contains("bytes buffer 0 corrupt"));
        CHECK_FALSE(fs::exists(dir.path / "weights.bin"));
        r.discard();
    }
    CHECK(shm::list_prefix(w.prefix + "-").empty());
}

TEST_CASE("what a worker can get wrong is refused, and nothing is written") {
    TempDir dir;
    WorkerResult w(64);
    ResultReceiver r(w.prefix);
    messages::Result a = w.announced;
    SUBCASE("a document size that is not the segment's") {
        a.size += 1;
        CHECK_THROWS(r.receive(a, dir.path));
    }
    SUBCASE("a scribbled-on document") {
        WorkerResult::scribble(shm::result_name(w.prefix),
                               static_cast<std::streamoff>(integrity::result_header_size) + 20);
        CHECK_THROWS(r.receive(a, dir.path));
    }
    SUBCASE("a Bytes buffer changed after train returned") {
        WorkerResult::scribble(shm::bytes_name(w.prefix, 0), 3);
        CHECK_THROWS_WITH(r.receive(a, dir.path), doctest::Contains("bytes buffer 0 corrupt"));
    }
    SUBCASE("a buffer announced larger than it is") {
        a.buffers[0].size = 4096;
        CHECK_THROWS_WITH(r.receive(a, dir.path), doctest::Contains("truncated"));
    }
    SUBCASE("a reference to a buffer that was not announced") {
        a.buffers.clear();
        CHECK_THROWS_WITH(r.receive(a, dir.path), doctest::Contains("reference to bytes buffer 0 of 0"));
    }
    SUBCASE("a buffer of an earlier attempt") {
        a.buffers[0].size.reset();
        CHECK_THROWS_WITH(r.receive(a, dir.path), doctest::Contains("earlier attempt"));
    }
    CHECK_FALSE(fs::exists(dir.path / "result.json"));
    CHECK_FALSE(fs::exists(dir.path / "weights.bin"));
    CHECK_FALSE(r.segments_removed());
    r.discard();
    CHECK(shm::list_prefix(w.prefix + "-").empty());
}

TEST_CASE("a result from another node is read from the files its segments were copied to") {
    // What a node agent does (exec/node_agent.hpp): the segments become
    // files named as the segments, in a folder of the shared workdir.
    TempDir dir;
    fs::path copied = dir.path / ".fedflow-result";
    fs::create_directories(copied);
    WorkerResult w(64);
    for (const std::string& name : {shm::result_name(w.prefix), shm::bytes_name(w.prefix, 0)})
        fs::copy_file("/dev/shm/" + name, copied / name);
    shm::remove_prefix(w.prefix + "-");
    ResultReceiver r(w.prefix);
    r.read_files_from(copied);
    SUBCASE("intact: written out, and the copies removed") {
        results::Written out = r.receive(w.announced, dir.path);
        CHECK(out.json["weights"]["$bytes"]["size"] == 64);
        CHECK(fs::file_size(dir.path / "weights.bin") == 64);
        CHECK_FALSE(fs::exists(copied));
    }
    SUBCASE("a copy cut short is refused as a segment would be") {
        fs::resize_file(copied / shm::bytes_name(w.prefix, 0), 10);
        CHECK_THROWS_WITH(r.receive(w.announced, dir.path), doctest::Contains("truncated"));
        r.discard();
        CHECK_FALSE(fs::exists(copied));
    }
    SUBCASE("a copy that is missing names the file") {
        fs::remove(copied / shm::result_name(w.prefix));
        CHECK_THROWS_WITH(r.receive(w.announced, dir.path), doctest::Contains(shm::result_name(w.prefix).c_str()));
    }
    CHECK(shm::list_prefix(w.prefix + "-").empty());
}

TEST_CASE("ReceiveThread: receives on its own thread, tells an eventfd, hands back the result or what was thrown") {
    const int fd = ::eventfd(0, EFD_CLOEXEC);
    REQUIRE(fd >= 0);
    std::uint64_t n = 0;
    const std::size_t big = small_result_bytes + 1;
    {
        TempDir dir;
        WorkerResult w(big);
        ReceiveThread t(ResultReceiver(w.prefix), w.announced, dir.path, fd, 42);
        CHECK(t.threaded());
        REQUIRE(::read(fd, &n, sizeof n) == static_cast<ssize_t>(sizeof n));  // blocks until it is done
        CHECK(t.done());
        CHECK(t.received_ns() == 42);
        results::Written out = t.take();
        CHECK(out.json["loss"] == 0.5);
        CHECK(fs::exists(dir.path / "result.json"));
        CHECK(t.receiver().segments_removed());  // the thread's receiver, as it left it
    }
    {
        TempDir dir;
        WorkerResult w(big);
        // A scribbled-on document: receive throws.
        WorkerResult::scribble(shm::result_name(w.prefix),
                               static_cast<std::streamoff>(integrity::result_header_size) + 20);
        ReceiveThread t(ResultReceiver(w.prefix), w.announced, dir.path, fd, 0);
        REQUIRE(::read(fd, &n, sizeof n) == static_cast<ssize_t>(sizeof n));
        CHECK_THROWS_WITH(t.take(), doctest::Contains("corrupt"));
        CHECK_FALSE(t.receiver().segments_removed());
        CHECK_FALSE(fs::exists(dir.path / "result.json"));
    }
    {
        // A small result (document and buffers within small_result_bytes)
        // is received at once, on the caller's thread, and still told.
        TempDir dir;
        WorkerResult w(small_result_bytes / 2);
        REQUIRE(is_small(w.announced));
        ReceiveThread t(ResultReceiver(w.prefix), w.announced, dir.path, fd, 7);
        CHECK_FALSE(t.threaded());
        CHECK(t.done());
        REQUIRE(::read(fd, &n, sizeof n) == static_cast<ssize_t>(sizeof n));
        CHECK(t.take().json["loss"] == 0.5);
        CHECK(t.receiver().segments_removed());
    }
    ::close(fd);
}
