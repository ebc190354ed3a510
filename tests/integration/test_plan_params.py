#!/usr/bin/env python3
"""Params at the plan and [[round]] level, inherited by their groups (a
group's and a task's own override them); params a plugin declares
(FEDFLOW_PARAMS): `validate` and the run's start refuse a param of the
wrong type or a required one missing, where the plan writes it, and the
defaults reach the task. A plugin without a declaration (every ABI 1 plugin
built before) is not checked. docs/plan.md#params, docs/sdk.md#declared-params."""
import fftest
from fftest import HostTest, line_of


class Inherited(HostTest):
    def test_plan_round_group_and_task_levels(self):
        plan = self.write_plan("""
[[group]]
name = "once"
plugin = "inputs_probe"

[[round]]
count = 2
params = { level = "round", round_only = 1 }
  [[round.group]]
  name = "clients"
  plugin = "inputs_probe"
  params = { own = true }
    [[round.group.task]]
    id = "a"
    [[round.group.task]]
    id = "b"
    params = { level = "task" }

  [[round.group]]
  name = "server"
  plugin = "inputs_probe"
  params = { level = "group" }
""", top='params = { level = "plan", plan_only = "x" }\n')
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertEqual(r.result("once", "0")["params"], {"level": "plan", "plan_only": "x"})
        self.assertEqual(r.json("round-002", "clients", "a", "result.json")["params"],
                         {"level": "round", "plan_only": "x", "round_only": 1, "own": True})
        self.assertEqual(r.json("round-001", "clients", "b", "result.json")["params"],
                         {"level": "task", "plan_only": "x", "round_only": 1, "own": True})
        self.assertEqual(r.json("round-001", "server", "0", "result.json")["params"],
                         {"level": "group", "plan_only": "x", "round_only": 1})

    def test_params_larger_than_the_channel_buffer_reach_the_task(self):
        # A config larger than the channel's socket buffer (~200 KB) goes
        # as the worker reads it. Before, its rest was dropped and the task
        # waited in load forever, forked or exec'd.
        blob = "x" * 600000
        for start in ("fork-server", "exec"):
            with self.subTest(start=start):
                plan = self.write_plan('[[group]]\nname = "g"\nplugin = "inputs_probe"\ntasks = 2\n'
                                       '[group.params]\nblob = "%s"\n' % blob,
                                       scheduler={"worker-start": start})
                r = self.run_plan(plan, workdir="run-" + start, timeout=120)
                self.assertExit(r, 0)
                for t in ("0", "1"):
                    self.assertEqual(r.result("g", t)["params"], {"blob": blob})

    def test_plan_params_must_be_a_table(self):
        plan = self.write_plan('[[group]]\nplugin = "echo"\n', top='params = 3\n')
        r = self.host("validate", plan)
        self.assertExit(r, 2)
        self.assertIn("plan.toml:1:10: key 'params' in the plan must be a table, not an integer", r.stderr)


class Declared(HostTest):
    def plan(self, params, top=""):
        return self.write_plan("""
[[group]]
name = "clients"
plugin = "declared_params"
tasks = 3
params = %s
""" % params, top=top)

    def test_defaults_reach_the_task(self):
        r = self.run_plan(self.plan('{ data = "digits" }'))
        self.assertExit(r, 0)
        res = r.result("clients", "2")
        self.assertEqual(res["params"], {"data": "digits", "dim": 20, "lr": 0.1, "flags": []})
        self.assertEqual(res["dim_squared"], 400)
        # An integer where a double is declared is a double's value.
        r = self.run_plan(self.plan('{ data = "d", lr = 1, dim = 3 }'), workdir="run2")
        self.assertExit(r, 0)
        self.assertEqual(r.result("clients", "0")["params"]["lr"], 1)

    def test_a_wrong_type_is_refused_by_validate_and_run_where_it_is_written(self):
        plan = self.plan('{ data = "digits", dim = 20.0 }')
        with open(plan) as f:
            line = line_of(f.read(), "dim = 20.0")
        for args in (("validate", plan), (plan, "--workdir", self.tmp + "/run")):
            r = self.host(*args)
            self.assertExit(r, 2)
            # One message for the group's three tasks, at the key.
            self.assertEqual(r.stderr.count("param 'dim'"), 1, r.stderr)
            self.assertIn("plan.toml:%d:29: param 'dim' of group 'clients' is 20.0 (double), but plugin "
                          "'declared_params' takes an integer (write 20)" % line, r.stderr)

    def test_inherited_and_task_params_are_checked_too(self):
        plan = self.write_plan("""
[[group]]
name = "clients"
plugin = "declared_params"
  [[group.task]]
  id = "a"
  params = { dim = "big" }
""", top='params = { data = 7 }\n')
        r = self.host("validate", plan)
        self.assertExit(r, 2)
        self.assertIn("plan.toml:1:12: param 'data' of group 'clients' is 7 (integer), but plugin 'declared_params' "
                      "takes a string", r.stderr)
        self.assertIn("param 'dim' of group 'clients' is \"big\" (string), but plugin 'declared_params' takes an "
                      "integer", r.stderr)

    def test_a_required_param_missing(self):
        r = self.host("validate", self.plan("{ dim = 3 }"))
        self.assertExit(r, 2)
        self.assertIn("group 'clients' needs param 'data' (string), which plugin 'declared_params' requires",
                      r.stderr)

    def test_a_malformed_declaration_names_the_plugin(self):
        plan = self.write_plan('[[group]]\nplugin = "declared_params_bad"\n')
        r = self.host("validate", plan)
        self.assertExit(r, 2)
        self.assertIn("plugin 'declared_params_bad' declares its params wrongly", r.stderr)
        self.assertIn("type 'integr' in the declaration of param 'dim' is none of bool, integer", r.stderr)
        self.assertIn("the default of param 'lr' is string, not double", r.stderr)

    def test_a_plugin_without_declaration_takes_anything(self):
        plan = self.write_plan('[[group]]\nplugin = "inputs_probe"\nparams = { dim = 20.0 }\n')
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertEqual(r.result("group-1", "0")["params"], {"dim": 20.0})


if __name__ == "__main__":
    fftest.main()
