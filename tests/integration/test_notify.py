#!/usr/bin/env python3
"""[notify]: the command runs after every group and the run with the report's
path and the status; mail goes through SMTP (libcurl) to a local server this
test starts; a notification that fails never fails the run."""
import base64
import email
import email.policy
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading

import fftest
from fftest import HostTest

GROUPS = """
[[group]]
name = "good"
plugin = "echo"
tasks = 2

[[group]]
name = "bad"
plugin = "fault_throw_train"
"""

RECORDER = """import json, os, sys
with open(os.environ["RECORD"], "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "kind": os.environ["FEDFLOW_NOTIFY"],
                        "name": os.environ["FEDFLOW_NAME"], "status": os.environ["FEDFLOW_STATUS"],
                        "summary": os.environ["FEDFLOW_SUMMARY"]}) + "\\n")
print("recorded", sys.argv[1:])
"""


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to take mail: HELO/EHLO, MAIL, RCPT,
    DATA, RSET, NOOP, QUIT."""

    def reply(self, line):
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.reply("220 localhost test SMTP")
        mail_from, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-localhost")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 localhost")
            elif verb == "MAIL":
                mail_from, rcpts = cmd[len("MAIL FROM:"):].strip(), []
                self.reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(cmd[len("RCPT TO:"):].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                data = b""
                while True:
                    l = self.rfile.readline()
                    if l in (b".\r\n", b".\n", b""):
                        break
                    data += l[1:] if l.startswith(b"..") else l
                self.server.messages.append({"from": mail_from, "to": rcpts, "data": data})
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class Notify(HostTest):
    def recorder(self):
        script = self.write("recorder.py", RECORDER)
        record = os.path.join(self.tmp, "record.jsonl")
        return script, record

    def records(self, record):
        with open(record) as f:
            return [json.loads(l) for l in f]

    def test_the_command_runs_after_every_group_and_the_run(self):
        script, record = self.recorder()
        plan = self.write_plan(GROUPS, top='[notify]\ncommand = [%s, %s]\n\n' % (
            fftest.toml_str(sys.executable), fftest.toml_str(script)))
        r = self.run_plan(plan, env={"RECORD": record})
        self.assertExit(r, 1)
        got = self.records(record)
        self.assertEqual([(g["kind"], g["name"], g["status"]) for g in got],
                         [("group", "good", "finished"), ("group", "bad", "failed"), ("run", "plan.toml", "failed")])
        self.assertEqual(got[0]["argv"], [r.path("good", "report.json"), "finished"])
        self.assertEqual(got[2]["argv"], [r.path("report.html"), "failed"])
        self.assertIn("0 failed in train: injected failure in train", got[1]["summary"])
        # Its output is in notify.log; the report it was given exists.
        self.assertIn("recorded", r.read("notify.log"))
        self.assertTrue(os.path.isfile(got[2]["argv"][0]))

    def test_on_run_only_and_a_failing_command_fails_nothing(self):
        script, record = self.recorder()
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n', top=(
            '[notify]\non = "run"\ncommand = ["sh", "-c", "%s %s \\"$@\\"; exit 3", "notify"]\n\n'
            % (sys.executable, script)))
        r = self.run_plan(plan, env={"RECORD": record})
        self.assertExit(r, 0)
        got = self.records(record)
        self.assertEqual([g["kind"] for g in got], ["run"])
        self.assertIn("notify: sh failed (exited with code 3", r.stderr)

    def test_a_command_killed_by_a_signal_is_said_so_by_name(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n', top=(
            '[notify]\non = "run"\ncommand = ["sh", "-c", "kill -KILL $$"]\n\n'))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertIn("notify: sh failed (killed by signal SIGKILL", r.stderr)

    def test_the_command_starts_as_a_worker_does(self):
        """Started by the one spawn helper: default handlers for the signals
        a shell's `&` or nohup makes the host ignore, no signal blocked, no
        descriptor of the host's but 0, 1 and 2."""
        probe = self.write("probe.py", fftest.OPEN_FDS_PY + """
fds = open_fds()  # before the status file is opened
with open("/proc/self/status") as f:
    status = dict(l.split(":", 1) for l in f if l.startswith("Sig"))
print("ignored=%x blocked=%x fds=%s" % (int(status["SigIgn"], 16), int(status["SigBlk"], 16), fds))
""")
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n', top=(
            '[notify]\non = "run"\ncommand = [%s, %s]\n\n' % (fftest.toml_str(sys.executable),
                                                              fftest.toml_str(probe))))
        wd = os.path.join(self.tmp, "run")
        ignore = lambda: [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGHUP, signal.SIGINT)]
        p = subprocess.run([fftest.HOST, plan, "--workdir", wd], cwd=self.tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, preexec_fn=ignore, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout)
        with open(os.path.join(wd, "notify.log")) as f:
            line = [l for l in f.read().splitlines() if l.startswith("ignored=")][-1]
        ignored, blocked, fds = line.split(" ", 2)
        mask = int(ignored.split("=")[1], 16)
        self.assertEqual(mask & ((1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGINT - 1))), 0, line)
        self.assertEqual(blocked, "blocked=0", line)
        self.assertEqual(fds, "fds=[]", line)

    def test_mail_through_a_local_smtp_server(self):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPHandler)
        server.messages = []
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            port = server.server_address[1]
            plan = self.write_plan(GROUPS, top="""[notify]
smtp = { server = "127.0.0.1", port = %d, security = "none", from = "fedflow@example.org", to = ["a@example.org", "b@example.org"], subject = "[lab]" }

""" % port)
            r = self.run_plan(plan)
            self.assertExit(r, 1)
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(len(server.messages), 3, r.describe())
        m = server.messages[0]
        self.assertEqual(m["from"], "<fedflow@example.org>")
        self.assertEqual(m["to"], ["<a@example.org>", "<b@example.org>"])
        msg = email.message_from_bytes(m["data"], policy=email.policy.default)
        self.assertEqual(msg["Subject"], "[lab] group good: finished")
        self.assertEqual(msg["To"], "a@example.org, b@example.org")
        parts = list(msg.iter_parts())
        self.assertIn("Group good: 2 of 2 task(s) finished, 0 failed.", parts[0].get_content())
        attached = parts[1].get_payload(decode=True)
        self.assertEqual(json.loads(attached), r.report("good"))
        last = email.message_from_bytes(server.messages[2]["data"], policy=email.policy.default)
        self.assertEqual(last["Subject"], "[lab] run plan.toml: failed")
        self.assertIn(b"<!DOCTYPE html>", list(last.iter_parts())[1].get_payload(decode=True))

    def test_mail_that_cannot_be_sent_fails_nothing(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n', top="""[notify]
on = "run"
smtp = { server = "127.0.0.1", port = 1, security = "none", from = "f@example.org", to = "t@example.org" }

""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertIn("notify: mail to t@example.org through smtp://127.0.0.1:1 failed", r.stderr)


if __name__ == "__main__":
    fftest.main()
