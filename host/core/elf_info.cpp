#include "elf_info.hpp"

#include <fmt/core.h>

#include <cstring>
#include <fstream>
#include <stdexcept>

#include <elf.h>

namespace fedflow::elf {

namespace {

#if defined(__x86_64__)
constexpr std::uint16_t this_machine = EM_X86_64;
#elif defined(__aarch64__)
constexpr std::uint16_t this_machine = EM_AARCH64;
#else
constexpr std::uint16_t this_machine = EM_NONE;
#endif

// The whole file is read once: plugin files are small next to what loading
// them would cost, and every offset below is checked against its size.
class File {
public:
    explicit File(const std::filesystem::path& path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw std::runtime_error("cannot be read");
        data_.assign(std::istreambuf_iterator<char>(in), {});
    }
    template <class T>
    T at(std::uint64_t offset) const {
        if (offset > data_.size() || sizeof(T) > data_.size() - offset) throw std::runtime_error("truncated ELF file");
        T v;
        std::memcpy(&v, data_.data() + offset, sizeof(T));
        return v;
    }
    std::string cstr(std::uint64_t offset, std::uint64_t limit) const {
        std::string s;
        while (offset < data_.size() && offset < limit && data_[offset] != '\0') s += data_[offset++];
        return s;
    }
    std::uint64_t size() const { return data_.size(); }

private:
    std::string data_;
};

}  // namespace

Info read(const std::filesystem::path& path) {
    File f(path);
    auto eh = f.at<Elf64_Ehdr>(0);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) throw std::runtime_error("not an ELF file");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
        throw std::runtime_error("not a 64-bit little-endian ELF file");
    if (eh.e_type != ET_DYN) throw std::runtime_error("not a shared library");
    if (eh.e_machine != this_machine)
        throw std::runtime_error(fmt::format("built for another machine (ELF machine {})", eh.e_machine));
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum)
        throw std::runtime_error("no section table");

    auto section = [&](std::uint32_t i) { return f.at<Elf64_Shdr>(eh.e_shoff + std::uint64_t{i} * sizeof(Elf64_Shdr)); };
    Elf64_Shdr names = section(eh.e_shstrndx);

    Info info;
    for (std::uint32_t i = 0; i < eh.e_shnum; ++i) {
        Elf64_Shdr sh = section(i);
        std::string name = f.cstr(names.sh_offset + sh.sh_name, names.sh_offset + names.sh_size);
        if (name == FEDFLOW_INFO_SECTION && sh.sh_type != SHT_NOBITS) {
            if (sh.sh_size % sizeof(fedflow_plugin_info) != 0)
                throw std::runtime_error(fmt::format("section {} has a size that is not a multiple of {}",
                                                     FEDFLOW_INFO_SECTION, sizeof(fedflow_plugin_info)));
            for (std::uint64_t off = 0; off < sh.sh_size; off += sizeof(fedflow_plugin_info)) {
                auto rec = f.at<fedflow_plugin_info>(sh.sh_offset + off);
                rec.name[FEDFLOW_NAME_MAX - 1] = '\0';
                info.plugins.push_back(rec);
            }
        } else if (sh.sh_type == SHT_DYNSYM && sh.sh_link < eh.e_shnum && sh.sh_entsize == sizeof(Elf64_Sym)) {
            Elf64_Shdr strtab = section(sh.sh_link);
            for (std::uint64_t off = 0; off + sizeof(Elf64_Sym) <= sh.sh_size; off += sizeof(Elf64_Sym)) {
                auto sym = f.at<Elf64_Sym>(sh.sh_offset + off);
                if (sym.st_shndx == SHN_UNDEF || ELF64_ST_TYPE(sym.st_info) != STT_FUNC) continue;
                if (f.cstr(strtab.sh_offset + sym.st_name, strtab.sh_offset + strtab.sh_size) ==
                    FEDFLOW_PLUGIN_ENUM_SYMBOL)
                    info.has_entry = true;
            }
        }
    }
    return info;
}

}  // namespace fedflow::elf
