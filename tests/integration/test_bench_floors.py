#!/usr/bin/env python3
"""bench/spawn_floor, the floors bench/throughput judges Fedflow against: it
spawns /bin/true, or (--fork MIB [READ [WRITTEN]]) forks children of a
process of MIB MiB that touch as many of its pages, and prints one line that
bench/throughput parses; counts it cannot honour are refused with exit 2.

    test_bench_floors.py SPAWN_FLOOR"""
import re
import subprocess
import sys
import unittest

SPAWN_FLOOR = sys.argv.pop(1) if len(sys.argv) > 1 else ""
LINE = re.compile(r"^spawn_floor n=6 jobs=2 total_ms=[0-9.]+ per_task_ms=[0-9.]+$")


def run(*args):
    return subprocess.run([SPAWN_FLOOR] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60)


class SpawnFloor(unittest.TestCase):
    def test_spawn_and_fork_print_the_line_bench_throughput_parses(self):
        for args in ([6, 2], [6, 2, "/bin/true"], [6, 2, "--fork", 1], [6, 2, "--fork", 1, 0, 3],
                     [6, 2, "--fork", 1, 256, 256]):
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout.strip(), LINE)

    def test_counts_it_cannot_honour_are_refused(self):
        for args, says in (([6, 2, "--fork", 1, 257], "READ and WRITTEN are at most 256 pages (1 MiB)"),
                           ([6, 2, "--fork", 1, 0, 300], "READ and WRITTEN are at most 256 pages (1 MiB)"),
                           ([6, 2, "--fork", 1, "x"], "READ must be"),
                           ([6, 2, "--fork", 0], "MIB must be")):
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(says, r.stderr)
                self.assertEqual(r.stdout, "")

    def test_a_child_that_fails_fails_the_floor(self):
        r = run(6, 2, "/bin/false")
        self.assertEqual(r.returncode, 1)
        self.assertIn("6 of 6 children of /bin/false failed", r.stderr)


if __name__ == "__main__":
    if not SPAWN_FLOOR:
        sys.exit("usage: test_bench_floors.py SPAWN_FLOOR")
    unittest.main()
