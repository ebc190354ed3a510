// inputs.hpp: a task's inputs in the worker: the group's inputs segment
// (common/inputs_manifest.hpp) and the byte files it names, each mapped
// read-only for the life of the process.
//
// A plugin whose table has FEDFLOW_FEATURE_INPUT_FILES (every plugin of the
// C++ SDK since it has the flag) gets the segment's document as it is and
// the table of mappings (fedflow_context.input_files): its Bytes point into
// the page cache. A plugin built before gets the document it expects, with
// every byte value inline: the worker copies the files into it once, so the
// copy is in the task that needs it, never in the host.
#pragma once

#include "common/shm.hpp"

#include <fedflow/abi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fedflow::worker {

class Inputs {
public:
    // Opens the inputs segment `name` and maps every byte file it names,
    // after checking with fstat that it is a regular file of the size its
    // result.json gave (a truncated file is an error here, not SIGBUS
    // later); with verify, also that its checksum is the one result.json
    // holds. Throws std::runtime_error that names the file.
    Inputs(const std::string& name, bool verify);
    ~Inputs();
    Inputs(const Inputs&) = delete;
    Inputs& operator=(const Inputs&) = delete;

    // The inputs document whose byte values refer to files(), as a plugin
    // with FEDFLOW_FEATURE_INPUT_FILES reads it.
    fedflow_buffer by_reference() const noexcept { return document_; }
    const fedflow_input_file* files() const noexcept { return table_.data(); }
    std::uint64_t file_count() const noexcept { return table_.size(); }
    // The same document with every byte value inline, for an older plugin
    // (made on the first call, kept).
    fedflow_buffer inline_copy();

private:
    shm::Segment segment_;
    fedflow_buffer document_{};
    std::vector<std::string> paths_;
    std::vector<fedflow_input_file> table_;
    std::string inline_;
};

}  // namespace fedflow::worker
