// libFuzzer target: the host's side of the control channel on whatever a
// worker could write to it. The bytes go through channel::FrameReader in
// pieces (the first input byte sets their size, as reads of a socket would
// cut them), and every frame through messages::Conversation::receive (decode
// and the check of its turn), while a model of the runner answers what it
// accepts as the runner does: train after `loaded`, a retry after an
// out-of-memory train, exit after a result or a failure.
//
// Only channel::ProtocolError may come out (the host then fails the task
// and ends its worker); any other exception, a crash, an out-of-bounds read,
// a leak or undefined behaviour is a bug. A message that is accepted must
// encode and decode to itself.
#include "common/messages.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <variant>

namespace ch = fedflow::channel;
namespace msg = fedflow::messages;

namespace {

template <class M>
void check_round_trip(const M& m) {
    if (!(M::decode(m.encode()) == m)) std::abort();
}

// What the runner sends after it accepted m.
void answer(msg::Conversation& c, const msg::FromWorker& m) {
    std::visit([](const auto& v) { check_round_trip(v); }, m);
    if (std::holds_alternative<msg::Loaded>(m)) {
        c.sent(msg::Train{"cpu"});
    } else if (std::holds_alternative<msg::Result>(m)) {
        c.sent(msg::Exit{});
    } else if (const auto* f = std::get_if<msg::Failed>(&m)) {
        if (f->kind == msg::Failed::Kind::oom && f->stage == msg::Failed::Stage::train) c.sent(msg::Train{"cpu"});
        else c.sent(msg::Exit{});
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t piece = 1 + data[0] % 64;
    ++data;
    --size;

    ch::FrameReader reader;
    msg::Conversation conversation;
    conversation.sent(msg::Config{});
    conversation.sent(msg::Load{});
    try {
        for (std::size_t at = 0; at < size; at += piece) {
            std::size_t n = size - at < piece ? size - at : piece;
            reader.feed(reinterpret_cast<const char*>(data + at), n);
            while (auto frame = reader.next()) answer(conversation, conversation.receive(*frame));
        }
    } catch (const ch::ProtocolError&) {
        return 0;  // the task fails, its worker is ended
    }
    return 0;
}
