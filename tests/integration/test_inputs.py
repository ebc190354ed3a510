#!/usr/bin/env python3
"""Inputs by reference: a group's inputs are the earlier tasks' byte files,
mapped read-only by each worker (docs/architecture.md, "The data path"), never
copied by the host; after --resume and with keep-rounds too; a plugin of
ABI 1's first SDK still reads them (inline); a truncated, missing or corrupt
byte file is an error that names it."""
import os
import sys

import fftest
from fftest import HostTest

SIZE = 100000
# big_bytes fills byte i with i % 251.
SUM = sum(i % 251 for i in range(SIZE))
CONTENT = bytes(i % 251 for i in range(SIZE))


def producer_and(consumer, extra="", between=""):
    return """
[[group]]
name = "producer"
plugin = "big_bytes"
tasks = 2
params = { size = %d }
%s
[[group]]
name = "consumer"
plugin = "%s"
inputs = ["producer"]
%s
""" % (SIZE, between, consumer, extra)


def vandal(code):
    """A group between producer and consumer whose one task runs Python code
    in its workdir (<run>/vandal/0): it damages producer's byte files (and
    prints an empty result)."""
    code += "; print(dict())"  # {} would be a placeholder in the param
    return """
[[group]]
name = "vandal"
plugin = "command"
params = { train = [%s, "-c", %s] }
""" % (fftest.toml_str(sys.executable), fftest.toml_str(code))


class InputsTest(HostTest):
    def check_mapped(self, r, seen, group="producer", base=None):
        base = base or r.path(group)
        self.assertEqual(sorted(seen), ["%s/0/data" % group, "%s/1/data" % group])
        for t in ("0", "1"):
            s = seen["%s/%s/data" % (group, t)]
            self.assertEqual(s["size"], SIZE)
            self.assertEqual(s["sum"], SUM)
            self.assertEqual(os.path.realpath(s["file"]), os.path.realpath(os.path.join(base, t, "data.bin")))
            self.assertTrue(s["mapped"], "the bytes are a read-only mapping of the byte file: %r" % s)

    def test_inputs_are_the_byte_files_mapped_read_only(self):
        r = self.run_plan(self.write_plan(producer_and("inputs_mapped")))
        self.assertExit(r, 0)
        res = r.result("consumer", "0")
        self.check_mapped(r, res["seen"])
        self.assertTrue(res["kept_valid"], "a Bytes kept from load reads the same bytes in train")
        # result.json holds each byte file's checksum.
        entry = r.result("producer", "0")["data"]["$bytes"]
        self.assertEqual(entry, fftest.bytes_entry("data.bin", SIZE, CONTENT)["$bytes"])

    def test_the_ledger_counts_the_mapped_inputs(self):
        # docs/scheduling.md, "Memory of mapped inputs": the group's memory
        # plus the size of every input byte file.
        r = self.run_plan(self.write_plan(producer_and("inputs_mapped", extra='memory = "1MB"')))
        self.assertExit(r, 0)
        starts = [e for e in r.events() if e.get("event") == "status" and e.get("status") == "AVAILABLE"]
        est = {e["group"]: e["memory_estimate"] for e in starts}
        self.assertEqual(est["consumer"], 1000000 + 2 * SIZE)

    def test_a_plugin_of_the_first_sdk_gets_its_inputs_inline(self):
        r = self.run_plan(self.write_plan(producer_and("inputs_abi1")))
        self.assertExit(r, 0)
        seen = r.result("consumer", "0")["seen"]
        self.assertEqual(seen, {"producer/0/data": {"size": SIZE, "sum": SUM},
                                "producer/1/data": {"size": SIZE, "sum": SUM}})

    def assertStartFailure(self, r, needle):
        self.assertExit(r, 1)
        task = self.assertStatus(r, "consumer", "0", "EXCEPTION")
        self.assertEqual(task["stage"], "start")
        self.assertIn(needle, task["message"])
        return task

    def test_a_truncated_byte_file_is_an_error_that_names_it(self):
        code = "open('../../producer/1/data.bin', 'r+b').truncate(10)"
        r = self.run_plan(self.write_plan(producer_and("inputs_mapped", between=vandal(code))))
        path = os.path.join(os.path.realpath(r.path("producer")), "1", "data.bin")
        task = self.assertStartFailure(r, path)
        self.assertIn("it has 10 bytes, its result.json says %d (truncated)" % SIZE, task["message"])

    def test_a_missing_byte_file_is_an_error_that_names_it(self):
        code = "import os; os.remove('../../producer/0/data.bin')"
        r = self.run_plan(self.write_plan(producer_and("inputs_mapped", between=vandal(code))))
        path = os.path.join(os.path.realpath(r.path("producer")), "0", "data.bin")
        self.assertStartFailure(r, path + ": No such file or directory")

    def test_a_corrupt_byte_file_is_found_where_the_group_asks(self):
        code = ("f = open('../../producer/1/data.bin', 'r+b'); f.seek(5000); b = f.read(1); f.seek(5000); "
                "f.write(bytes([b[0] ^ 0x5a])); f.close()")
        r = self.run_plan(self.write_plan(producer_and("inputs_mapped", extra="verify-inputs = true",
                                                       between=vandal(code))))
        path = os.path.join(os.path.realpath(r.path("producer")), "1", "data.bin")
        task = self.assertStartFailure(r, path)
        self.assertIn("corrupt: its checksum does not match the one its result.json holds", task["message"])
        # Without verify-inputs the task reads what is there: the check costs a
        # read of every byte, and is the group's choice.
        r = self.run_plan(self.write_plan(producer_and("inputs_mapped", between=vandal(code)), name="plan2.toml"),
                          workdir="run2")
        self.assertExit(r, 0)
        self.assertNotEqual(r.result("consumer", "0")["seen"]["producer/1/data"]["sum"], SUM)

    def test_inputs_after_resume_are_the_first_runs_files(self):
        stop = os.path.join(self.tmp, "fail-once")
        open(stop, "w").close()
        plan = self.write_plan(producer_and("inputs_mapped", extra="params = { fail_if_exists = %s }"
                                            % fftest.toml_str(stop)))
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        self.assertStatus(r, "consumer", "0", "EXCEPTION")
        first = {t: os.stat(r.path("producer", t, "data.bin")).st_mtime_ns for t in ("0", "1")}
        os.remove(stop)
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 0)
        # The producer did not run again: its files are those of the first run.
        self.assertEqual({t: os.stat(r.path("producer", t, "data.bin")).st_mtime_ns for t in ("0", "1")}, first)
        self.check_mapped(r, r.result("consumer", "0")["seen"])

    def test_inputs_of_an_earlier_round_with_keep_rounds(self):
        # Each round: clients read the server of the round before (mapped),
        # then the server writes its own. keep-rounds = 1 removes a round's
        # folder only once the next round, which read it, has ended.
        plan = self.write_plan("""
[[round]]
count = 3
keep-rounds = 1

[[round.group]]
name = "clients"
plugin = "inputs_mapped"
inputs = ["server"]

[[round.group]]
name = "server"
plugin = "big_bytes"
tasks = 2
params = { size = %d }
""" % SIZE)
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertFalse(os.path.exists(r.path("round-001")))
        self.assertFalse(os.path.exists(r.path("round-002")))
        res = r.json("round-003", "clients", "0", "result.json")
        seen = res["seen"]
        for t in ("0", "1"):
            s = seen["server/%s/data" % t]
            self.assertEqual((s["size"], s["sum"]), (SIZE, SUM))
            self.assertTrue(s["mapped"])
            self.assertIn(os.path.join("round-002", "server", t, "data.bin"), s["file"])


if __name__ == "__main__":
    fftest.main()
