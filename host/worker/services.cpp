#include "worker/services.hpp"

#include "common/device.hpp"
#include "common/text.hpp"

#include <fedflow/detail/wire.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include <unistd.h>

namespace fedflow::worker {

namespace {

void set_status(fedflow_status* st, std::int32_t code, const std::string& message) {
    if (st == nullptr) return;
    st->code = code;
    std::snprintf(st->message, sizeof st->message, "%s", message.c_str());
}

// A successful zero-byte allocation still needs a non-null pointer.
std::uint8_t empty_buffer[1];

// "2147483648 bytes (2.00 GiB)": exact, and readable.
std::string bytes_text(std::uint64_t n) {
    std::string text = std::to_string(n) + " bytes";
    if (n >= (std::uint64_t{1} << 20)) text += " (" + fedflow::text::format_size(n) + ")";
    return text;
}

}  // namespace

Services::Services(std::string prefix, std::uint64_t max_bytes) : prefix_(std::move(prefix)), max_bytes_(max_bytes) {
    table_.version = FEDFLOW_HOST_SERVICES_VERSION;
    table_.size = sizeof(fedflow_host_services);
    table_.host = this;
    table_.log = &Services::log;
    table_.bytes_alloc = &Services::bytes_alloc;
    table_.result_alloc = &Services::result_alloc;
    table_.set_estimates = &Services::set_estimates;
    table_.declare_gpu_memory = &Services::declare_gpu_memory;
}

void Services::start_train(const std::string& device) {
    sim_device_.clear();
    sim_index_ = -1;
    std::uint64_t free = 0;
    if (!device::simulated(device)) {
        if (sim_gpus_) sim_gpus_->set(::getpid(), 0, 0, free);  // nothing held on a simulated GPU now
        return;
    }
    if (!sim_gpus_) {
        const char* name = std::getenv(simgpu::env_name);
        if (name == nullptr || *name == '\0')
            throw std::runtime_error("train on " + device + ", but the host simulates no GPU (" + simgpu::env_name +
                                     " is not set)");
        sim_gpus_ = simgpu::Table::open(name);
    }
    int index = device::gpu_index(device);
    if (static_cast<std::size_t>(index) >= sim_gpus_->count())
        throw std::runtime_error("train on " + device + ", but the host simulates " +
                                 std::to_string(sim_gpus_->count()) + " GPU(s)");
    sim_gpus_->set(::getpid(), static_cast<std::size_t>(index), 0, free);
    sim_device_ = device;
    sim_index_ = index;
}

void Services::train_failed() {
    std::uint64_t free = 0;
    if (sim_index_ >= 0) sim_gpus_->set(::getpid(), static_cast<std::size_t>(sim_index_), 0, free);
}

std::int32_t Services::declare_gpu_memory(void* host, std::uint64_t bytes, fedflow_status* status) {
    auto* self = static_cast<Services*>(host);
    if (self->sim_index_ < 0) {
        set_status(status, FEDFLOW_INVALID, "declare_gpu_memory: train does not run on a simulated GPU");
        return FEDFLOW_INVALID;
    }
    std::uint64_t free = 0;
    try {
        if (self->sim_gpus_->set(::getpid(), static_cast<std::size_t>(self->sim_index_), bytes, free))
            return FEDFLOW_OK;
    } catch (const std::exception& e) {
        set_status(status, FEDFLOW_ERROR, e.what());
        return FEDFLOW_ERROR;
    }
    set_status(status, FEDFLOW_OUT_OF_MEMORY,
               std::string(simgpu::oom_text) + ": " + self->sim_device_ + " cannot hold " + bytes_text(bytes) +
                   " for this task, " + bytes_text(free) + " free");
    return FEDFLOW_OUT_OF_MEMORY;
}

void Services::set_estimates(void* host, std::int64_t memory, std::int64_t gpu_memory) {
    auto* self = static_cast<Services*>(host);
    self->memory_estimate_ = memory < 0 ? -1 : memory;
    self->gpu_memory_estimate_ = gpu_memory < 0 ? -1 : gpu_memory;
}

void Services::log(void*, std::int32_t level, const char* message) {
    static const char* const names[] = {"debug", "info", "warning", "error"};
    const char* name = (level >= 0 && level <= 3) ? names[level] : "info";
    std::fprintf(stderr, "[%s] %s\n", name, message != nullptr ? message : "");
}

// The result and its Bytes together may take at most max_bytes_ ([scheduler]
// result-limit). Refused as invalid, not out of memory: a retry would not
// make the result smaller.
bool Services::within_limit(std::uint64_t size, fedflow_status* status) {
    if (max_bytes_ != 0 && (size > max_bytes_ || used_bytes_ > max_bytes_ - size)) {
        std::uint64_t wanted = size > UINT64_MAX - used_bytes_ ? UINT64_MAX : used_bytes_ + size;
        set_status(status, FEDFLOW_INVALID,
                   "result too large: it needs " + bytes_text(wanted) + ", more than the result limit of " +
                       bytes_text(max_bytes_) + " ([scheduler] result-limit)");
        return false;
    }
    return true;
}

std::uint8_t* Services::bytes_alloc(void* host, std::uint64_t size, std::uint64_t* id, fedflow_status* status) {
    auto* self = static_cast<Services*>(host);
    if (!self->within_limit(size, status)) return nullptr;
    try {
        std::uint64_t n = self->next_id_;
        shm::Segment seg = shm::Segment::create(shm::bytes_name(self->prefix_, n), size);
        ++self->next_id_;
        self->used_bytes_ += size;
        std::uint8_t* p = seg.data() != nullptr ? seg.data() : empty_buffer;
        self->buffers_.emplace_back(std::move(seg));
        *id = n;
        return p;
    } catch (const std::exception& e) {
        // A full /dev/shm (Segment::create reserves the pages) is memory,
        // not a bug: the host may retry.
        set_status(status, FEDFLOW_OUT_OF_MEMORY, e.what());
        return nullptr;
    }
}

std::uint8_t* Services::result_alloc(void* host, std::uint64_t size, fedflow_status* status) {
    auto* self = static_cast<Services*>(host);
    if (self->result_) {
        set_status(status, FEDFLOW_INVALID, "result_alloc called twice in one train");
        return nullptr;
    }
    if (!self->within_limit(size, status)) return nullptr;
    try {
        // The document goes after the header that finish_result writes.
        self->result_ = shm::Segment::create(shm::result_name(self->prefix_), integrity::result_header_size + size);
        self->used_bytes_ += size;
        return self->result_->data() + integrity::result_header_size;
    } catch (const std::exception& e) {
        set_status(status, FEDFLOW_OUT_OF_MEMORY, e.what());
        return nullptr;
    }
}

void Services::next_round(std::string prefix) {
    reset_result();
    buffers_.clear();
    next_id_ = 0;
    prefix_ = std::move(prefix);
}

void Services::reset_result() {
    if (result_) {
        used_bytes_ -= result_->size() - integrity::result_header_size;
        shm::Segment::remove(result_->name());
        result_.reset();
    }
    for (auto& b : buffers_) {
        if (!b) continue;
        used_bytes_ -= b->size();
        shm::Segment::remove(b->name());
        b.reset();
    }
}

std::uint64_t Services::finish_result() {
    if (!result_) {
        std::string doc = wire::encode(Value(Dict()));
        fedflow_status st{};
        std::uint8_t* p = result_alloc(this, doc.size(), &st);
        if (p == nullptr) throw std::runtime_error(st.message);
        std::memcpy(p, doc.data(), doc.size());
    }
    std::uint64_t length = result_->size() - integrity::result_header_size;
    integrity::write_result_header(result_->data(), length);
    return length;
}

std::vector<messages::BytesBuffer> Services::buffers() const {
    std::vector<messages::BytesBuffer> out;
    out.reserve(buffers_.size());
    for (const auto& b : buffers_) {
        if (b) out.push_back({b->size(), integrity::checksum(b->data(), b->size())});
        else out.push_back({std::nullopt, 0});
    }
    return out;
}

}  // namespace fedflow::worker
