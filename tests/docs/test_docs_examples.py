#!/usr/bin/env python3
"""Every example in the docs is checked, so the docs cannot drift from the code
(issue 6, item 5). The fenced blocks of README.md, docs/*.md and
plugins/*/README.md are extracted, and:

- a ```toml block that is a plan (it has [[group]] or [[round]]) must pass
  `fedflow-host validate` with the build's plugins (FEDFLOW_PLUGIN_PATH);
- a ```cpp block with FEDFLOW_TASK, or a ```c block with fedflow_plugin_enum,
  is a plugin: it is compiled against sdk/include as a shared library
  (-std=c++17 / -std=c99, -Wall -Wextra -Werror, -Wl,--no-undefined), and
  `fedflow-host plugins` must list it under the name it registers;
- any other ```toml or ```cpp block fails the test unless it is marked as a
  fragment, so that a new example is checked or marked on purpose;
- a plan or plugin written without a language (a bare ```) fails too.

Markers are HTML comments (invisible on a rendered page) on the last non-blank
line before the block:

  <!-- doc-test: fragment -->           not complete: not checked
  <!-- doc-test: plan-for previous -->  a plan for the plugin block above it in
                                        the same file: compiled, the plan is run
                                        (exit 0, every task FINISHED)
  <!-- doc-test: parse-only -->         a plan whose plugins are examples that do
                                        not exist: validate may fail only on
                                        "no plugin named"
  <!-- doc-test: invalid -->            a plan that must be refused (exit 2); when
                                        the next block is a transcript of
                                        `$ fedflow-host validate FILE ...`, the
                                        output must be exactly its lines
  <!-- doc-test: needs cuda -->         a plugin that needs the CUDA Runtime (or
  <!-- doc-test: needs torch -->        libtorch): compiled (-c) only where its
                                        headers are installed

Shell transcripts and other blocks (sh, json, meson, output) are not checked.
Environment: as the integration tests (tests/integration/fftest.py).
"""
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import unittest

sys.path.insert(0, os.path.join(os.environ.get("FEDFLOW_SOURCE_ROOT", ""), "tests", "integration"))
import fftest  # noqa: E402

CXX = os.environ.get("CXX", "c++")
CC = os.environ.get("CC", "cc")
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
COMPILED = {}  # (file, line) -> (dir, plugin name, linked)
_PLUGIN_ROOT = []
# Blocks that need CUDA or libtorch take long to compile (libtorch's headers:
# half a minute): tests/docs/meson.build runs them as a test of their own,
# beside the others. FEDFLOW_DOC_BLOCKS = "light", "heavy" or unset (all).
WHICH = os.environ.get("FEDFLOW_DOC_BLOCKS", "")
KNOWN_MARKERS = {"fragment", "plan-for previous", "parse-only", "invalid", "needs cuda", "needs torch"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$")


class Block:
    def __init__(self, path, line, lang, text, markers):
        self.path, self.line, self.lang, self.text, self.markers = path, line, lang, text, markers
        self.next = None      # the block after it in the same file
        self.plugin = None    # for a plan-for block: the plugin block above it

    def where(self):
        return "%s:%d" % (os.path.relpath(self.path, fftest.SOURCE_ROOT), self.line)

    def is_plugin(self):
        return (self.lang == "cpp" and "FEDFLOW_TASK(" in self.text) or \
               (self.lang == "c" and "fedflow_plugin_enum" in self.text)

    def plugin_name(self):
        m = re.search(r'FEDFLOW_TASK\(\s*\w+\s*,\s*"([^"]*)"\s*\)', self.text) or \
            re.search(r'FEDFLOW_PLUGIN_INFO\(\s*\w+\s*,\s*"([^"]*)"\s*\)', self.text)
        return m.group(1) if m else None


def doc_files():
    root = fftest.SOURCE_ROOT
    files = [os.path.join(root, "README.md")]
    files += sorted(os.path.join(root, "docs", n) for n in os.listdir(os.path.join(root, "docs")) if n.endswith(".md"))
    plugins = os.path.join(root, "plugins")
    files += sorted(os.path.join(plugins, d, "README.md") for d in os.listdir(plugins)
                    if os.path.isfile(os.path.join(plugins, d, "README.md")))
    return files


def parse(path):
    """The fenced blocks of a markdown file, with the markers just above each."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence)) and
                                      lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        markers, k = set(), start - 2
        while k >= 0 and lines[k].strip() == "":
            k -= 1
        while k >= 0 and MARKER.match(lines[k]):
            markers.update(x.strip() for x in MARKER.match(lines[k]).group(1).split(","))
            k -= 1
        blocks.append(Block(path, start, lang.lower(), "\n".join(body) + "\n", markers))
    for a, b in zip(blocks, blocks[1:]):
        a.next = b
    last_plugin = None
    for b in blocks:
        if b.is_plugin():
            last_plugin = b
        if "plan-for previous" in b.markers:
            b.plugin = last_plugin
    return blocks


def all_blocks():
    return [b for path in doc_files() for b in parse(path)]


def plugin_root():
    if not _PLUGIN_ROOT:
        _PLUGIN_ROOT.append(tempfile.mkdtemp(prefix="fedflow-doc-plugins-"))
        if not os.environ.get("FEDFLOW_KEEP_TMP"):
            atexit.register(shutil.rmtree, _PLUGIN_ROOT[0], True)
    return _PLUGIN_ROOT[0]


def heavy(block):
    return bool(block.markers & {"needs cuda", "needs torch"})


def cuda_include():
    root = os.environ.get("CUDA_PATH", "/usr/local/cuda")
    inc = os.path.join(root, "include")
    return inc if os.path.isfile(os.path.join(inc, "cuda_runtime_api.h")) else None


def torch_includes():
    """Debian's libtorch-dev: torch/script.h in /usr/include, torch/torch.h below it."""
    for root in ("/usr/include", "/usr/local/include"):
        api = os.path.join(root, "torch", "csrc", "api", "include")
        if os.path.isfile(os.path.join(api, "torch", "torch.h")):
            # Not -isystem /usr/include: it would hide the C library from <cstdlib>.
            return ([] if root == "/usr/include" else [root]) + [api]
    return None


class DocExamples(fftest.HostTest):
    """One test per checked block, named after its file and line."""

    def setUp(self):
        super().setUp()
        if not fftest.SOURCE_ROOT:
            self.skipTest("FEDFLOW_SOURCE_ROOT is not set")

    # ---- plugins --------------------------------------------------------

    def compile_plugin(self, block):
        """Builds the block into a directory of its own, once per run of this
        file; returns (dir, name, linked)."""
        key = (block.path, block.line)
        if key not in COMPILED:
            COMPILED[key] = self.compile_once(block)
        return COMPILED[key]

    def compile_once(self, block):
        name = block.plugin_name()
        self.assertTrue(name, "%s: no plugin name in FEDFLOW_TASK / FEDFLOW_PLUGIN_INFO" % block.where())
        out_dir = tempfile.mkdtemp(prefix="plugin-%d-" % block.line, dir=plugin_root())
        src = os.path.join(out_dir, "example." + block.lang)
        with open(src, "w", encoding="utf-8") as f:
            f.write(block.text)
        sdk = "-I" + os.path.join(fftest.SOURCE_ROOT, "sdk", "include")
        warnings = ["-Wall", "-Wextra", "-Werror"]
        if block.lang == "c":
            cmd = [CC, "-std=c99"] + warnings + [sdk]
        else:
            cmd = [CXX, "-std=c++17"] + warnings + [sdk]
        extra = None
        if "needs cuda" in block.markers:
            inc = cuda_include()
            if not inc:
                self.skipTest("needs the CUDA toolkit (cuda_runtime_api.h)")
            extra = ["-isystem", inc]
        if "needs torch" in block.markers:
            incs = torch_includes()
            if not incs:
                self.skipTest("needs libtorch (torch/torch.h)")
            extra = [a for i in incs for a in ("-isystem", i)]
        if extra is not None:
            # Without the libraries at hand: checked, not built.
            cmd += extra + ["-fsyntax-only", src]
        else:
            cmd += ["-fPIC", "-shared", "-fvisibility=hidden", "-Wl,--no-undefined", src,
                    "-o", os.path.join(out_dir, name + ".so")]
        p = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 0, "%s: the example does not compile\n$ %s\n%s" % (
            block.where(), " ".join(cmd), p.stdout[-4000:]))
        return out_dir, name, extra is None

    def check_plugin(self, block):
        out_dir, name, linked = self.compile_plugin(block)
        if not linked:
            return
        r = self.host("plugins", "--plugin-path", out_dir)
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"(?m)^\s+%s\s+ABI \d+\s+%s$" % (re.escape(name), re.escape(os.path.join(out_dir, name + ".so"))),
                         "%s: fedflow-host plugins does not list %r%s" % (block.where(), name, r.describe()))

    # ---- plans ----------------------------------------------------------

    def plan_file(self, block, name="plan.toml"):
        d = os.path.join(self.tmp, "plan-%d" % block.line)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(block.text)
        return path

    def write_modules(self, block, plan):
        """The .py files a Python plan's params name (`module`): the page's
        own examples, written empty beside the plan, as validate checks that
        they are there (it imports nothing)."""
        try:
            doc = tomllib.loads(block.text)
        except tomllib.TOMLDecodeError:
            return
        groups = list(doc.get("group", []))
        for r in doc.get("round", []):
            groups += r.get("group", [])
        for g in groups:
            specs = [g.get("params", {})] + [t.get("params", {}) for t in g.get("task", [])]
            for params in specs:
                m = params.get("module") if isinstance(params, dict) else None
                if isinstance(m, str) and (m.endswith(".py") or "/" in m) and not os.path.isabs(m):
                    path = os.path.join(os.path.dirname(plan), m)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    open(path, "a").close()

    def check_plan(self, block):
        plan = self.plan_file(block)
        self.write_modules(block, plan)
        r = self.host("validate", plan, cwd=os.path.dirname(plan))
        if "parse-only" in block.markers:
            errors = [l for l in r.stderr.splitlines() if re.match(r".+:\d+:\d+: ", l)]
            self.assertExit(r, 2)
            self.assertTrue(errors, "%s: no error line%s" % (block.where(), r.describe()))
            for line in errors:
                self.assertIn("no plugin named", line, "%s: the plan is wrong beyond its example plugins%s" % (
                    block.where(), r.describe()))
            return
        self.assertEqual(r.rc, 0, "%s: the plan does not validate (mark it <!-- doc-test: parse-only --> "
                                  "if it names plugins that exist only as examples)%s" % (block.where(), r.describe()))

    def check_invalid_plan(self, block):
        transcript = block.next if block.next and block.next.lang in ("", "text", "console") else None
        lines = transcript.text.rstrip("\n").split("\n") if transcript else []
        m = re.match(r"\$ \S*fedflow-host validate (\S+)", lines[0]) if lines else None
        name = os.path.basename(m.group(1)) if m else "plan.toml"
        plan = self.plan_file(block, name)
        r = self.host("validate", name, cwd=os.path.dirname(plan))
        self.assertExit(r, 2)
        if m:
            self.assertEqual(r.output.rstrip("\n").split("\n"), lines[1:],
                             "%s: the output shown at %s is not what fedflow-host says" % (block.where(), transcript.where()))

    def run_plan_for(self, block):
        self.assertIsNotNone(block.plugin, "%s: 'plan-for previous' but no plugin block above it" % block.where())
        out_dir, name, linked = self.compile_plugin(block.plugin)
        if not linked:
            self.skipTest("the plugin at %s is compiled only" % block.plugin.where())
        plan = self.plan_file(block)
        wd = os.path.join(self.tmp, "run-%d" % block.line)
        r = self.host(plan, "--workdir", wd, "--plugin-path", out_dir, "--progress", "none", workdir=wd,
                      cwd=os.path.dirname(plan))
        self.assertEqual(r.rc, 0, "%s: the plan does not run with the plugin of %s%s" % (
            block.where(), block.plugin.where(), r.describe()))
        groups = tomllib.loads(block.text).get("group", [])
        self.assertTrue(groups)
        for g in groups:
            for task_id, t in r.report(g["name"])["tasks"].items():
                self.assertEqual(t["status"], "FINISHED", "%s: %s/%s" % (block.where(), g["name"], task_id))

    # ---- what each block is ---------------------------------------------

    def check(self, block):
        unknown = block.markers - KNOWN_MARKERS
        self.assertFalse(unknown, "%s: unknown doc-test marker(s) %s (known: %s)" % (
            block.where(), sorted(unknown), sorted(KNOWN_MARKERS)))
        if "fragment" in block.markers:
            return
        if block.lang == "toml":
            try:
                doc = tomllib.loads(block.text)
            except tomllib.TOMLDecodeError as e:
                self.fail("%s: not valid TOML (%s); mark it <!-- doc-test: fragment --> if it is a piece" % (block.where(), e))
            if not ("group" in doc or "round" in doc):
                self.fail("%s: a TOML block that is not a plan (no [[group]] or [[round]]): "
                          "complete it or mark it <!-- doc-test: fragment -->" % block.where())
            if "invalid" in block.markers:
                self.check_invalid_plan(block)
            elif "plan-for previous" in block.markers:
                self.run_plan_for(block)
            else:
                self.check_plan(block)
        elif block.lang in ("cpp", "c++", "c"):
            if not block.is_plugin():
                self.fail("%s: a %s block that is not a complete plugin (no FEDFLOW_TASK): "
                          "complete it or mark it <!-- doc-test: fragment -->" % (block.where(), block.lang))
            self.check_plugin(block)
        elif block.lang == "":
            looks_like = re.search(r"(?m)^\s*\[\[(group|round)\]\]", block.text) or "FEDFLOW_TASK(" in block.text
            self.assertFalse(looks_like, "%s: a plan or plugin in a block without a language: write ```toml or ```cpp"
                             % block.where())


def checked(block):
    if block.lang in ("toml", "cpp", "c++", "c", ""):
        return True
    return bool(block.markers)


def add_tests():
    if not fftest.SOURCE_ROOT:
        return
    for block in all_blocks():
        if not checked(block) or (WHICH == "light" and heavy(block)) or (WHICH == "heavy" and not heavy(block)):
            continue
        rel = os.path.relpath(block.path, fftest.SOURCE_ROOT)
        name = "test_%s_line_%d_%s" % (re.sub(r"\W", "_", rel), block.line, block.lang or "plain")
        setattr(DocExamples, name, lambda self, b=block: self.check(b))


class Parser(unittest.TestCase):
    """The extraction itself, on a small document."""

    def test_markers_and_fences(self):
        text = ("# t\n\n<!-- doc-test: fragment -->\n```toml\na = 1\n```\n\ntext\n\n"
                "```cpp\nFEDFLOW_TASK(A, \"a\")\n```\n<!-- doc-test: plan-for previous -->\n\n"
                "```toml\n[[group]]\n```\n  ```\n  indented\n  ```\n")
        with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
            f.write(text)
        try:
            blocks = parse(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual([(b.line, b.lang, b.markers) for b in blocks],
                         [(4, "toml", {"fragment"}), (10, "cpp", set()), (15, "toml", {"plan-for previous"}),
                          (18, "", set())])
        self.assertEqual(blocks[0].text, "a = 1\n")
        self.assertIs(blocks[2].plugin, blocks[1])
        self.assertEqual(blocks[1].plugin_name(), "a")
        self.assertEqual(blocks[3].text, "indented\n")

    def test_the_docs_have_examples(self):
        if not fftest.SOURCE_ROOT:
            self.skipTest("FEDFLOW_SOURCE_ROOT is not set")
        blocks = all_blocks()
        self.assertGreater(sum(b.is_plugin() for b in blocks), 2)
        self.assertGreater(sum(b.lang == "toml" and "fragment" not in b.markers for b in blocks), 3)


add_tests()

if __name__ == "__main__":
    fftest.main()
