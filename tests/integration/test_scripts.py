#!/usr/bin/env python3
"""The scripts, run for real with a `meson` and a `dpkg-query` of the test's
own first on PATH: dpkg-query says every package is installed (so
scripts/install-deps installs nothing), and meson writes down how it was
called, so nothing is built or fetched.

- scripts/demo compiles with FEDFLOW_JOBS jobs, as scripts/test does (issue
  11, item 23): it used all CPUs whatever FEDFLOW_JOBS said.
- scripts/test --all builds as CI must (issue 10, item 9): every build with
  -Dwerror=true, and a clang build of the host, the worker and the unit suite.
- scripts/check-format checks and formats with .clang-format (clang-format
  14; skipped without it)."""
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

import fftest

FAKE_MESON = """#!/bin/sh
echo "$@" >> "$FAKE_LOG"
case "$1" in
setup) mkdir -p "$2" && touch "$2/build.ninja" ;;
introspect) echo '[{"name": "demo", "value": true}]' ;;
compile) exit 1 ;;
esac
"""
FAKE_DPKG_QUERY = """#!/bin/sh
printf 'install ok installed'
"""


class DemoJobs(unittest.TestCase):
    def setUp(self):
        if not fftest.SOURCE_ROOT:
            self.skipTest("needs FEDFLOW_SOURCE_ROOT")
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="fedflow-scripts-"))
        self.bin = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin)
        for name, text in (("meson", FAKE_MESON), ("dpkg-query", FAKE_DPKG_QUERY)):
            path = os.path.join(self.bin, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        self.log = os.path.join(self.tmp, "meson.log")

    def tearDown(self):
        if not os.environ.get("FEDFLOW_KEEP_TMP"):
            subprocess.run(["rm", "-rf", self.tmp])

    def demo(self, jobs):
        env = dict(os.environ, PATH=self.bin + os.pathsep + os.environ["PATH"], FAKE_LOG=self.log)
        env.pop("FEDFLOW_JOBS", None)
        if jobs is not None:
            env["FEDFLOW_JOBS"] = jobs
        if os.path.exists(self.log):
            os.remove(self.log)
        build = os.path.join(self.tmp, "build")
        p = subprocess.run([os.path.join(fftest.SOURCE_ROOT, "scripts", "demo"), build], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        calls = open(self.log).read().splitlines() if os.path.exists(self.log) else []
        return p, [c for c in calls if c.startswith("compile ")], build

    def test_demo_compiles_with_FEDFLOW_JOBS_jobs(self):
        p, compiles, build = self.demo("3")
        self.assertEqual(p.returncode, 1, p.stdout)  # the fake compile fails
        self.assertIn("scripts/demo: the build failed", p.stdout)
        self.assertEqual(len(compiles), 1, p.stdout)
        self.assertTrue(compiles[0].startswith("compile -C %s -j 3 fedflow-host fedflow-worker" % build), compiles)

        p, compiles, _ = self.demo(None)
        self.assertIn("-j %d " % os.cpu_count(), compiles[0])

    def test_a_bad_FEDFLOW_JOBS_is_refused_before_anything_runs(self):
        for bad in ("0", "many", "-2"):
            p, compiles, _ = self.demo(bad)
            self.assertEqual(p.returncode, 2, p.stdout)
            self.assertIn("FEDFLOW_JOBS must be a positive number, not '%s'" % bad, p.stdout)
            self.assertEqual(compiles, [])



# For scripts/test: setup makes the build dir, test writes the one passing
# test that scripts/test counts; every call is logged with CC and CXX.
FAKE_MESON_FOR_TEST = """#!/bin/sh
echo "CC=${CC:-} CXX=${CXX:-} $*" >> "$FAKE_LOG"
case "$1" in
setup) mkdir -p "$2" && touch "$2/build.ninja" ;;
test) mkdir -p "$3/meson-logs" && echo '{"name": "t", "result": "OK"}' > "$3/meson-logs/testlog.json" ;;
esac
exit 0
"""


def write_executable(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


class ScriptsTree(unittest.TestCase):
    """A copy of the repository's scripts in a temporary root, so that the
    build dirs they make are not the checkout's, and fake tools first on
    PATH."""

    scripts = ()

    def setUp(self):
        if not fftest.SOURCE_ROOT:
            self.skipTest("needs FEDFLOW_SOURCE_ROOT")
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="fedflow-scripts-"))
        self.root = os.path.join(self.tmp, "root")
        for name in self.scripts:
            os.makedirs(os.path.dirname(os.path.join(self.root, name)), exist_ok=True)
            shutil.copy2(os.path.join(fftest.SOURCE_ROOT, name), os.path.join(self.root, name))
        self.bin = os.path.join(self.tmp, "bin")
        write_executable(os.path.join(self.bin, "dpkg-query"), FAKE_DPKG_QUERY)
        self.log = os.path.join(self.tmp, "meson.log")
        self.env = dict(os.environ, PATH=self.bin + os.pathsep + os.environ["PATH"], FAKE_LOG=self.log)
        for name in ("CC", "CXX", "FEDFLOW_JOBS"):
            self.env.pop(name, None)

    def tearDown(self):
        if not os.environ.get("FEDFLOW_KEEP_TMP"):
            subprocess.run(["rm", "-rf", self.tmp])

    def run_script(self, *args):
        return subprocess.run([os.path.join(self.root, "scripts", args[0])] + list(args[1:]), cwd=self.root,
                              env=self.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


class TestAll(ScriptsTree):
    scripts = ("scripts/test", "scripts/install-deps")

    def setUp(self):
        super().setUp()
        write_executable(os.path.join(self.bin, "meson"), FAKE_MESON_FOR_TEST)
        # The fuzzing phase has its own tests (suite unit replays the corpus),
        # and so does the format check (CheckFormat below): here each says
        # what FAKE_FORMAT_RC (default 0) makes it say.
        write_executable(os.path.join(self.root, "scripts", "fuzz"), "#!/bin/sh\nexit 0\n")
        write_executable(os.path.join(self.root, "scripts", "check-format"),
                         "#!/bin/sh\necho check-format >\"$FAKE_LOG.format\"\nexit ${FAKE_FORMAT_RC:-0}\n")

    def calls(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def find(self, calls, *words):
        found = [c for c in calls if all(w in c.split() for w in words)]
        self.assertEqual(len(found), 1, "one call with %s in:\n%s" % (words, "\n".join(calls)))
        return found[0].split()

    def test_every_build_fails_on_warnings_and_clang_builds_the_host_and_the_unit_suite(self):
        p = self.run_script("test", "--all")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # The format check, three builds and their tests (one fake test
        # each), the fuzzers (2).
        self.assertIn("tests: 6 passed, 0 failed, 0 skipped", p.stdout)
        self.assertTrue(os.path.exists(self.log + ".format"), "scripts/check-format ran")
        calls = self.calls()

        plain = self.find(calls, "setup", "build")
        self.assertIn("-Dwerror=true", plain)
        self.assertEqual(plain[:2], ["CC=", "CXX="], "build/ uses the default compiler")
        asan = self.find(calls, "setup", "build-asan")
        self.assertIn("-Dwerror=true", asan)
        self.assertIn("-Db_sanitize=address,undefined", asan)

        clang = self.find(calls, "setup", "build-clang")
        self.assertEqual(clang[:2], ["CC=clang", "CXX=clang++"])
        for option in ("-Dwerror=true", "-Dtests=enabled"):
            self.assertIn(option, clang)
        compile_clang = self.find(calls, "compile", "build-clang")
        self.assertEqual(compile_clang[-2:], ["fedflow-host", "fedflow-worker"], "only the host and the worker")
        test_clang = self.find(calls, "test", "build-clang")
        self.assertEqual(test_clang[test_clang.index("--suite") + 1], "unit")
        # Phases run in CI's order: build/, build-asan/, build-clang/.
        setups = [c.split()[3] for c in calls if c.split()[2] == "setup"]
        self.assertEqual(setups, ["build", "build-asan", "build-clang"])

    def test_a_file_not_formatted_fails_the_run_and_every_phase_still_runs(self):
        p = subprocess.run([os.path.join(self.root, "scripts", "test"), "--all"], cwd=self.root,
                           env=dict(self.env, FAKE_FORMAT_RC="1"), text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("tests: 5 passed, 1 failed, 0 skipped", p.stdout)
        setups = [c.split()[3] for c in self.calls() if c.split()[2] == "setup"]
        self.assertEqual(setups, ["build", "build-asan", "build-clang"])

    def test_a_build_dir_set_up_before_gets_the_options_of_ci(self):
        # As a developer's build/ from plain scripts/test: no -Dwerror.
        p = self.run_script("test")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("-Dwerror=true", self.find(self.calls(), "setup", "build"))
        os.remove(self.log)
        p = self.run_script("test", "--all")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        calls = self.calls()
        self.assertIn("-Dwerror=true", self.find(calls, "configure", "build"))
        self.assertFalse([c for c in calls if c.split()[2:4] == ["setup", "build"]], calls)


def clang_format_14():
    for name in ("clang-format-14", "clang-format"):
        path = shutil.which(name)
        if path:
            out = subprocess.run([path, "--version"], text=True, stdout=subprocess.PIPE).stdout
            if "version 14." in out:
                return path
    return None


# Not as coding-style.md writes it: 2-space indents, a brace on its own line,
# a guard clause split, includes out of order.
MISFORMATTED = """#include <vector>
#include <string>

int f(int n)
{
  if (n == 0)
    return 0;
  std::vector<std::string> v;
  return n*2;
}
"""
FORMATTED = """#include <string>
#include <vector>

int f(int n) {
    if (n == 0) return 0;
    std::vector<std::string> v;
    return n * 2;
}
"""
# As coding-style.md writes it, kept line for line: include groups, short
# guard clauses and case labels, `} else {`, a call longer than 120 columns
# broken inside its arguments, aligned trailing comments, a template on a
# line of its own.
STYLE_EXAMPLE = """#include "plan/plan.hpp"

#include "common/units.hpp"

#include <fmt/core.h>

#include <cstdint>
#include <string>

#include <unistd.h>

namespace fedflow {

template <class T>
struct Box {
    T value;          // what it holds
    std::string why;  // and why
};

int classify(int n, const std::string& name) {
    if (n == 0) return 0;
    switch (n) {
    case 1: return 1;
    default: break;
    }
    if (name.empty()) {
        return -1;
    } else {
        return n;
    }
}

std::string why(const std::string& name, std::size_t free, std::size_t cap) {
    return fmt::format("{} needs more than {} bytes: {} bytes are free, and Fedflow may use {} of them, not more", name,
                       cap, free, cap / 2);
}

}  // namespace fedflow
"""


class CheckFormat(ScriptsTree):
    scripts = ("scripts/check-format", "scripts/install-deps", ".clang-format")

    def setUp(self):
        super().setUp()
        if clang_format_14() is None:
            self.skipTest("needs clang-format 14 (scripts/install-deps --format)")

    def write(self, name, text):
        with open(os.path.join(self.root, name), "w") as f:
            f.write(text)

    def read(self, name):
        with open(os.path.join(self.root, name)) as f:
            return f.read()

    def test_a_misformatted_file_fails_the_check_and_fix_formats_it(self):
        self.write("bad.cpp", MISFORMATTED)
        p = self.run_script("check-format", "bad.cpp")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("+    if (n == 0) return 0;", p.stdout)
        self.assertRegex(p.stderr, r"\d+ lines in 1 of 1 files would change; to format them: scripts/check-format --fix")
        self.assertEqual(self.read("bad.cpp"), MISFORMATTED, "the check alone changes nothing")

        p = self.run_script("check-format", "--fix", "bad.cpp")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.read("bad.cpp"), FORMATTED)
        p = self.run_script("check-format", "bad.cpp")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_fix_leaves_files_that_are_not_c_or_cpp_alone(self):
        # As `scripts/check-format --fix $(git diff --name-only)` names them:
        # clang-format would take a meson.build or a .py for C++ and mangle it.
        meson = "project('x', 'cpp')\nexecutable('x', 'x.cpp',\n  install: true)\n"
        self.write("meson.build", meson)
        self.write("bad.cpp", MISFORMATTED)
        p = self.run_script("check-format", "--fix", "meson.build", "bad.cpp")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("meson.build: not a C or C++ file, left as it is", p.stderr)
        self.assertEqual(self.read("meson.build"), meson)
        self.assertEqual(self.read("bad.cpp"), FORMATTED)
        p = self.run_script("check-format", "gone.cpp")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("gone.cpp: no such file", p.stderr)

    def test_code_written_as_coding_style_says_passes(self):
        self.write("good.cpp", STYLE_EXAMPLE)
        p = self.run_script("check-format", "good.cpp")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("1 files, formatted as .clang-format says", p.stdout)


if __name__ == "__main__":
    fftest.main()
