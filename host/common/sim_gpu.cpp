#include "common/sim_gpu.hpp"

#include "common/shm.hpp"
#include "common/text.hpp"
#include "common/units.hpp"

#include <fmt/core.h>

#include <atomic>
#include <cstring>
#include <stdexcept>

namespace fedflow::simgpu {

namespace {

// The table's layout: Header, then one Row per GPU, then the slots.
constexpr std::uint32_t kMagic = 0x55504753;  // "SGPU"
// One slot per live worker; more workers than this hold no simulated
// memory (their declarations fail with a message that says why).
constexpr std::uint32_t kSlots = 4096;

struct Header {
    std::uint32_t magic;
    std::uint32_t gpus;
    std::uint32_t slots;
    std::uint32_t reserved;
};
struct Row {
    std::uint64_t total;
    std::uint64_t foreign;
    std::uint64_t held;  // the sum of the slots' bytes on this GPU
};
struct Slot {
    std::int32_t pid;  // 0: free
    std::int32_t gpu;
    std::uint64_t bytes;
};

template <class T>
std::atomic_ref<T> at(T& field) {
    return std::atomic_ref<T>(field);
}

std::uint64_t parse_size(std::string_view text, std::string_view item) {
    try {
        return units::parse_size(text);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("'{}': {}", item, e.what()));
    }
}

}  // namespace

std::vector<Spec> parse(std::string_view spec) {
    const char* form = "write GPUs separated by commas, each [COUNTx]SIZE[:used=SIZE], such as 4x80GiB, "
                       "80GiB,40GiB or 80GiB:used=20GiB";
    if (spec.empty()) throw std::invalid_argument(fmt::format("no GPU given: {}", form));
    std::vector<Spec> out;
    for (std::string_view item : units::split_commas(spec)) {
        if (item.empty()) throw std::invalid_argument(fmt::format("an empty GPU in '{}': {}", spec, form));
        std::string_view size = item, used;
        if (std::size_t colon = item.find(':'); colon != std::string_view::npos) {
            size = item.substr(0, colon);
            std::string_view rest = item.substr(colon + 1);
            if (rest.substr(0, 5) != "used=" || rest.size() == 5)
                throw std::invalid_argument(
                    fmt::format("'{}': after ':' only used=SIZE may follow (the memory that other processes use)",
                                item));
            used = rest.substr(5);
        }
        std::size_t count = 1;
        if (std::size_t x = size.find('x'); x != std::string_view::npos) {
            std::string_view n = size.substr(0, x);
            if (!units::all_digits(n) || n.size() > 3 || std::stoul(std::string(n)) == 0)
                throw std::invalid_argument(
                    fmt::format("'{}': the count before 'x' must be a number from 1, {}", item, form));
            count = std::stoul(std::string(n));
            size = size.substr(x + 1);
        }
        Spec g;
        g.total = parse_size(size, item);
        if (g.total == 0) throw std::invalid_argument(fmt::format("'{}': a GPU of size 0", item));
        if (!used.empty()) g.foreign = parse_size(used, item);
        if (g.foreign > g.total)
            throw std::invalid_argument(fmt::format("'{}': used={} is more than the GPU's {}", item,
                                                    text::format_size(g.foreign), text::format_size(g.total)));
        if (out.size() + count > max_gpus)
            throw std::invalid_argument(fmt::format("'{}': more than {} GPUs", spec, max_gpus));
        out.insert(out.end(), count, g);
    }
    return out;
}

struct Table::Impl {
    shm::Segment segment;
    Header* header = nullptr;
    Row* rows = nullptr;
    Slot* slots = nullptr;

    explicit Impl(shm::Segment s) : segment(std::move(s)) {
        header = reinterpret_cast<Header*>(segment.data());
        rows = reinterpret_cast<Row*>(segment.data() + sizeof(Header));
    }
    void place_slots() { slots = reinterpret_cast<Slot*>(reinterpret_cast<std::uint8_t*>(rows + header->gpus)); }
};

namespace {
std::size_t table_size(std::size_t gpus) { return sizeof(Header) + gpus * sizeof(Row) + kSlots * sizeof(Slot); }
}  // namespace

Table Table::create(const std::string& name, const std::vector<Spec>& gpus) {
    auto impl = std::make_unique<Impl>(shm::Segment::create(name, table_size(gpus.size())));
    impl->header->gpus = static_cast<std::uint32_t>(gpus.size());
    impl->header->slots = kSlots;
    for (std::size_t i = 0; i < gpus.size(); ++i) impl->rows[i] = Row{gpus[i].total, gpus[i].foreign, 0};
    impl->place_slots();
    at(impl->header->magic).store(kMagic);  // last: the table is complete
    return Table(std::move(impl));
}

Table Table::open(const std::string& name) {
    auto impl = std::make_unique<Impl>(shm::Segment::open_read_write(name));
    if (impl->segment.size() < sizeof(Header) || at(impl->header->magic).load() != kMagic ||
        impl->segment.size() < table_size(impl->header->gpus) || impl->header->slots != kSlots)
        throw std::runtime_error("shared memory '" + name + "' is not a table of simulated GPUs");
    impl->place_slots();
    return Table(std::move(impl));
}

Table::Table(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Table::Table(Table&&) noexcept = default;
Table& Table::operator=(Table&&) noexcept = default;
Table::~Table() = default;

std::size_t Table::count() const noexcept { return impl_->header->gpus; }
std::size_t Table::slots() const noexcept { return kSlots; }
int Table::slot_pid(std::size_t slot) const noexcept { return at(impl_->slots[slot].pid).load(); }

Spec Table::spec(std::size_t gpu) const {
    const Row& r = impl_->rows[gpu];
    return Spec{r.total, r.foreign};
}

bool Table::set(int pid, std::size_t gpu, std::uint64_t bytes, std::uint64_t& free_bytes) {
    if (gpu >= count()) throw std::out_of_range(fmt::format("no simulated GPU {} (there are {})", gpu, count()));
    Slot* slot = nullptr;
    for (std::size_t i = 0; i < kSlots && slot == nullptr; ++i)
        if (at(impl_->slots[i].pid).load() == pid) slot = &impl_->slots[i];
    for (std::size_t i = 0; i < kSlots && slot == nullptr && bytes > 0; ++i) {
        std::int32_t expected = 0;
        if (at(impl_->slots[i].pid).compare_exchange_strong(expected, pid)) {
            slot = &impl_->slots[i];
            at(slot->bytes).store(0);
        }
    }
    Row& row = impl_->rows[gpu];
    const std::uint64_t limit = row.total - row.foreign;
    if (slot == nullptr) {
        free_bytes = limit - std::min(limit, at(row.held).load());
        if (bytes == 0) return true;
        throw std::runtime_error(
            fmt::format("the simulated GPUs' table has no free slot ({} processes hold memory)", kSlots));
    }
    // Memory on another simulated GPU is freed first: a process holds
    // memory on the device it trains on.
    std::uint64_t old = at(slot->bytes).load();
    if (old > 0 && static_cast<std::size_t>(at(slot->gpu).load()) != gpu) {
        at(impl_->rows[at(slot->gpu).load()].held).fetch_sub(old);
        at(slot->bytes).store(0);
        old = 0;
    }
    auto held = at(row.held);
    std::uint64_t now = held.load();
    for (;;) {
        std::uint64_t others = now - std::min(now, old);
        free_bytes = limit - std::min(limit, others);
        if (bytes > old && bytes > free_bytes) return false;
        if (held.compare_exchange_weak(now, others + bytes)) break;
    }
    at(slot->gpu).store(static_cast<std::int32_t>(gpu));
    at(slot->bytes).store(bytes);
    return true;
}

std::uint64_t Table::used(std::size_t gpu, std::map<int, std::uint64_t>& processes) const {
    // The sum of the processes read here, not the row's total read after
    // them: a process that frees its memory between the two reads would be
    // in the list but not in the total, and the scheduler, which takes what
    // the total holds beyond its workers for other programs' use, would
    // think the device that much emptier than it is (and over-commit it).
    std::uint64_t held = 0;
    for (std::size_t i = 0; i < kSlots; ++i) {
        Slot& s = impl_->slots[i];
        int pid = at(s.pid).load();
        if (pid == 0) continue;
        std::uint64_t bytes = at(s.bytes).load();
        if (bytes > 0 && static_cast<std::size_t>(at(s.gpu).load()) == gpu) {
            processes[pid] += bytes;
            held += bytes;
        }
    }
    return impl_->rows[gpu].foreign + held;
}

void Table::release_slot(std::size_t i) noexcept {
    Slot& s = impl_->slots[i];
    std::uint64_t bytes = at(s.bytes).exchange(0);
    if (bytes > 0) at(impl_->rows[at(s.gpu).load()].held).fetch_sub(bytes);
    at(s.pid).store(0);
}

}  // namespace fedflow::simgpu
