#!/usr/bin/env python3
"""Bad plans and bad plugins: exit status 2 before anything starts, with an
error that names the file, line and column, and the key (docs/plan.md, "Errors").
Also `validate` and `plugins`."""
import os
import re
import subprocess

import fftest
from fftest import HostTest, location_re


class BadPlans(HostTest):
    def check_refused(self, body, mark, *needles, top="", name="plan.toml", scheduler=None):
        """Runs the plan and validates it: both exit 2, name FILE:LINE:COL of
        a line holding `mark`, and mention every needle; nothing is started."""
        plan = self.write_plan(body, name=name, top=top, scheduler=scheduler)
        with open(plan, encoding="utf-8") as f:
            text = f.read()
        lines = [n for n, l in enumerate(text.splitlines(), 1) if mark in l]
        self.assertTrue(lines, mark)
        where = re.compile("|".join(location_re(os.path.basename(plan), n).pattern for n in lines))
        for mode in ("run", "validate"):
            with self.subTest(mode=mode):
                if mode == "run":
                    r = self.run_plan(plan, workdir="wd-" + name)
                else:
                    r = self.host("validate", plan)
                self.assertExit(r, 2)
                self.assertRegex(r.output, where, "names %s:LINE:COLUMN, LINE in %s%s"
                                 % (os.path.basename(plan), lines, r.describe()))
                for n in needles:
                    self.assertInCI(n, r.output)
                wd = os.path.join(self.tmp, "wd-" + name)
                self.assertFalse(os.path.exists(wd) and os.listdir(wd), "nothing may be started or written")
        return r

    def test_unknown_key_with_did_you_mean(self):
        self.check_refused("""
[[group]]
name = "g"
plugn = "echo"
""", "plugn", "plugn", "did you mean", "plugin", name="group-key.toml")
        self.check_refused("""
[[group]]
name = "g"
plugin = "echo"
""", "max-procesess", "max-procesess", "did you mean", "max-processes", name="sched-key.toml",
            scheduler={"max-procesess": 2})

    def test_unknown_top_level_key(self):
        self.check_refused("""
[[group]]
plugin = "echo"
""", "plugn-path", "plugn-path", "did you mean", "plugin-path", top='plugn-path = ["x"]\n',
            name="top-key.toml")

    def test_wrong_type(self):
        self.check_refused("""
[[group]]
name = "g"
plugin = "echo"
tasks = "three"
""", "tasks =", "tasks")
        self.check_refused("""
[[group]]
name = "g"
plugin = "echo"
params = 5
""", "params =", "params", name="params.toml")

    def test_duplicate_task_id(self):
        r = self.check_refused("""
[[group]]
name = "g"
plugin = "echo"

[[group.task]]
id = "dup-id"

[[group.task]]
id = "dup-id"
""", 'id = "dup-id"', "dup-id")
        self.assertNotRegex(r.output.lower(), r"\bunknown key\b")

    def test_duplicate_numbered_and_listed_id(self):
        self.check_refused("""
[[group]]
name = "g"
plugin = "echo"
tasks = 2

[[group.task]]
id = "1"
""", 'id = "1"', "'1'")

    def test_bad_names(self):
        for i, (key, value) in enumerate((("id", "../x"), ("id", ".."), ("id", "a b"), ("name", "a/b"),
                                          ("name", "."), ("name", ""))):
            with self.subTest(key=key, value=value):
                if key == "id":
                    body = '[[group]]\nname = "g"\nplugin = "echo"\n\n[[group.task]]\nid = "%s"\n' % value
                else:
                    body = '[[group]]\nname = "%s"\nplugin = "echo"\n' % value
                self.check_refused(body, '%s = "%s"' % (key, value), value, name="names-%d.toml" % i)

    def test_control_characters_in_names_are_escaped(self):
        # A group name with an ESC sequence that would retitle the terminal,
        # a NUL that would cut the message and a newline that would forge a
        # line of the host's own; a task id with a clear-screen sequence.
        # Both are refused, and every message shows them escaped.
        plan = self.write_plan(
            '[[group]]\nname = "a\\u001b]0;pwned\\u0007b\\u0000c\\nfedflow: error: forged"\nplugin = "echo"\n\n'
            '[[group]]\nname = "g"\nplugin = "echo"\n[[group.task]]\nid = "t\\u001b[2J\\u0000\\n"\n')
        for args in ([plan, "--workdir", os.path.join(self.tmp, "wd")], ["validate", plan]):
            with self.subTest(args=args[0]):
                r = self.host(*args)
                self.assertExit(r, 2)
                for raw in ("\x1b", "\x00", "\x07", "\nfedflow: error: forged"):
                    self.assertNotIn(raw, r.output, r.describe())
                self.assertIn("a\\e]0;pwned\\x07b\\0c\\nfedflow: error: forged", r.output, r.describe())
                self.assertIn("t\\e[2J\\0\\n", r.output, r.describe())
                self.assertIn("2 errors; nothing was started", r.output)

    def test_every_error_names_the_plan_as_it_was_given(self):
        # The parser's errors, the plugin lookup's and the params check's all
        # name the file as the command line did, as a compiler does.
        self.write_plan('[[group]]\nname = "g"\nplugin = "nope"\n', name="plugin.toml")
        self.write_plan('[[group]]\nname = "g"\nplugin = "declared_params"\nparams = { data = 7 }\n',
                        name="params.toml")
        self.write_plan('[[group]]\nname = "g"\nplugin = "noop"\ntasks = -1\n', name="key.toml")
        for name, needle in (("plugin.toml", "no plugin named 'nope'"), ("params.toml", "param 'data'"),
                             ("key.toml", "must be between")):
            with self.subTest(plan=name):
                r = self.host("validate", name, cwd=self.tmp)
                self.assertExit(r, 2)
                self.assertInCI(needle, r.output)
                errors = [l for l in r.stderr.splitlines() if not l.startswith("fedflow")]
                self.assertTrue(errors, r.describe())
                for line in errors:
                    self.assertTrue(line.startswith(name + ":"), "%r does not start with %s:%s" % (line, name, r.describe()))

    def test_unknown_plugin_far_from_the_name_gets_a_suggestion(self):
        # More than a few edits away, but an abbreviation of the name.
        r = self.check_refused('[[group]]\nname = "g"\nplugin = "throw_train"\n', "plugin =", "throw_train")
        self.assertIn("no plugin named 'throw_train' (did you mean 'fault_throw_train'?)", r.output)

    def test_inputs_from_a_later_group(self):
        self.check_refused("""
[[group]]
name = "server"
plugin = "echo"
inputs = ["clients"]

[[group]]
name = "clients"
plugin = "echo"
""", "inputs =", "clients")

    def test_toml_syntax_error(self):
        self.check_refused("""
[[group]]
name = "g"
plugin = "echo
""", 'plugin = "echo')

    def test_unknown_plugin(self):
        self.check_refused("""
[[group]]
name = "g"
plugin = "no_such_plugin"
""", "plugin =", "no_such_plugin")

    def test_plugin_file_missing(self):
        self.check_refused("""
[[group]]
name = "g"
plugin = "./missing/nothing.so"
""", "plugin =", "nothing.so")

    def test_plugin_path_that_is_no_library_is_named_for_what_it_is(self):
        # A FIFO is never opened (a reader would block until a writer came).
        directory = os.path.join(self.tmp, "dir.so")
        os.mkdir(directory)
        fifo = os.path.join(self.tmp, "fifo.so")
        os.mkfifo(fifo)
        text = self.write("text.so", "hello\n")
        for name, value, needle in (
                ("dir", directory, "it is a directory, not a plugin file (a shared library)"),
                ("fifo", fifo, "it is a FIFO (named pipe), not a plugin file (a shared library)"),
                ("zero", "/dev/zero", "it is a character device, not a plugin file (a shared library)"),
                ("text", text, "not an ELF file: it does not start with the ELF magic \\x7fELF (a 6-byte file)")):
            with self.subTest(plugin=name):
                r = self.check_refused('[[group]]\nname = "g"\nplugin = "%s"\n' % value, "plugin =",
                                       "%s cannot be used: %s" % (value, needle), name=name + ".toml")
                self.assertNotIn("does not exist", r.output)
                self.assertNotIn("truncated", r.output)

    def check_versions_named(self, output):
        """The ABI error names both versions: the plugin's 99 and the host's 1."""
        lines = [l for l in output.splitlines() if re.search(r"\b99\b", l)]
        self.assertTrue(lines, "no line names ABI version 99:\n" + output)
        self.assertTrue(any(re.search(r"\b1\b", l) for l in lines),
                        "the line that names 99 must name the host's version 1 too:\n" + output)

    def test_plugin_with_wrong_abi_by_path(self):
        r = self.check_refused("""
[[group]]
name = "g"
plugin = "%s"
""" % fftest.plugin_file("fault_wrong_abi"), "plugin =", "fault_wrong_abi")
        self.check_versions_named(r.output)

    def test_plugin_with_wrong_abi_by_name(self):
        r = self.check_refused("""
[[group]]
name = "g"
plugin = "fault_wrong_abi"
""", "plugin =", "fault_wrong_abi")
        self.check_versions_named(r.output)

    def test_plugin_without_entry_symbol(self):
        for how, value in (("path", fftest.plugin_file("fault_no_entry")), ("name", "fault_no_entry")):
            with self.subTest(by=how):
                r = self.check_refused('[[group]]\nname = "g"\nplugin = "%s"\n' % value, "plugin =",
                                       "fault_no_entry", name="no-entry-%s.toml" % how)
                self.assertIn("fedflow_plugin_enum", r.output)

    def test_plan_file_missing(self):
        r = self.host(os.path.join(self.tmp, "nothere.toml"))
        self.assertExit(r, 2)
        self.assertIn("nothere.toml", r.output)

    def test_plan_path_that_is_not_a_regular_file_or_too_large(self):
        # A directory once read as an empty plan ("no [[group]]"), /dev/zero
        # ended in std::bad_alloc and a FIFO blocked the host forever.
        fifo = os.path.join(self.tmp, "plan.fifo")
        os.mkfifo(fifo)
        big = os.path.join(self.tmp, "big.toml")
        with open(big, "wb") as f:
            f.truncate(64 * 1024 * 1024 + 1)
        cases = ((self.tmp, "it is a directory"), ("/dev/zero", "it is a character device"),
                 (fifo, "it is a FIFO (named pipe)"), (big, "it is 67108865 bytes, more than the 67108864 bytes (64 MiB)"))
        wd = os.path.join(self.tmp, "wd")
        for path, said in cases:
            for args in ([path, "--workdir", wd], [path, "--workdir", wd, "--dry-run"], ["validate", path],
                         ["run-task", path, "g/0", "--dir", wd]):
                with self.subTest(args=args):
                    r = self.host(*args, timeout=20)
                    self.assertExit(r, 2)
                    self.assertIn("%s: cannot read the plan file: %s" % (path, said), r.stderr, r.describe())
                    self.assertFalse(os.path.exists(wd), "nothing is written")


class Validate(HostTest):
    def test_a_good_plan_validates_and_nothing_is_written(self):
        plan = self.write_plan("""
[[group]]
name = "clients"
plugin = "echo"
tasks = 3

[[group]]
name = "server"
plugin = "inputs_probe"
inputs = ["clients"]
""", top='workdir = "would-run-here"\n')
        r = self.host("validate", plan)
        self.assertExit(r, 0)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "would-run-here")), "validate runs nothing")

    def test_dry_run_starts_nothing(self):
        plan = self.write_plan("""
[[group]]
name = "clients"
plugin = "echo"
tasks = 2
""", top='workdir = "would-run-here"\n')
        r = self.host(plan, "--dry-run")
        self.assertExit(r, 0)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "would-run-here")), "--dry-run runs nothing")

    def test_dry_run_refuses_the_workdirs_the_run_refuses(self):
        # Exit 2 with the run's own message, and nothing written: a dry run
        # that passes where the run would not is no check.
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n')
        self.write("a-file", "x")
        self.write("foreign/notes.txt", "mine")
        os.makedirs(os.path.join(self.tmp, "empty"))
        cases = [
            (["--workdir", os.path.join(self.tmp, "a-file")], "is a regular file, not a directory"),
            (["--workdir", os.path.join(self.tmp, "foreign")], "is not empty and holds no Fedflow run"),
            (["--workdir", os.path.join(self.tmp, "empty"), "--resume"], "holds no Fedflow run (no run.json): "
                                                                         "nothing to resume"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                before = sorted(os.listdir(self.tmp))
                for run in (["--dry-run"], []):
                    r = self.host(plan, *run, *args)
                    self.assertExit(r, 2)
                    self.assertIn(message, r.stderr)
                self.assertEqual(sorted(os.listdir(self.tmp)), before)
        if os.geteuid() == 0:
            ro = os.path.join(self.tmp, "ro")
            os.makedirs(ro)
            if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", ro]).returncode == 0:
                try:
                    r = self.host(plan, "--dry-run", "--workdir", os.path.join(ro, "w"))
                    self.assertExit(r, 2)
                    self.assertIn("cannot write in workdir %s: Read-only file system" % os.path.join(ro, "w"),
                                  r.stderr)
                finally:
                    subprocess.run(["umount", ro])


class Plugins(HostTest):
    def test_lists_plugins_with_abi_and_path_and_rejected_files_with_a_reason(self):
        r = self.host("plugins")
        self.assertExit(r, 0)
        echo = fftest.plugin_file("echo")
        lines = r.output.splitlines()
        echo_lines = [l for l in lines if re.search(r"\becho\b", l) and echo in l]
        self.assertTrue(echo_lines, "echo with its path" + r.describe())
        self.assertRegex(echo_lines[0], r"\b1\b", "echo's ABI version")
        for name in ("inputs_probe", "fault_segfault", "big_bytes"):
            self.assertTrue(any(fftest.plugin_file(name) in l for l in lines), name + r.describe())

        wrong = [l for l in lines if fftest.plugin_file("fault_wrong_abi") in l]
        self.assertTrue(wrong, "the wrong-ABI file is listed as rejected" + r.describe())
        self.assertTrue(any(re.search(r"\b99\b", l) for l in wrong), "with the reason (its version 99)" + r.describe())
        no_entry = [l for l in lines if fftest.plugin_file("fault_no_entry") in l]
        self.assertTrue(no_entry, "the file without entry point is listed as rejected" + r.describe())
        self.assertTrue(any("fedflow_plugin_enum" in l for l in no_entry), r.describe())

    def test_plugin_path_option(self):
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty)
        r = self.host("plugins", "--plugin-path", empty, env={"FEDFLOW_PLUGIN_PATH": ""})
        self.assertExit(r, 0)
        self.assertIn(empty, r.output)
        # Only the build tree's bundled plugins besides: the test plugins are
        # found through FEDFLOW_PLUGIN_PATH alone.
        self.assertNotIn(fftest.plugin_file("fault_abort"), r.output)

    def test_the_host_of_a_build_tree_finds_its_bundled_plugins_by_itself(self):
        # Issue 11, item 22: they live in several folders of the build tree
        # (plugins/, plugins/fedavg/, ...), and a user had to pass each with
        # --plugin-path; an installed host finds them in its plugin dir.
        env = {"FEDFLOW_PLUGIN_PATH": ""}
        r = self.host("plugins", env=env)
        self.assertExit(r, 0)
        bundled = [fftest.plugin_file("echo"), fftest.plugin_file("noop"), fftest.plugin_file("command")]
        demo = os.path.join(fftest.BUILD_ROOT, "plugins", "fedavg", "fedavg_client.so")
        if os.path.exists(demo):
            bundled.append(demo)
        for path in bundled:
            self.assertIn(path, r.output)
        with open(fftest.HOST + ".plugin-dirs") as f:
            self.assertIn(os.path.dirname(fftest.plugin_file("echo")) + "\n", f.read())
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n')
        r = self.run_plan(plan, "--progress", "none", env=env)
        self.assertExit(r, 0)


if __name__ == "__main__":
    fftest.main()
