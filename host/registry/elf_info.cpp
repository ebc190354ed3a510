#include "registry/elf_info.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fedflow::elf {

namespace {

#if defined(__x86_64__)
constexpr std::uint16_t this_machine = EM_X86_64;
#elif defined(__aarch64__)
constexpr std::uint16_t this_machine = EM_AARCH64;
#else
constexpr std::uint16_t this_machine = EM_NONE;
#endif

// Reads at offsets (pread): only the headers, the section names, the
// dynamic symbols and the info section are touched, however large the
// library. Every offset is checked against the file's size.
class File {
public:
    explicit File(const std::filesystem::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
        struct stat st {};
        if (fd_ < 0 || ::fstat(fd_, &st) != 0) throw std::runtime_error("cannot be read");
        size_ = static_cast<std::uint64_t>(st.st_size);
    }
    ~File() {
        if (fd_ >= 0) ::close(fd_);
    }
    std::uint64_t size() const noexcept { return size_; }
    File(const File&) = delete;
    File& operator=(const File&) = delete;

    template <class T>
    T at(std::uint64_t offset) const {
        T v;
        read(offset, &v, sizeof(T));
        return v;
    }
    // The NUL-terminated string at offset, not reaching past limit.
    std::string cstr(std::uint64_t offset, std::uint64_t limit) const {
        std::string s;
        char buf[64];
        limit = std::min(limit, size_);
        while (offset < limit) {
            std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof buf, limit - offset));
            read(offset, buf, n);
            for (std::size_t i = 0; i < n; ++i) {
                if (buf[i] == '\0') return s;
                s += buf[i];
            }
            offset += n;
        }
        return s;
    }

    // n bytes at offset, at once.
    std::string range(std::uint64_t offset, std::uint64_t n) const {
        if (offset > size_ || n > size_ - offset) throw std::runtime_error("truncated ELF file");
        std::string out(static_cast<std::size_t>(n), '\0');
        read(offset, out.data(), out.size());
        return out;
    }

private:
    void read(std::uint64_t offset, void* out, std::size_t n) const {
        if (offset > size_ || n > size_ - offset) throw std::runtime_error("truncated ELF file");
        if (::pread(fd_, out, n, static_cast<off_t>(offset)) != static_cast<ssize_t>(n))
            throw std::runtime_error("cannot be read");
    }

    int fd_;
    std::uint64_t size_ = 0;
};

}  // namespace

Info read(const std::filesystem::path& path) {
    File f(path);
    // The magic first: a file too short for an ELF header is truncated
    // only if it starts like one.
    if (f.size() == 0) throw std::runtime_error("not an ELF file: the file is empty");
    std::string magic = f.range(0, std::min<std::uint64_t>(f.size(), SELFMAG));
    if (magic.size() < SELFMAG || std::memcmp(magic.data(), ELFMAG, SELFMAG) != 0)
        throw std::runtime_error(
            fmt::format("not an ELF file: it does not start with the ELF magic \\x7fELF (a {}-byte file)", f.size()));
    auto eh = f.at<Elf64_Ehdr>(0);
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
        throw std::runtime_error("not a 64-bit little-endian ELF file");
    if (eh.e_type != ET_DYN) throw std::runtime_error("not a shared library");
    if (eh.e_machine != this_machine)
        throw std::runtime_error(fmt::format("built for another machine (ELF machine {})", eh.e_machine));
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum)
        throw std::runtime_error("no section table");

    auto section = [&](std::uint32_t i) {
        return f.at<Elf64_Shdr>(eh.e_shoff + std::uint64_t{i} * sizeof(Elf64_Shdr));
    };
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
        } else if (name == ".fedflow_python" && sh.sh_type != SHT_NOBITS) {
            std::string v = f.range(sh.sh_offset, std::min<std::uint64_t>(sh.sh_size, 16));
            info.python_version = v.substr(0, v.find('\0'));
        } else if (name == FEDFLOW_PARAMS_SECTION && sh.sh_type != SHT_NOBITS) {
            if (sh.sh_size > FEDFLOW_PARAMS_MAX)
                throw std::runtime_error(
                    fmt::format("section {} is larger than {} bytes", FEDFLOW_PARAMS_SECTION, FEDFLOW_PARAMS_MAX));
            std::string text = f.range(sh.sh_offset, sh.sh_size);
            info.params = text.substr(0, text.find('\0'));
        } else if (sh.sh_type == SHT_DYNSYM && sh.sh_link < eh.e_shnum && sh.sh_entsize == sizeof(Elf64_Sym)) {
            // Both tables at once: a C++ plugin exports thousands of symbols.
            std::string strtab = f.range(section(sh.sh_link).sh_offset, section(sh.sh_link).sh_size);
            std::string symtab = f.range(sh.sh_offset, sh.sh_size - sh.sh_size % sizeof(Elf64_Sym));
            for (std::size_t off = 0; off < symtab.size(); off += sizeof(Elf64_Sym)) {
                Elf64_Sym sym;
                std::memcpy(&sym, symtab.data() + off, sizeof sym);
                if (sym.st_shndx == SHN_UNDEF || ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_name >= strtab.size())
                    continue;
                if (std::strcmp(strtab.c_str() + sym.st_name, FEDFLOW_PLUGIN_ENUM_SYMBOL) == 0) info.has_entry = true;
            }
        }
    }
    return info;
}

}  // namespace fedflow::elf
