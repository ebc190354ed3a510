#!/usr/bin/env python3
"""host/check_parts.py: the build refuses an include that the architecture's
table of parts does not allow (docs/architecture.md, "Parts")."""
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.environ["FEDFLOW_SOURCE_ROOT"], "host", "check_parts.py")
TABLE = ["common=", "sched=common", "runner=sched,common", "main.cpp=runner,sched,common"]


class CheckParts(unittest.TestCase):
    def tree(self, files):
        root = tempfile.mkdtemp(prefix="fedflow-parts-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", root], check=False))
        files = {"common/.keep": "", "sched/.keep": "", "runner/.keep": "", "main.cpp": "", **files}
        for path, text in files.items():
            full = os.path.join(root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(text)
        return root

    def check(self, root):
        stamp = os.path.join(root, "stamp")
        r = subprocess.run([sys.executable, SCRIPT, root, stamp] + TABLE, capture_output=True, text=True)
        return r.returncode, r.stderr, os.path.exists(stamp)

    def test_allowed_includes_pass(self):
        root = self.tree({
            "common/log.hpp": "#pragma once\n#include <string>\n",
            "sched/probe.cpp": '#include "sched/probe.hpp"\n#include "common/log.hpp"\n',
            "sched/probe.hpp": "#pragma once\n",
            "runner/runner.cpp": '#include "sched/probe.hpp"\n#include <fmt/core.h>\n',
            "main.cpp": '#include "runner/runner.hpp"\n',
        })
        code, err, stamped = self.check(root)
        self.assertEqual(code, 0, err)
        self.assertTrue(stamped)

    def test_a_part_that_includes_a_part_above_it_fails_with_where_and_what(self):
        root = self.tree({
            "sched/probe.cpp": '#include "sched/probe.hpp"\n\n#include "runner/task.hpp"\n',
            "runner/task.hpp": "#pragma once\n",
        })
        code, err, stamped = self.check(root)
        self.assertEqual(code, 1)
        self.assertFalse(stamped)
        self.assertIn('sched/probe.cpp:3: #include "runner/task.hpp": sched may not use runner '
                      '(sched may use common; see host/meson.build)', err)

    def test_relative_and_angle_includes_of_host_headers_are_refused(self):
        root = self.tree({
            "runner/runner.cpp": '#include "../common/log.hpp"\n#include "task.hpp"\n#include <sched/probe.hpp>\n',
        })
        code, err, _ = self.check(root)
        self.assertEqual(code, 1)
        self.assertIn('runner/runner.cpp:1: #include "../common/log.hpp": write "part/file.hpp"', err)
        self.assertIn('runner/runner.cpp:2: #include "task.hpp": write "part/file.hpp"', err)
        self.assertIn("runner/runner.cpp:3: #include <sched/probe.hpp>: a host header is included as", err)

    def test_a_part_of_the_table_that_does_not_exist_is_an_error(self):
        root = tempfile.mkdtemp(prefix="fedflow-parts-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", root], check=False))
        code, err, _ = self.check(root)
        self.assertEqual(code, 1)
        self.assertIn("sched: named in the table of parts but", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
