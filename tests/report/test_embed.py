"""host/report/embed.py, which turns report.css and report.js into a header:
the text survives as a C++ string literal, and a file that would end its
element early (or is not UTF-8) is refused with the file and line."""
import os
import subprocess
import sys
import tempfile

EMBED = os.path.join(os.environ.get("FEDFLOW_SOURCE_ROOT", ""), "host", "report", "embed.py")


def embed(*args):
    return subprocess.run([sys.executable, EMBED, *args], capture_output=True, text=True)


def main():
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "a.css")
        out = os.path.join(d, "a.hpp")
        text = 'b::after{content:"\\25B2"}\n/* é \t */\n'
        with open(src, "w", encoding="utf-8") as f:
            f.write(text)
        p = embed(out, "css", "style", src)
        assert p.returncode == 0, p.stderr
        header = open(out, encoding="utf-8").read()
        assert "inline constexpr std::string_view css =" in header, header
        # The literal, read back as C would, is the file's bytes.
        body = header.split("css =", 1)[1].split(";\n", 1)[0]
        literal = "".join(part.strip()[1:-1] for part in body.strip().split("\n"))
        decoded = literal.encode("latin-1").decode("unicode_escape").encode("latin-1")
        assert decoded == text.encode("utf-8"), (decoded, text)

        with open(src, "w", encoding="utf-8") as f:
            f.write("a{}\nb{}</STYLE><script>\n")
        p = embed(out, "css", "style", src)
        assert p.returncode == 1 and f"{src}:2:" in p.stderr and "</style" in p.stderr, p.stderr
        with open(src, "wb") as f:
            f.write(b"ok\n\xff\n")
        p = embed(out, "css", "style", src)
        assert p.returncode == 1 and "not UTF-8 at byte 3" in p.stderr, p.stderr
        p = embed(out, "css", "style")
        assert p.returncode == 2, p.returncode
    print("embed.py: ok")


if __name__ == "__main__":
    main()
