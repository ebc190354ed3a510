#!/usr/bin/env python3
"""scripts/demo compiles with FEDFLOW_JOBS jobs, as scripts/test does (issue
11, item 23): it used all CPUs whatever FEDFLOW_JOBS said.

The script runs for real, with a `meson` and a `dpkg-query` of the test's
own first on PATH: dpkg-query says every package is installed (so
scripts/install-deps installs nothing), and meson writes down how it was
called and fails the compile, so nothing is built or fetched."""
import os
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


if __name__ == "__main__":
    fftest.main()
