#!/usr/bin/env python3
"""Install (issue 6, item 3): `meson install --destdir` of this build puts the
host, the worker, the SDK headers, fedflow-sdk.pc and the bundled plugins
under the prefix; plugins/template/ builds against that installed tree (its own
meson project, dependency('fedflow-sdk') through pkg-config with
PKG_CONFIG_SYSROOT_DIR=<destdir>); the installed fedflow-host, with no FEDFLOW_*
variable set, finds the installed worker and plugins and runs the template's
plan. The destdir tree is not at its prefix, which checks that the installed
host finds everything relative to its own executable.

Nothing is rebuilt: `meson install --no-rebuild` of the current build dir
(tests/integration/meson.build makes the test depend on every installed
target)."""
import json
import os
import shutil
import struct
import tempfile
import unittest

import fftest

MESON = shutil.which("meson")
BUNDLED = ["echo", "noop"]
DEMO = ["fedavg_client", "fedavg_server"]


run = fftest.run_ok
clean_env = fftest.clean_env


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [t for t in ("meson", "ninja", "pkg-config", os.environ.get("CXX", "c++")) if not shutil.which(t)]
        if missing or not fftest.BUILD_ROOT or not fftest.SOURCE_ROOT:
            raise unittest.SkipTest("needs %s" % (", ".join(missing) or "FEDFLOW_BUILD_ROOT/FEDFLOW_SOURCE_ROOT"))
        cls.tmp = os.path.realpath(tempfile.mkdtemp(prefix="fedflow-install-"))
        cls.dest = os.path.join(cls.tmp, "dest")
        options = json.loads(run([MESON, "introspect", fftest.BUILD_ROOT, "--buildoptions"]))
        cls.opt = {o["name"]: o["value"] for o in options}
        cls.installed = json.loads(run([MESON, "introspect", fftest.BUILD_ROOT, "--installed"]))
        run([MESON, "install", "-C", fftest.BUILD_ROOT, "--no-rebuild", "--quiet", "--destdir", cls.dest],
            env=clean_env())

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("FEDFLOW_KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def under(self, option, *parts):
        """<destdir><prefix>/<dir option>/parts..."""
        d = self.opt[option]
        if not os.path.isabs(d):
            d = os.path.join(self.opt["prefix"], d)
        return os.path.join(self.dest + d, *parts)

    def host(self):
        return self.under("bindir", "fedflow-host")

    def test_every_file_is_installed(self):
        expected = [
            self.host(),
            self.under("libexecdir", "fedflow", "fedflow-worker"),
            self.under("libdir", "pkgconfig", "fedflow-sdk.pc"),
        ]
        expected += [self.under("includedir", "fedflow", h) for h in ("abi.h", "task.hpp", "value.hpp",
                                                                      os.path.join("detail", "wire.hpp"))]
        plugins = BUNDLED + (DEMO if self.opt.get("demo") else [])
        expected += [self.under("libdir", "fedflow", "plugins", p + ".so") for p in plugins]
        # And whatever else the build says it installs (plugins added later).
        expected += [self.dest + path for path in self.installed.values()]
        for path in expected:
            self.assertTrue(os.path.exists(path), "not installed: %s" % path)
        for exe in expected[:2]:
            self.assertTrue(os.access(exe, os.X_OK), "not executable: %s" % exe)
        # The SDK's headers are complete: the installed task.hpp compiles alone.
        src = os.path.join(self.tmp, "alone.cpp")
        with open(src, "w") as f:
            f.write("#include <fedflow/task.hpp>\nint main() { return 0; }\n")
        run([os.environ.get("CXX", "c++"), "-std=c++17", "-fsyntax-only", "-I" + self.under("includedir"), src])

    def test_installed_host_finds_its_plugins(self):
        out = run([self.host(), "plugins"], env=clean_env())
        plugin_dir = self.under("libdir", "fedflow", "plugins")
        self.assertIn(plugin_dir, out)
        for p in BUNDLED + (DEMO if self.opt.get("demo") else []):
            self.assertIn(os.path.join(plugin_dir, p + ".so"), out)
        out = run([self.host(), "--version"], env=clean_env())
        self.assertTrue(out.startswith("fedflow-host "), out)

    def test_template_builds_against_the_install_and_runs(self):
        template = os.path.join(self.tmp, "template")
        shutil.copytree(os.path.join(fftest.SOURCE_ROOT, "plugins", "template"), template,
                        ignore=shutil.ignore_patterns("build*", "fedflow-runs"))
        # The .pc says prefix=<prefix>; the sysroot makes its -I point into the destdir.
        env = clean_env(PKG_CONFIG_PATH=self.under("libdir", "pkgconfig"), PKG_CONFIG_SYSROOT_DIR=self.dest)
        build = os.path.join(template, "build")
        run([MESON, "setup", build, template], env=env)
        run(["ninja", "-C", build], env=env)
        with open(os.path.join(build, "compile_commands.json")) as f:
            command = json.load(f)[0]["command"]
        self.assertIn("-I" + self.under("includedir"), command, "built against the installed headers")

        # The installed host, no FEDFLOW_* variable: the worker and the bundled
        # plugins are found relative to the executable, my_task through the
        # plan's plugin-path (and --plugin-path, as a user would add it).
        plan = os.path.join(template, "plan.toml")
        wd = os.path.join(self.tmp, "run")
        out = run([self.host(), plan, "--workdir", wd, "--plugin-path", build, "--progress", "plain"],
                  env=clean_env(), cwd=self.tmp)
        self.assertIn("run ended: finished", out)
        estimates = []
        for task in ("0", "1", "2", "3"):
            with open(os.path.join(wd, "estimate", task, "result.json")) as f:
                estimates.append(json.load(f))
        self.assertEqual(len({e["hits"] for e in estimates}), 4, "every task samples its own points")
        with open(os.path.join(wd, "combine", "0", "result.json")) as f:
            total = json.load(f)
        self.assertEqual(total["samples"], sum(e["samples"] for e in estimates))
        self.assertEqual(total["hits"], sum(e["hits"] for e in estimates))
        self.assertAlmostEqual(total["pi"], 3.14159, delta=0.02)
        self.assertEqual(total["histogram"]["$bytes"]["size"], 16 * 8)
        with open(os.path.join(wd, "combine", "0", total["histogram"]["$bytes"]["file"]), "rb") as f:
            self.assertEqual(sum(struct.unpack("<16Q", f.read())), total["hits"])
        with open(os.path.join(wd, "combine", "0", "stderr.log")) as f:
            self.assertIn("[info] pi ~ 3.1", f.read())

        # A bundled plugin from the installed plugin dir, without any path.
        echo = os.path.join(self.tmp, "echo.toml")
        with open(echo, "w") as f:
            f.write('[[group]]\nname = "g"\nplugin = "echo"\n')
        run([self.host(), echo, "--workdir", os.path.join(self.tmp, "echo-run"), "--progress", "none"],
            env=clean_env(), cwd=self.tmp)


    def test_installed_python_plugin_finds_its_package(self):
        plugin = self.under("libdir", "fedflow", "plugins", "python.so")
        if not os.path.isfile(plugin):
            self.skipTest("the python plugin is not built (no python3-embed)")
        package = self.under("libdir", "fedflow", "python", "fedflow", "__init__.py")
        self.assertTrue(os.path.isfile(package), package)
        d = os.path.join(self.tmp, "py")
        os.makedirs(d)
        with open(os.path.join(d, "where.py"), "w") as f:
            f.write("import fedflow\nclass T(fedflow.Task):\n"
                    "    def train(self, device):\n        return {'package': fedflow.__file__}\n")
        with open(os.path.join(d, "plan.toml"), "w") as f:
            f.write('[[group]]\nname = "g"\nplugin = "python"\nparams = { module = "where.py", class = "T" }\n')
        wd = os.path.join(d, "run")
        run([self.host(), os.path.join(d, "plan.toml"), "--workdir", wd, "--progress", "none"], env=clean_env(), cwd=d)
        with open(os.path.join(wd, "g", "0", "result.json")) as f:
            # The installed copy, not the source tree's: no PYTHONPATH needed.
            self.assertEqual(json.load(f)["package"], package)


if __name__ == "__main__":
    fftest.main()
