#!/usr/bin/env python3
"""README's install lines, run as written (issue 11, item 19).

After scripts/demo had set up build/, README's `meson setup build --prefix
/opt/fedflow` printed "Directory already configured", exited 0, and the
install went to /usr/local. Here the lines of README.md's "## Install" block
run as they are written, with sh, in a copy of the source tree where build/
(as scripts/demo leaves it) and build-install/ (an earlier install to
/usr/local) are set up already; DESTDIR, which `meson install` honours,
keeps the install inside the test's directory. Everything must land under
/opt/fedflow, and the installed host must find its worker and plugins.

It builds Fedflow once more (without tests): several minutes without ccache.
Under the sanitizers it is skipped: the plain build's run covers it."""
import os
import re
import shutil
import tempfile
import unittest

import fftest

MESON = shutil.which("meson")
PREFIX = "/opt/fedflow"


def readme_install_block(readme):
    """The first ```sh block after the '## Install' heading, as written."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Install\n", 1)[1]
    m = re.search(r"^```sh\n(.*?)^```", section, re.S | re.M)
    if not m:
        raise AssertionError("README.md's Install section has no ```sh block")
    return m.group(1)


def copy_source(src, dst):
    """The source tree without what .gitignore leaves out (build dirs, the
    demo's data, downloaded subprojects) and without .git."""
    def ignore(folder, names):
        rel = os.path.relpath(folder, src)
        out = {n for n in names if n.startswith("build") or n in (".git", "fedflow-runs", "__pycache__")
               or n.endswith(".pyc")}
        if rel == "subprojects":
            out |= {n for n in names if os.path.isdir(os.path.join(folder, n)) and n != "packagefiles"}
        if rel == os.path.join("plugins", "fedavg"):
            out.add("data")
        return out
    shutil.copytree(src, dst, ignore=ignore, symlinks=True)


class ReadmeInstall(unittest.TestCase):
    def setUp(self):
        if os.environ.get("FEDFLOW_SANITIZED"):
            self.skipTest("builds Fedflow once more; the run of the plain build covers it")
        missing = [t for t in ("meson", "ninja", "sh") if not shutil.which(t)]
        if missing or not fftest.SOURCE_ROOT:
            self.skipTest("needs %s" % (", ".join(missing) or "FEDFLOW_SOURCE_ROOT"))
        # In the build tree, not /tmp: a compiler cache set up for the trees
        # under some folder (ccache's base_dir) then serves this build too.
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="fedflow-readme-install-", dir=fftest.BUILD_ROOT or None))

    def tearDown(self):
        if not os.environ.get("FEDFLOW_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def test_the_install_lines_install_to_their_prefix_whatever_exists(self):
        block = readme_install_block(os.path.join(fftest.SOURCE_ROOT, "README.md"))
        self.assertIn(PREFIX, block)
        src = os.path.join(self.tmp, "fedflow")
        copy_source(fftest.SOURCE_ROOT, src)
        env = fftest.clean_env()
        # What a user may have already: build/ as scripts/demo sets it up,
        # and build-install/ from an earlier install elsewhere.
        fftest.run_ok([MESON, "setup", "build"], env=env, cwd=src, timeout=600)
        fftest.run_ok([MESON, "setup", "build-install", "--prefix", "/usr/local", "-Dtests=disabled"], env=env, cwd=src,
                      timeout=600)

        dest = os.path.join(self.tmp, "dest")
        out = fftest.run_ok(["sh", "-e", "-c", block], env=fftest.clean_env(DESTDIR=dest), cwd=src, timeout=1300)

        root = dest + PREFIX
        host = os.path.join(root, "bin", "fedflow-host")
        self.assertTrue(os.access(host, os.X_OK), "no %s; the lines printed:\n%s" % (host, out[-3000:]))
        self.assertFalse(os.path.exists(os.path.join(dest, "usr", "local")), "installed under /usr/local as well")
        for rel in (os.path.join("include", "fedflow", "task.hpp"),):
            self.assertTrue(os.path.exists(os.path.join(root, rel)), rel)
        # The installed host finds its worker and the bundled plugins.
        listing = fftest.run_ok([host, "plugins"], env=env)
        self.assertRegex(listing, r"echo +ABI 1  %s/lib\S*/fedflow/plugins/echo\.so" % re.escape(root))
        plan = os.path.join(self.tmp, "echo.toml")
        with open(plan, "w") as f:
            f.write('[[group]]\nname = "g"\nplugin = "echo"\n')
        fftest.run_ok([host, plan, "--workdir", os.path.join(self.tmp, "run"), "--progress", "none"], env=env,
                      cwd=self.tmp)


if __name__ == "__main__":
    fftest.main()
